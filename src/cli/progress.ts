/**
 * Progress bars on stderr for a training run's progress events (SFT steps, an iteration's
 * trajectories and PPO mini-batches), drawn with cli-progress. The library only reports events;
 * this is where they are drawn.
 */
import cliProgress from 'cli-progress';
import type { ProgressEvent } from '../training/context.ts';

const FORMATS = {
  sft: 'SFT    [{bar}] {value}/{total} steps | {rate} steps/s | ETA {eta_formatted} | loss {loss} | valid {valid}',
  rollout: 'rollout {iteration} [{bar}] {value}/{total} traj | {rate} traj/s | ETA {eta_formatted}',
  update: 'update  {iteration} [{bar}] {value}/{total} batch | {rate} batch/s | ETA {eta_formatted}',
} as const;

/** A listener for `TrainHooks.onProgress` that draws one bar per phase (cli-progress draws only on a terminal). */
export function progressBars(): (event: ProgressEvent) => void {
  let bar: cliProgress.SingleBar | undefined;
  let started = 0;
  return (event) => {
    if (event.type === 'start') {
      bar?.stop();
      bar = new cliProgress.SingleBar(
        {
          format: FORMATS[event.phase],
          hideCursor: true,
          // the SFT bar stays as the phase's summary; the per-iteration bars give way to its log line
          clearOnComplete: event.phase !== 'sft',
          stream: process.stderr,
        },
        cliProgress.Presets.shades_classic,
      );
      started = performance.now();
      bar.start(event.total, 0, { rate: '0', loss: '-', valid: '-', iteration: event.iteration ?? '' });
    } else if (event.type === 'advance') {
      const rate = event.done / ((performance.now() - started) / 1000);
      bar?.update(event.done, {
        rate: rate.toFixed(event.phase === 'sft' ? 2 : 1),
        ...(event.loss === undefined ? {} : { loss: event.loss.toFixed(3) }),
        ...(event.validLoss === undefined ? {} : { valid: event.validLoss.toFixed(3) }),
      });
    } else {
      bar?.stop();
      bar = undefined;
    }
  };
}
