import { describe, expect, it } from 'vitest';
import { parseTrainConfig, ppoDefaults, TrainConfigError } from '../../src/training/config.ts';
import { HOUSEHOLD_DEFAULT } from '../../src/training/presets.ts';

describe('TrainConfig', () => {
  it('fills the estimator-dependent loss defaults from ALGORITHMS.md', () => {
    const gigpo = parseTrainConfig({ estimator: 'gigpo' });
    expect(gigpo.ppo).toMatchObject({
      klCoef: 0.01,
      entropyCoef: 0.001,
      clipLow: 0.2,
      clipHigh: 0.2,
      lossAgg: 'token-mean',
    });
    expect(gigpo.groupSize).toBe(8);
    expect(gigpo.estimatorOptions).toMatchObject({ gamma: 0.95, mode: 'mean_std_norm', stepWeight: 1 });
    expect(ppoDefaults('flow-grpo')).toMatchObject({ clipHigh: 0.3, entropyCoef: 0, klCoef: 0.001 });
    expect(ppoDefaults('igpo').lossAgg).toBe('seq-mean-token-sum');
    // An explicit setting wins over the default.
    expect(parseTrainConfig({ ppo: { klCoef: 0.5 } }).ppo.klCoef).toBe(0.5);
    expect(parseTrainConfig({ db: 'runs/a.db' }).checkpointDir).toBe('runs/a-checkpoints/train');
    expect(parseTrainConfig({ db: 'runs/a.db', runId: 'b' }).checkpointDir).toBe('runs/a-checkpoints/b');
  });

  it("defaults the household prompt to 'growing' where a whole trajectory fits the context", () => {
    // tiny's 512 tokens hold no 20-step trajectory; tiny-2k holds 12 steps. The embedded default
    // sets 'windowed' itself (issue 13's measurements).
    expect(parseTrainConfig({}).loop.promptFormat).toBe('windowed');
    expect(parseTrainConfig(HOUSEHOLD_DEFAULT).loop.promptFormat).toBe('windowed');
    const loop = { maxSteps: 12, maxTokens: 40 };
    expect(parseTrainConfig({ policy: { preset: 'tiny-2k' }, loop }).loop.promptFormat).toBe('growing');
    expect(parseTrainConfig({ policy: { preset: 'tiny-2k' } }).loop.promptFormat).toBe('windowed'); // 20 x 48
    expect(parseTrainConfig({ loop: { promptFormat: 'growing' } }).loop.promptFormat).toBe('growing');
    expect(() => parseTrainConfig({ loop: { promptFormat: 'full' } })).toThrow(/loop.promptFormat/);
    // HGPO's levels reach as far back as the growing prompt shows: every step.
    const growing = {
      ...HOUSEHOLD_DEFAULT,
      loop: { ...HOUSEHOLD_DEFAULT.loop, promptFormat: 'growing' as const },
    };
    expect(parseTrainConfig({ ...growing, estimator: 'hgpo' }).estimatorOptions.history).toBe(12);
  });

  it("gives HGPO the loop's history unless its options set one", () => {
    expect(parseTrainConfig({ estimator: 'hgpo', loop: { history: 1 } }).estimatorOptions.history).toBe(1);
    expect(parseTrainConfig({ estimator: 'hgpo', loop: { history: 3 } }).estimatorOptions.history).toBe(3);
    expect(
      parseTrainConfig({ estimator: 'hgpo', loop: { history: 1 }, estimatorOptions: { history: 2 } })
        .estimatorOptions.history,
    ).toBe(2);
  });

  it('selects the penalty after normalization for the estimators that have one, unless told otherwise', () => {
    expect(parseTrainConfig({ estimator: 'gigpo' }).estimatorOptions.penaltyPlacement).toBe(
      'after-normalization',
    );
    expect(parseTrainConfig({ estimator: 'hgpo' }).estimatorOptions.penaltyPlacement).toBe(
      'after-normalization',
    );
    expect(
      parseTrainConfig({ estimator: 'grpo', penaltyPlacement: 'in-return' }).estimatorOptions
        .penaltyPlacement,
    ).toBe('in-return');
    // The estimator's own option wins over the trainer's field.
    expect(
      parseTrainConfig({ estimator: 'rloo', estimatorOptions: { penaltyPlacement: 'in-return' } })
        .estimatorOptions.penaltyPlacement,
    ).toBe('in-return');
    // IGPO's format penalty has no placement: nothing is added.
    const igpo = parseTrainConfig({ env: 'search', estimator: 'igpo' });
    expect('penaltyPlacement' in igpo.estimatorOptions).toBe(false);
  });

  it.each([
    [{ groupSize: 0 }, 'groupSize'],
    [{ ppo: { epochs: 1.5 } }, 'ppo.epochs'],
    [{ estimator: 'ppo' }, 'estimator'],
    [{ estimatorOptions: { gamma: 2 } }, 'estimatorOptions.gamma'],
    [{ estimator: 'grpo', estimatorOptions: { gamma: 0.9 } }, 'estimatorOptions.gamma'],
    [{ eval: { split: 'test' } }, 'eval.split'],
    [{ sft: { enabled: false } }, 'sft.enabled'],
    [{ policy: { model: { width: 30, layers: 1, heads: 4, contextLength: 64 } } }, 'policy.model.heads'],
    [{ itertions: 3 }, 'itertions'],
    [{ penaltyPlacement: 'later' }, 'penaltyPlacement'],
    [{ estimatorOptions: { penaltyPlacement: 'later' } }, 'estimatorOptions.penaltyPlacement'],
  ])('rejects %j naming %s', (input, field) => {
    let error: unknown;
    try {
      parseTrainConfig(input);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(TrainConfigError);
    expect((error as TrainConfigError).field).toBe(field);
    expect((error as Error).message).toContain(`'${field}'`);
  });
});
