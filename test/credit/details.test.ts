/**
 * Row details and their schemas: every estimator's schema names details it returns, HGPO's rows
 * carry their level weights, and HGPO details stored in the older shape (`alpha`) read as today's.
 */
import { describe, expect, it } from 'vitest';
import {
  currentDetails,
  detailSchema,
  detailSchemas,
  estimatorNames,
  estimators,
  hgpo,
  rowDetails,
} from '../../src/credit/index.ts';
import { randomBatch } from './helpers.ts';

describe('detail schemas', () => {
  it('name only details the estimator returns, of the kind the schema says (numbers, per-level lists)', () => {
    const rows = randomBatch(7);
    for (const name of estimatorNames) {
      const details = rowDetails(estimators[name].run(rows).details, 0);
      const schema = detailSchemas[name];
      const numbers = [
        ...schema.fields.filter((f) => f.fromNextStep === undefined).map((f) => f.key),
        ...schema.fields.flatMap((f) => (f.fromNextStep ? [f.fromNextStep] : [])),
        ...(schema.peers?.fields.map((f) => f.key) ?? []),
        ...(schema.peers?.sameAs ? [schema.peers.sameAs] : []),
        ...(schema.peers?.mean ? [schema.peers.mean.key] : []),
      ];
      for (const key of numbers) {
        expect(key in details, `${name}: ${key}`).toBe(true);
        expect(Array.isArray(details[key]), `${name}: ${key}`).toBe(false);
      }
      if (schema.levels) {
        const { value, size, weight } = schema.levels;
        for (const key of [value, size, weight])
          expect(Array.isArray(details[key]), `${name}: ${key}`).toBe(true);
      }
    }
    expect(detailSchema('hgpo')).toBe(detailSchemas.hgpo);
    expect(detailSchema('toString')).toBeUndefined();
    expect(detailSchema('my-estimator')).toBeUndefined();
  });

  it("gives HGPO's rows their level weights: w_k = (k+1)^alpha, w_0 = 1 only with the base group", () => {
    const rows = randomBatch(3);
    const off = rowDetails(hgpo(rows, { alpha: 0.5, history: 2 }).details, 4);
    expect(off.levelWeight).toEqual([null, 2 ** 0.5, 3 ** 0.5, 4 ** 0.5]);
    const on = rowDetails(hgpo(rows, { baseGroup: true }).details, 4);
    expect(on.levelWeight).toEqual([1, 2, 3, 4]);
  });
});

describe('details stored by an older stepwise', () => {
  it("read HGPO's alpha as its level weights, and leave today's shape and other estimators alone", () => {
    const older = { return: 0.5, level: [null, 0.3, 0, null], levelGroupSize: [0, 3, 2, 1], alpha: 2 };
    expect(currentDetails('hgpo', older)).toEqual({
      return: 0.5,
      level: [null, 0.3, 0, null],
      levelGroupSize: [0, 3, 2, 1],
      levelWeight: [null, 4, 9, 16],
    });
    // with the base group (level 0 has members) and no alpha stored (the default 1)
    const base = { level: [0.1, 0.2], levelGroupSize: [6, 2] };
    expect(currentDetails('hgpo', base).levelWeight).toEqual([1, 2]);
    const today = rowDetails(hgpo(randomBatch(1)).details, 0);
    expect(currentDetails('hgpo', today)).toBe(today);
    const gigpo = { episode: 1, alpha: 3 };
    expect(currentDetails('gigpo', gigpo)).toBe(gigpo);
  });
});
