/**
 * Where should the invalid-action penalty go? Runs GRPO and GiGPO over a household-shaped batch
 * (200 groups of G = 8, every other group all-lost, 45% invalid steps) with the references' rule
 * ('in-return'), stepwise's 'after-normalization', and the alternative of leaving the episode term
 * out of single-outcome groups, and prints the share of steps with a positive advantage by kind
 * of step. Run: `npx tsx scripts/penalty-placement.ts`.
 */
import { gigpo, grpo, type StepRow } from '../src/credit/index.ts';
import { uniform } from '../src/util/random.ts';

// household-shaped batch: 12 groups x G=8, p(win) per group varies, half the groups all-lost
const r = uniform(3);
const rows: StepRow[] = [];
for (let g = 0; g < 200; g++) {
  const pWin = g % 2 === 0 ? 0 : r() * 0.6;
  for (let t = 0; t < 8; t++) {
    const won = r() < pWin;
    const n = won ? 4 + Math.floor(r() * 6) : 12;
    for (let s = 0; s < n; s++) {
      const anchor = s === 0 ? 'room' : `obs${Math.floor(r() * 4)}`;
      rows.push({
        groupId: `g${g}`,
        trajectoryId: `t${t}`,
        stepIndex: s,
        anchor,
        envReward: won && s === n - 1 ? 10 : 0,
        valid: r() > 0.45,
      });
    }
  }
}
const ret = new Map<string, number>();
for (const x of rows)
  ret.set(`${x.groupId}|${x.trajectoryId}`, (ret.get(`${x.groupId}|${x.trajectoryId}`) ?? 0) + x.envReward);
const groupWon = new Map<string, boolean>();
for (const [k, v] of ret) if (v > 0) groupWon.set(k.split('|')[0]!, true);
function report(name: string, a: Float64Array | number[]) {
  const c = { lostValidAllLost: [0, 0], lostValidMixed: [0, 0], wonRows: [0, 0], invalid: [0, 0] };
  let sumLostMixed = 0,
    sumWon = 0;
  rows.forEach((x, i) => {
    const won = ret.get(`${x.groupId}|${x.trajectoryId}`)! > 0;
    const mixed = groupWon.get(String(x.groupId)) === true;
    if (!x.valid) {
      c.invalid[0]! += a[i]! > 1e-9 ? 1 : 0;
      c.invalid[1]!++;
      return;
    }
    if (won) {
      c.wonRows[0]! += a[i]! > 1e-9 ? 1 : 0;
      c.wonRows[1]!++;
      sumWon += a[i]!;
    } else if (mixed) {
      c.lostValidMixed[0]! += a[i]! > 1e-9 ? 1 : 0;
      c.lostValidMixed[1]!++;
      sumLostMixed += a[i]!;
    } else {
      c.lostValidAllLost[0]! += a[i]! > 1e-9 ? 1 : 0;
      c.lostValidAllLost[1]!++;
    }
  });
  const pct = (p: number[]) => `${((100 * p[0]!) / p[1]!).toFixed(1)}%`;
  console.log(
    `${name}: positive share - valid steps of all-lost groups ${pct(c.lostValidAllLost)}, valid steps of losing trajectories in mixed groups ${pct(c.lostValidMixed)} (mean ${(sumLostMixed / c.lostValidMixed[1]!).toFixed(3)}), steps of won trajectories ${pct(c.wonRows)} (mean ${(sumWon / c.wonRows[1]!).toFixed(3)}), invalid steps ${pct(c.invalid)}`,
  );
}
for (const est of ['grpo', 'gigpo'] as const) {
  const run = est === 'grpo' ? grpo : gigpo;
  report(`${est} in-return`, run(rows).advantages);
  report(`${est} after-normalization`, run(rows, { penaltyPlacement: 'after-normalization' }).advantages);
  // the alternative: the references' rule, but the episode term left out of single-outcome groups
  const base = run(rows);
  const ep = est === 'grpo' ? base.advantages : (base.details as { episode: Float64Array }).episode;
  report(
    `${est} drop-episode-term`,
    rows.map((x, i) =>
      groupWon.get(String(x.groupId)) ? base.advantages[i]! : base.advantages[i]! - ep[i]!,
    ),
  );
}
