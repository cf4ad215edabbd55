/**
 * What CI changes in the tests: `.ci/run` sets CI=true and installs Chromium and bubblewrap, so
 * there a test that would skip or accept a weaker mode for want of them fails instead.
 */
import { spawnSync } from 'node:child_process';

/** True under CI (`CI=true`, as `.ci/run` and most CI services set it). */
export const inCI = process.env.CI === 'true';

/** Whether a command is installed (it runs and exits 0 with `args`, e.g. `--version`). */
export function installed(command: string, args: string[] = ['--version']): boolean {
  const r = spawnSync(command, args, { stdio: 'ignore', timeout: 10_000 });
  return r.error === undefined && r.status === 0;
}
