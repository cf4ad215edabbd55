/**
 * Household task generation: room layouts, goals of the six task types, and the train / valid-seen /
 * valid-unseen splits.
 */
import { z } from 'zod';
import { hashSeed, Rng } from '../../util/random.ts';
import { checkKind, SPLITS, type Split, type Task, type TaskGenerator } from '../types.ts';
import {
  APPLIANCE,
  type HouseholdTaskType,
  LAMP,
  LAMP_PLACES,
  OBJECTS,
  ON_SURFACES,
  RECEPTACLES,
  ROOM_RECEPTACLES,
  ROOMS,
  type Room,
  TASK_TYPES,
} from './catalog.ts';
import { type HouseholdGoal, HouseholdState, type HouseholdWorld } from './world.ts';

export type HouseholdTask = Task<HouseholdTaskType, HouseholdWorld>;

export const HouseholdConfig = z.object({
  /** Split `reset(seed)` draws tasks from when no task is given. */
  split: z.enum(SPLITS).default('train'),
  /** Receptacles per room (at least the room's required appliances). 8 keeps prompts short. */
  receptacles: z.number().int().min(4).max(60).default(8),
  /** Objects besides the goal objects and lamps. */
  objects: z.number().int().min(0).max(100).default(5),
  /** Extra objects of the goal object's category but another kind (a cup in a mug task). */
  distractors: z.number().int().min(0).max(50).default(0),
  taskTypes: z
    .array(z.enum(TASK_TYPES))
    .min(1)
    .default([...TASK_TYPES]),
  /** Layouts per room type; every fifth one is held out for valid-unseen. */
  layoutsPerRoom: z.number().int().min(5).max(1000).default(30),
  /** Steps before a trajectory ends unwon. */
  maxSteps: z.number().int().positive().default(50),
  /**
   * What a step's anchor (GiGPO's step groups) is: 'observation', the text the agent read (the
   * references', on ALFWorld the only handle on the state), or 'state', the world itself (where
   * the agent stands, what it holds, every receptacle's state and contents). The same text can
   * stand for different worlds ("Nothing happens.", a receptacle seen with or without the object
   * in hand); 'state' groups only identical ones, GiGPO's definition of an anchor state.
   */
  anchor: z.enum(['observation', 'state']).default('observation'),
});
export type HouseholdConfig = z.infer<typeof HouseholdConfig>;

/** Rooms where a task type can be set: it needs its appliance or a lamp. */
const TYPE_ROOMS: Record<HouseholdTaskType, Room[]> = {
  pick_and_place_simple: [...ROOMS],
  pick_two_obj_and_place: [...ROOMS],
  look_at_obj_in_light: ['livingroom', 'bedroom'],
  pick_clean_then_place_in_recep: ['kitchen', 'bathroom'],
  pick_heat_then_place_in_recep: ['kitchen'],
  pick_cool_then_place_in_recep: ['kitchen'],
};

const NEEDS: Partial<Record<HouseholdTaskType, 'clean' | 'heat' | 'cool'>> = {
  pick_clean_then_place_in_recep: 'clean',
  pick_heat_then_place_in_recep: 'heat',
  pick_cool_then_place_in_recep: 'cool',
};

/** Layouts with (index within its room) % 5 == 4 are held out: only valid-unseen uses them. */
export function isHeldOutLayout(layout: number): boolean {
  return Math.floor(layout / ROOMS.length) % 5 === 4;
}

/** About one in five (task type, object, target) combinations is held out for valid-unseen. */
export function isHeldOutCombo(goal: HouseholdGoal): boolean {
  return hashSeed(`${goal.type}|${goal.object}|${goal.target ?? LAMP}`) % 5 === 0;
}

/** Train and valid-seen share layouts and combinations; a world fingerprint assigns each instance to one. */
export function seenBucket(world: HouseholdWorld): 'train' | 'valid-seen' {
  return hashSeed(JSON.stringify(world)) % 10 === 0 ? 'valid-seen' : 'train';
}

/** The receptacle kinds of a layout, in the order they are listed; deterministic in (layout, size). */
export function layoutKinds(layout: number, receptacles: number): { room: Room; kinds: string[] } {
  const room = ROOMS[layout % ROOMS.length]!;
  const rng = new Rng(`layout:${layout}:${receptacles}`);
  const { required, optional } = ROOM_RECEPTACLES[room];
  const kinds = [...required];
  while (kinds.length < receptacles) kinds.push(rng.pick(optional));
  return { room, kinds: rng.shuffle(kinds) };
}

const TEMPLATES: Record<HouseholdTaskType, ((o: string, t: string) => string)[]> = {
  pick_and_place_simple: [(o, t) => `put a ${o} ${t}.`, (o, t) => `put some ${o} ${t}.`],
  look_at_obj_in_light: [
    (o) => `look at ${o} under the ${LAMP}.`,
    (o) => `examine the ${o} with the ${LAMP}.`,
  ],
  pick_clean_then_place_in_recep: [
    (o, t) => `put a clean ${o} ${t}.`,
    (o, t) => `clean some ${o} and put it ${t}.`,
  ],
  pick_heat_then_place_in_recep: [
    (o, t) => `put a hot ${o} ${t}.`,
    (o, t) => `heat some ${o} and put it ${t}.`,
  ],
  pick_cool_then_place_in_recep: [
    (o, t) => `put a cool ${o} ${t}.`,
    (o, t) => `cool some ${o} and put it ${t}.`,
  ],
  pick_two_obj_and_place: [(o, t) => `put two ${o} ${t}.`, (o, t) => `find two ${o} and put them ${t}.`],
};

/** "put a clean mug in coffeemachine." */
export function goalText(goal: HouseholdGoal, phrasing: number): string {
  const templates = TEMPLATES[goal.type];
  const target = goal.target ? `${ON_SURFACES.has(goal.target) ? 'on' : 'in'} ${goal.target}` : '';
  return templates[phrasing % templates.length]!(goal.object, target);
}

/** The task's opening text: the room overview and the goal (the first observation and anchor). */
export function renderHouseholdTask(task: HouseholdTask): string {
  return `${new HouseholdState(task.payload).overview()}\n\nYour task is to: ${task.payload.goalText}`;
}

export class HouseholdGenerator implements TaskGenerator<HouseholdTask> {
  readonly env = 'household';
  readonly kinds = TASK_TYPES;
  readonly config: HouseholdConfig;

  constructor(config: Partial<HouseholdConfig> = {}) {
    this.config = HouseholdConfig.parse(config);
  }

  generate(split: Split, seed: number, kind?: string): HouseholdTask {
    const forced = kind === undefined ? undefined : checkKind(this.env, this.kinds, kind);
    const rng = new Rng(`household:${split}:${seed}`);
    for (let attempt = 0; attempt < 500; attempt++) {
      const type = forced ?? rng.pick(this.config.taskTypes);
      const world = this.tryWorld(rng, split, type);
      if (!world) continue;
      if (split !== 'valid-unseen' && seenBucket(world) !== split) continue;
      return { env: this.env, id: `${this.env}/${split}/${seed}`, kind: type, split, seed, payload: world };
    }
    throw new Error(`household: could not generate a ${forced ?? 'task'} for split ${split}, seed ${seed}`);
  }

  private tryWorld(rng: Rng, split: Split, type: HouseholdTaskType): HouseholdWorld | undefined {
    const cfg = this.config;
    const room = rng.pick(TYPE_ROOMS[type]);
    const unseen = split === 'valid-unseen';
    const layouts = [];
    for (let i = 0; i < cfg.layoutsPerRoom; i++) {
      const id = i * ROOMS.length + ROOMS.indexOf(room);
      if (isHeldOutLayout(id) === unseen) layouts.push(id);
    }
    const layout = rng.pick(layouts);
    const { kinds } = layoutKinds(layout, cfg.receptacles);
    const present = new Set(kinds);

    // The goal: an object kind of this room that the task can transform, and a target it may go to.
    const need = NEEDS[type];
    const objectKinds = Object.keys(OBJECTS).filter(
      (k) => OBJECTS[k]!.rooms.includes(room) && (!need || OBJECTS[k]![need]),
    );
    const object = rng.pick(objectKinds);
    const places = OBJECTS[object]!.places.filter((p) => present.has(p));
    let target: string | undefined;
    if (type !== 'look_at_obj_in_light') {
      const appliance = (APPLIANCE as Record<string, string>)[type];
      const targets = places.filter((p) => p !== appliance);
      if (targets.length === 0) return undefined;
      target = rng.pick(targets);
    }
    const goal: HouseholdGoal = target ? { type, object, target } : { type, object };
    if (isHeldOutCombo(goal) !== unseen) return undefined;
    // Goal objects start away from the target kind, so the goal never holds at the start.
    const starts = places.filter((p) => p !== target);
    if (starts.length === 0) return undefined;
    if (type === 'look_at_obj_in_light' && !LAMP_PLACES.some((p) => present.has(p))) return undefined;

    const counts = new Map<string, number>();
    const receptacles = kinds.map((kind) => {
      const n = (counts.get(kind) ?? 0) + 1;
      counts.set(kind, n);
      return { name: `${kind} ${n}`, kind, open: RECEPTACLES[kind]!.openable && rng.chance(0.25) };
    });
    const anyOf = (kindsAllowed: string[]) =>
      rng.pick(receptacles.filter((r) => kindsAllowed.includes(r.kind))).name;

    const placed: { kind: string; at: string }[] = [];
    const goalCount = type === 'pick_two_obj_and_place' ? rng.int(2, 3) : rng.int(1, 2);
    for (let i = 0; i < goalCount; i++) placed.push({ kind: object, at: anyOf(starts) });
    const roomKinds = Object.keys(OBJECTS).filter(
      (k) =>
        k !== object && OBJECTS[k]!.rooms.includes(room) && OBJECTS[k]!.places.some((p) => present.has(p)),
    );
    const category = OBJECTS[object]!.category;
    const similar = roomKinds.filter((k) => OBJECTS[k]!.category === category);
    for (let i = 0; i < cfg.distractors; i++) {
      const kind = rng.pick(similar.length > 0 ? similar : roomKinds);
      placed.push({ kind, at: anyOf(OBJECTS[kind]!.places) });
    }
    for (let i = 0; i < cfg.objects; i++) {
      const kind = rng.pick(roomKinds);
      placed.push({ kind, at: anyOf(OBJECTS[kind]!.places) });
    }
    const lampPlaces = LAMP_PLACES.filter((p) => present.has(p));
    if (lampPlaces.length > 0 && (type === 'look_at_obj_in_light' || rng.chance(0.5))) {
      placed.push({ kind: LAMP, at: anyOf(lampPlaces) });
    }

    const numbers = new Map<string, number>();
    const objects = rng.shuffle(placed).map((o) => {
      const n = (numbers.get(o.kind) ?? 0) + 1;
      numbers.set(o.kind, n);
      return { name: `${o.kind} ${n}`, kind: o.kind, at: o.at };
    });
    return { room, layout, receptacles, objects, goal, goalText: goalText(goal, rng.int(0, 1)) };
  }
}
