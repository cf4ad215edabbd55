import { describe, expect, it } from 'vitest';
import { TASK_TYPES } from '../../src/envs/household/catalog.ts';
import { HouseholdEnv } from '../../src/envs/household/env.ts';
import { expertStepsToGoal, HouseholdExpert } from '../../src/envs/household/expert.ts';
import {
  HouseholdGenerator,
  type HouseholdTask,
  isHeldOutCombo,
  isHeldOutLayout,
} from '../../src/envs/household/generator.ts';
import { HouseholdState, type HouseholdWorld } from '../../src/envs/household/world.ts';
import { SPLITS } from '../../src/envs/types.ts';
import { Rng } from '../../src/util/random.ts';

const expert = new HouseholdExpert();

/** Plays `n` random admissible commands from a seeded RNG and returns the transcript. */
function randomTranscript(env: HouseholdEnv, task: HouseholdTask, n: number, seed: number): string[] {
  const rng = new Rng(seed);
  const out = [env.resetSync(task.seed, task)];
  for (let i = 0; i < n; i++) {
    const action = rng.pick(env.admissibleActions());
    const r = env.stepSync(action);
    out.push(action, r.observation, String(r.reward), String(r.done));
    if (r.done) break;
  }
  return out;
}

/** A hand-written kitchen, so that win conditions are checked against worlds we know exactly. */
function kitchen(goal: HouseholdWorld['goal']): HouseholdTask {
  const world: HouseholdWorld = {
    room: 'kitchen',
    layout: 0,
    receptacles: [
      { name: 'countertop 1', kind: 'countertop', open: true },
      { name: 'cabinet 1', kind: 'cabinet', open: false },
      { name: 'cabinet 2', kind: 'cabinet', open: false },
      { name: 'sinkbasin 1', kind: 'sinkbasin', open: true },
      { name: 'microwave 1', kind: 'microwave', open: false },
      { name: 'fridge 1', kind: 'fridge', open: false },
      { name: 'desk 1', kind: 'desk', open: true },
    ],
    objects: [
      { name: 'mug 1', kind: 'mug', at: 'countertop 1' },
      { name: 'mug 2', kind: 'mug', at: 'cabinet 1' },
      { name: 'cup 1', kind: 'cup', at: 'countertop 1' },
      { name: 'desklamp 1', kind: 'desklamp', at: 'desk 1' },
    ],
    goal,
    goalText: 'test goal.',
  };
  return {
    env: 'household',
    id: 'household/test/0',
    kind: goal.type,
    split: 'train',
    seed: 0,
    payload: world,
  };
}

function play(env: HouseholdEnv, actions: string[]) {
  return actions.map((a) => {
    expect(env.admissibleActions()).toContain(a);
    return env.stepSync(a);
  });
}

describe('household env', () => {
  it('opens in TextWorld style and gives ALFWorld feedback', () => {
    const env = new HouseholdEnv();
    const first = env.resetSync(
      0,
      kitchen({ type: 'pick_and_place_simple', object: 'mug', target: 'sinkbasin' }),
    );
    expect(first).toBe(
      'You are in the middle of a room. Looking quickly around you, you see a countertop 1, a cabinet 1, ' +
        'a cabinet 2, a sinkbasin 1, a microwave 1, a fridge 1, and a desk 1.\n\nYour task is to: test goal.',
    );
    expect(env.anchor).toBe(first);
    expect(env.stepSync('go to cabinet 1').observation).toBe(
      'You arrive at cabinet 1. The cabinet 1 is closed.',
    );
    expect(env.stepSync('open cabinet 1').observation).toBe(
      'You open the cabinet 1. The cabinet 1 is open. In it, you see a mug 2.',
    );
    expect(env.stepSync('take mug 2 from cabinet 1').observation).toBe(
      'You pick up the mug 2 from the cabinet 1.',
    );
    expect(env.stepSync('inventory').observation).toBe('You are carrying: a mug 2.');
    expect(env.stepSync('go to countertop 1').observation).toBe(
      'You arrive at countertop 1. On the countertop 1, you see a mug 1, and a cup 1.',
    );
    expect(env.anchor).toBe('You arrive at countertop 1. On the countertop 1, you see a mug 1, and a cup 1.');
    // Holding one object at a time: taking another is impossible.
    expect(env.admissibleActions().filter((a) => a.startsWith('take'))).toEqual([]);
  });

  it("anchor 'state': one anchor per world, whatever the observation says", () => {
    const env = new HouseholdEnv({ anchor: 'state' });
    const task = kitchen({ type: 'pick_and_place_simple', object: 'mug', target: 'sinkbasin' });
    env.resetSync(0, task);
    const start = env.anchor;
    env.stepSync('go to countertop 1');
    const atCounter = env.anchor;
    expect(atCounter).not.toBe(start);
    // A command that does nothing leaves the world, and so the anchor, as it was (the observation
    // anchor would read "Nothing happens.", the same text in every world).
    expect(env.stepSync('go to countertop 1').observation).toBe('Nothing happens.');
    expect(env.anchor).toBe(atCounter);
    // The same receptacle reached with the mug in hand is another world, though it reads the same.
    env.stepSync('take mug 1 from countertop 1');
    env.stepSync('go to cabinet 1');
    const seen = env.stepSync('go to countertop 1').observation;
    const other = new HouseholdEnv({ anchor: 'state' });
    other.resetSync(0, task);
    expect(other.stepSync('go to countertop 1').observation).not.toBe(seen); // the mug 1 is gone
    expect(env.anchor).not.toBe(atCounter);
    expect(JSON.parse(env.anchor).holding.name).toBe('mug 1');
    // Replaying the same commands gives the same anchors: they identify worlds, not visits.
    other.stepSync('take mug 1 from countertop 1');
    other.stepSync('go to cabinet 1');
    other.stepSync('go to countertop 1');
    expect(other.anchor).toBe(env.anchor);
  });

  it("expertStepsToGoal: the exploring expert's path length from any state, one shorter after its own command", () => {
    const env = new HouseholdEnv({ receptacles: 4, objects: 1 });
    const expert = new HouseholdExpert({ explore: true });
    for (let seed = 0; seed < 20; seed++) {
      const task = env.generator.generate('train', seed);
      const { actions } = expert.demonstrate(task);
      expect(expertStepsToGoal(new HouseholdState(task.payload))).toBe(actions.length);
      // After the expert's first command the path is one step shorter; after a no-op it is not.
      const after = new HouseholdState(task.payload);
      after.execute(actions[0]!);
      expect(expertStepsToGoal(after)).toBe(actions.length - 1);
      const idle = new HouseholdState(task.payload);
      expect(idle.execute('go to nowhere 9').admissible).toBe(false);
      expect(1 + expertStepsToGoal(idle)).toBe(actions.length + 1);
    }
    // A goal that already holds needs nothing; a step limit below the path gives Infinity.
    const task = env.generator.generate('train', 0);
    const done = new HouseholdState(task.payload);
    for (const a of expert.demonstrate(task).actions) done.execute(a);
    expect(expertStepsToGoal(done)).toBe(0);
    expect(expertStepsToGoal(new HouseholdState(task.payload), 1)).toBe(Number.POSITIVE_INFINITY);
  });

  it('is deterministic: same task and seed, same world and transcript', () => {
    const a = new HouseholdEnv();
    const b = new HouseholdEnv();
    for (let seed = 0; seed < 30; seed++) {
      const task = a.generator.generate('train', seed);
      expect(b.generator.generate('train', seed)).toEqual(task);
      expect(randomTranscript(a, task, 40, seed)).toEqual(randomTranscript(b, task, 40, seed));
      // reset(seed) without a task draws the same task from the configured split.
      expect(b.resetSync(seed)).toBe(a.resetSync(seed, task));
    }
  });

  it('the expert solves 1000 tasks of every task type (admissible commands only, won on the last step)', () => {
    const env = new HouseholdEnv();
    for (const type of TASK_TYPES) {
      let solved = 0;
      for (let seed = 0; seed < 1000; seed++) {
        const split = SPLITS[seed % 3]!;
        const task = env.generator.generate(split, seed, type);
        expect(task.kind).toBe(type);
        env.resetSync(seed, task);
        const { actions } = expert.demonstrate(task);
        let won = false;
        for (let i = 0; i < actions.length; i++) {
          if (!env.admissibleActions().includes(actions[i]!)) break;
          const r = env.stepSync(actions[i]!);
          if (r.info.won) {
            won = i === actions.length - 1 && r.reward === 10 && r.done;
            break;
          }
        }
        if (won) solved++;
      }
      expect({ type, solved }).toEqual({ type, solved: 1000 });
    }
  });

  it('the exploring expert solves every task type using only what it has observed', () => {
    const explorer = new HouseholdExpert({ explore: true });
    const env = new HouseholdEnv({ receptacles: 12, objects: 8, distractors: 2 });
    for (const type of TASK_TYPES) {
      for (let seed = 0; seed < 200; seed++) {
        const task = env.generator.generate(SPLITS[seed % 3]!, seed, type);
        let observation = env.resetSync(seed, task);
        const actions = explorer.demonstrate(task).actions;
        let won = false;
        for (const a of actions) {
          expect(env.admissibleActions()).toContain(a);
          // A take never happens blind: the last observation (the arrival or the opening) showed it.
          const took = /^take (.+) from /.exec(a);
          if (took) expect(observation).toContain(took[1]);
          const r = env.stepSync(a);
          observation = r.observation;
          won = r.info.won;
        }
        expect({ type, seed, won }).toEqual({ type, seed, won: true });
        // Where the goal object lies does not change where the search starts: the first `go to`
        // is the first receptacle in sorted order (the admissible list's) of a kind such an
        // object may be in.
        const world = task.payload;
        const places = world.objects.filter((o) => o.kind === world.goal.object).map((o) => o.at);
        const firstGo = actions.find((a) => a.startsWith('go to '))!.slice('go to '.length);
        const sorted = world.receptacles.map((r) => r.name).sort();
        expect(sorted.indexOf(firstGo)).toBeLessThanOrEqual(
          Math.min(...places.map((p) => sorted.indexOf(p))),
        );
      }
    }
    // The default expert walks straight to the object instead.
    const task = env.generator.generate('train', 3, 'pick_and_place_simple');
    const straight = expert.demonstrate(task).actions;
    expect(straight.length).toBeLessThanOrEqual(explorer.demonstrate(task).actions.length);
  });

  it('the exploring expert labels any state: from where random play left off, it still reaches the goal', () => {
    const explorer = new HouseholdExpert({ explore: true });
    const env = new HouseholdEnv({ receptacles: 8, objects: 4, maxSteps: 400 });
    const rng = new Rng(11);
    for (let seed = 0; seed < 300; seed++) {
      const task = env.generator.generate(SPLITS[seed % 3]!, seed);
      env.resetSync(seed, task);
      let won = false;
      for (let i = 0; i < 1 + (seed % 15) && !won; i++)
        won = env.stepSync(rng.pick(env.admissibleActions())).info.won;
      for (let i = 0; i < 100 && !won; i++) {
        const action = explorer.act(env.view());
        const r = env.stepSync(action);
        expect(r.info.valid, `${task.id}: ${action}`).toBe(true);
        won = r.info.won;
      }
      expect({ id: task.id, won }).toEqual({ id: task.id, won: true });
    }
  });

  it('the expert also solves large worlds with distractors', () => {
    const env = new HouseholdEnv({ receptacles: 24, objects: 30, distractors: 6 });
    for (let seed = 0; seed < 300; seed++) {
      const task = env.generator.generate(SPLITS[seed % 3]!, seed);
      env.resetSync(seed, task);
      let won = false;
      for (const a of expert.demonstrate(task).actions) {
        expect(env.admissibleActions()).toContain(a);
        won = env.stepSync(a).info.won;
      }
      expect(won).toBe(true);
    }
  });

  it('commands that are not admissible (impossible or malformed) say "Nothing happens.", change nothing and are invalid', () => {
    const env = new HouseholdEnv({ objects: 8 });
    const rng = new Rng(7);
    for (let seed = 0; seed < 40; seed++) {
      const task = env.generator.generate('train', seed);
      env.resetSync(seed, task);
      const names = [
        ...task.payload.receptacles.map((r) => r.name),
        ...task.payload.objects.map((o) => o.name),
        'cabinet 99',
      ];
      for (let i = 0; i < 20; i++) {
        const admissible = new Set(env.admissibleActions());
        const x = rng.pick(names);
        const y = rng.pick(names);
        const candidates = [
          `go to ${x}`,
          `open ${x}`,
          `close ${x}`,
          `take ${x} from ${y}`,
          `move ${x} to ${y}`,
          `heat ${x} with ${y}`,
          `cool ${x} with ${y}`,
          `clean ${x} with ${y}`,
          `use ${x}`,
          `examine ${x}`,
        ].filter((c) => !admissible.has(c));
        const state = (env as unknown as { state: HouseholdState }).state;
        for (const c of candidates) {
          const before = state.snapshot();
          const r = env.stepSync(c);
          expect(r).toMatchObject({
            observation: 'Nothing happens.',
            reward: 0,
            info: { valid: false, won: false },
          });
          expect(state.snapshot()).toBe(before);
          if (r.done) break;
        }
        if (env.stepCount >= 45) break;
        const before = state.snapshot();
        const bad = env.stepSync('dance with the mug');
        expect(bad.info.valid).toBe(false);
        expect(state.snapshot()).toBe(before);
        if (bad.done) break;
        const ok = env.stepSync(rng.pick(env.admissibleActions()));
        expect(ok.info.valid).toBe(true);
        if (ok.done || env.stepCount >= 45) break;
      }
    }
  });

  it('wins exactly when each goal holds (and not on the near misses)', () => {
    const env = new HouseholdEnv();
    const won = (rs: { info: { won: boolean } }[]) => rs.map((r) => r.info.won);

    // Clean: placing an uncleaned mug does not win; the cleaned one does.
    env.resetSync(0, kitchen({ type: 'pick_clean_then_place_in_recep', object: 'mug', target: 'cabinet' }));
    let rs = play(env, [
      'go to countertop 1',
      'take mug 1 from countertop 1',
      'go to cabinet 2',
      'open cabinet 2',
    ]);
    rs.push(...play(env, ['move mug 1 to cabinet 2', 'take mug 1 from cabinet 2', 'go to sinkbasin 1']));
    rs.push(...play(env, ['clean mug 1 with sinkbasin 1', 'go to cabinet 2', 'move mug 1 to cabinet 2']));
    expect(won(rs)).toEqual([false, false, false, false, false, false, false, false, false, true]);
    expect(rs.at(-1)).toMatchObject({ reward: 10, done: true });

    // Heat: a cleaned (not heated) mug does not win; cooling after heating undoes it.
    env.resetSync(0, kitchen({ type: 'pick_heat_then_place_in_recep', object: 'mug', target: 'countertop' }));
    rs = play(env, ['go to cabinet 1', 'open cabinet 1', 'take mug 2 from cabinet 1', 'go to sinkbasin 1']);
    rs.push(
      ...play(env, ['clean mug 2 with sinkbasin 1', 'go to microwave 1', 'heat mug 2 with microwave 1']),
    );
    rs.push(...play(env, ['go to fridge 1', 'cool mug 2 with fridge 1', 'go to countertop 1']));
    rs.push(
      ...play(env, ['move mug 2 to countertop 1', 'take mug 2 from countertop 1', 'go to microwave 1']),
    );
    rs.push(
      ...play(env, ['heat mug 2 with microwave 1', 'go to countertop 1', 'move mug 2 to countertop 1']),
    );
    expect(won(rs).indexOf(true)).toBe(rs.length - 1);

    // Cool: a cup (another kind) cooled and placed does not win a mug task.
    env.resetSync(0, kitchen({ type: 'pick_cool_then_place_in_recep', object: 'mug', target: 'cabinet' }));
    rs = play(env, [
      'go to countertop 1',
      'take cup 1 from countertop 1',
      'go to fridge 1',
      'cool cup 1 with fridge 1',
    ]);
    rs.push(...play(env, ['go to cabinet 1', 'open cabinet 1', 'move cup 1 to cabinet 1']));
    expect(won(rs).some(Boolean)).toBe(false);
    rs = play(env, [
      'go to countertop 1',
      'take mug 1 from countertop 1',
      'go to fridge 1',
      'cool mug 1 with fridge 1',
    ]);
    rs.push(...play(env, ['go to cabinet 1', 'move mug 1 to cabinet 1']));
    expect(won(rs)).toEqual([false, false, false, false, false, true]);

    // Pick two: one mug is not enough; two mugs in two different cabinets are not either.
    env.resetSync(0, kitchen({ type: 'pick_two_obj_and_place', object: 'mug', target: 'cabinet' }));
    rs = play(env, [
      'go to countertop 1',
      'take mug 1 from countertop 1',
      'go to cabinet 2',
      'open cabinet 2',
    ]);
    rs.push(...play(env, ['move mug 1 to cabinet 2', 'go to cabinet 1', 'open cabinet 1']));
    expect(won(rs).some(Boolean)).toBe(false);
    rs = play(env, ['take mug 2 from cabinet 1', 'go to cabinet 2', 'move mug 2 to cabinet 2']);
    expect(won(rs)).toEqual([false, false, true]);

    // Look in light: lamp on while not holding the mug does not win; arriving with the mug does.
    env.resetSync(0, kitchen({ type: 'look_at_obj_in_light', object: 'mug' }));
    rs = play(env, ['go to desk 1', 'use desklamp 1', 'go to countertop 1', 'take cup 1 from countertop 1']);
    rs.push(...play(env, ['go to desk 1', 'go to countertop 1', 'move cup 1 to countertop 1']));
    rs.push(...play(env, ['take mug 1 from countertop 1', 'go to desk 1']));
    expect(won(rs).indexOf(true)).toBe(rs.length - 1);

    // Pick and place: a cup in the cabinet does not place a mug.
    env.resetSync(0, kitchen({ type: 'pick_and_place_simple', object: 'mug', target: 'sinkbasin' }));
    rs = play(env, [
      'go to countertop 1',
      'take cup 1 from countertop 1',
      'go to sinkbasin 1',
      'move cup 1 to sinkbasin 1',
    ]);
    expect(won(rs).some(Boolean)).toBe(false);
    rs = play(env, [
      'go to countertop 1',
      'take mug 1 from countertop 1',
      'go to sinkbasin 1',
      'move mug 1 to sinkbasin 1',
    ]);
    expect(won(rs)).toEqual([false, false, false, true]);
  });

  it('no generated task starts won', () => {
    const gen = new HouseholdGenerator({ distractors: 3 });
    for (let seed = 0; seed < 600; seed++) {
      const task = gen.generate(SPLITS[seed % 3]!, seed);
      expect(new HouseholdState(task.payload).goalHolds()).toBe(false);
    }
  });

  it('splits: train and valid-seen are disjoint instances of seen layouts and combos; valid-unseen is held out', () => {
    const gen = new HouseholdGenerator();
    const fingerprints = { train: new Set<string>(), 'valid-seen': new Set<string>() };
    const combos = (t: HouseholdTask) =>
      `${t.payload.goal.type}|${t.payload.goal.object}|${t.payload.goal.target}`;
    const seen = { layouts: new Set<number>(), combos: new Set<string>() };
    const unseen = { layouts: new Set<number>(), combos: new Set<string>() };
    for (let seed = 0; seed < 1000; seed++) {
      for (const split of ['train', 'valid-seen'] as const) {
        const t = gen.generate(split, seed);
        fingerprints[split].add(JSON.stringify({ ...t.payload, goalText: '' }));
        expect(isHeldOutLayout(t.payload.layout)).toBe(false);
        expect(isHeldOutCombo(t.payload.goal)).toBe(false);
        seen.layouts.add(t.payload.layout);
        seen.combos.add(combos(t));
      }
      const u = gen.generate('valid-unseen', seed);
      unseen.layouts.add(u.payload.layout);
      unseen.combos.add(combos(u));
    }
    for (const f of fingerprints['valid-seen']) expect(fingerprints.train.has(f)).toBe(false);
    for (const l of unseen.layouts) expect(seen.layouts.has(l)).toBe(false);
    for (const c of unseen.combos) expect(seen.combos.has(c)).toBe(false);
    expect(unseen.layouts.size).toBeGreaterThan(10);
    expect(unseen.combos.size).toBeGreaterThan(20);
  });

  it('keeps default prompts short, and grows with the size knobs', () => {
    const small = new HouseholdEnv();
    const big = new HouseholdEnv({ receptacles: 24, objects: 30, distractors: 6 });
    let smallMax = 0;
    let bigMax = 0;
    for (let seed = 0; seed < 200; seed++) {
      const text = (env: HouseholdEnv) => `${env.resetSync(seed)}\n${env.admissibleActions().join('\n')}`;
      smallMax = Math.max(smallMax, text(small).length);
      bigMax = Math.max(bigMax, text(big).length);
      expect(big.task!.payload.receptacles.length).toBeGreaterThanOrEqual(24);
      expect(big.task!.payload.objects.length).toBeGreaterThanOrEqual(37);
    }
    // About 4 characters per token: a few hundred tokens.
    expect(smallMax).toBeLessThan(1200);
    expect(bigMax).toBeGreaterThan(smallMax);
  });

  it('ends at the step limit, and fails clearly on misuse', async () => {
    const env = new HouseholdEnv({ maxSteps: 5 });
    await env.reset(3);
    const rs = [];
    for (let i = 0; i < 5; i++) rs.push(await env.step('look'));
    expect(rs.map((r) => r.done)).toEqual([false, false, false, false, true]);
    await expect(env.step('look')).rejects.toThrow(/finished; call reset\(\) first/);
    expect(() => new HouseholdEnv().stepSync('look')).toThrow(/call reset\(\) before step\(\)/);
    expect(() => env.generator.generate('train', 0, 'make_coffee')).toThrow(
      /unknown task type "make_coffee" \(expected one of: pick_and_place_simple/,
    );
    expect(() => new HouseholdEnv({ taskTypes: ['make_coffee' as never] })).toThrow(/taskTypes/);
  });

  it('tasks survive a JSON round trip', () => {
    const env = new HouseholdEnv();
    const task = env.generator.generate('valid-unseen', 11);
    const copy = JSON.parse(JSON.stringify(task)) as HouseholdTask;
    expect(randomTranscript(env, copy, 30, 1)).toEqual(randomTranscript(env, task, 30, 1));
  });
});

describe('HouseholdState.clone', () => {
  it('is the same world after the same commands, and changes to either leave the other as it was', () => {
    const generator = new HouseholdGenerator();
    for (let seed = 0; seed < 30; seed++) {
      const task = generator.generate('train', seed);
      const world = new HouseholdState(task.payload);
      const rng = new Rng(`clone:${seed}`);
      const history: string[] = [];
      for (let k = 0; k < 6; k++) {
        const c = rng.pick(world.admissible());
        world.execute(c);
        history.push(c);
      }
      const copy = world.clone();
      const replayed = new HouseholdState(task.payload);
      for (const c of history) replayed.execute(c);
      expect(copy.view()).toEqual(replayed.view());
      expect(copy.admissible()).toEqual(world.admissible());
      // The expert plays the copy to the goal; the original stays where it was.
      const before = world.view();
      expect(expertStepsToGoal(copy)).toBe(expertStepsToGoal(replayed));
      expect(world.view()).toEqual(before);
      // And the other way: commands on the original do not reach a new copy's state.
      const second = world.clone();
      // A move always changes the view (examine or look may not).
      world.execute(rng.pick(world.admissible().filter((x) => x.startsWith('go to '))));
      expect(second.view()).toEqual(before);
      expect(world.view()).not.toEqual(before);
    }
  });
});
