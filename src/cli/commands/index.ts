/** Every subcommand of `stepwise`, as the `register*` functions of the files beside it. */
import type { Command } from 'commander';
import { registerBench } from './bench.ts';
import { registerCredit } from './credit.ts';
import { registerDemo } from './demo.ts';
import { registerInitPolicy } from './init-policy.ts';
import { registerMerge } from './merge.ts';
import { registerServe } from './serve.ts';
import { registerStore } from './store.ts';
import { registerTool } from './tool.ts';
import { registerTrain } from './train.ts';
import { registerView } from './view.ts';
import { registerWorker } from './worker.ts';

/** Every subcommand of `stepwise`; each file under ./commands exports one `register*`. */
export const commands: Array<(program: Command) => void> = [
  registerDemo,
  registerBench,
  registerTool,
  registerCredit,
  registerStore,
  registerServe,
  registerInitPolicy,
  registerView,
  registerTrain,
  registerWorker,
  registerMerge,
];
