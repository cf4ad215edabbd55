/** The installed package's types, checked by tsc as a user's TypeScript project would be. */
import { type CreditResult, grpo, type StepRow, type Tokenizer, type TrainConfigInput } from 'stepwise';

const rows: StepRow[] = [
  { groupId: 'g', trajectoryId: 'a', stepIndex: 0, anchor: 'hall', envReward: 10, valid: true },
  { groupId: 'g', trajectoryId: 'b', stepIndex: 0, anchor: 'hall', envReward: 0, valid: true },
];
const credit: CreditResult<Record<string, Float64Array>> = grpo(rows);
const advantage: number = credit.advantages[0]!;
const config: TrainConfigInput = { env: 'household', estimator: 'gigpo', iterations: 1 };
const tokenizer: Tokenizer | undefined = undefined;
// @ts-expect-error: a misspelt estimator is a type error, so the declarations are real, not `any`.
const wrong: TrainConfigInput = { estimator: 'gigpoo' };

export { advantage, config, tokenizer, wrong };
