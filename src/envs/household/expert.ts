/**
 * The household experts: the ALFWorld-style planner that reads the whole initial world, and the
 * exploring expert, a rule of the current state that an agent seeing only its observations can
 * imitate, and that labels any state (DAgger).
 */
import type { Demonstration, Expert } from '../types.ts';
import { APPLIANCE, LAMP, LAMP_PLACES, OBJECTS, RECEPTACLES } from './catalog.ts';
import type { HouseholdTask } from './generator.ts';
import { HouseholdState, type HouseholdView } from './world.ts';

export interface HouseholdExpertOptions {
  /**
   * Search instead of going straight to the object (`exploringAction`): visit the receptacles
   * where such an object may be in the order of the admissible list, take it where it is seen.
   * Every decision then follows from the current observation, the goal and the admissible
   * commands, so a policy can imitate it (the default expert reads the whole world, like
   * ALFWorld's handcoded expert, and its first step cannot be learned from the observation).
   */
  explore?: boolean;
}

/** Steps after which the exploring expert gives up on a task (it never needs this many). */
const EXPLORE_LIMIT = 200;

/**
 * The exploring expert's command in a state: a rule of what an agent standing there sees (the
 * receptacle it is at and its contents, what it holds, the goal), with receptacles taken in
 * sorted name order, the order of the admissible list, so that where the search goes next needs
 * no memory of the room's listing or of earlier steps:
 *
 * - holding something else: put it down here (opening the receptacle first);
 * - holding the goal object: light it with a lamp here, else try the next lamp place; or
 *   clean/heat/cool it at the appliance's first receptacle; then bring it to the target kind's
 *   first receptacle (opening it) and put it there;
 * - holding nothing: at a receptacle where such an object may be, open it if closed and take the
 *   first such object seen; else go to the next such receptacle after this one (wrapping around).
 *
 * If no receptacle the search visits holds the object any more (a policy moved it, in DAgger
 * states), it goes where the object is: the one place it uses the true state beyond the view.
 */
/**
 * A state the exploring expert has no command for: a policy can reach states no expert plan passes
 * through (the only such object put down unprocessed on the goal receptacle). DAgger leaves them
 * unlabelled rather than teach a guess.
 */
export class NoExpertActionError extends Error {
  override name = 'NoExpertActionError';
}

/**
 * Steps the exploring expert needs from `state` to the goal (Infinity where it has no command or
 * one is refused). It acts on `state`: pass a copy. How good a command is: one that leaves this
 * one step shorter kept to an expert path (scripts/household-errors.ts, scripts/credit-diagnosis.ts).
 */
export function expertStepsToGoal(state: HouseholdState, limit = 100): number {
  for (let n = 0; n < limit; n++) {
    if (state.goalHolds()) return n;
    let action: string;
    try {
      action = exploringAction(state.view());
    } catch (err) {
      if (err instanceof NoExpertActionError) return Number.POSITIVE_INFINITY;
      throw err;
    }
    if (!state.execute(action).admissible) return Number.POSITIVE_INFINITY;
  }
  return Number.POSITIVE_INFINITY;
}

export function exploringAction(view: HouseholdView): string {
  const { type, object, target } = view.goal;
  const sorted = [...view.receptacles].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const here = sorted.find((r) => r.name === view.location);
  const firstOf = (kind: string) => sorted.find((r) => r.kind === kind)!;
  // The next receptacle of `kinds` after the current one in sorted order, wrapping around.
  const next = (inKinds: (kind: string) => boolean) => {
    const places = sorted.filter((r) => inKinds(r.kind));
    if (places.length === 0) return undefined;
    const at = here ? sorted.indexOf(here) : -1;
    return places.find((r) => sorted.indexOf(r) > at) ?? places[0]!;
  };
  const bring = (r: { name: string; kind: string; open: boolean }, then: string) => {
    if (!here || here.name !== r.name) return `go to ${r.name}`;
    if (RECEPTACLES[r.kind]!.openable && !r.open) return `open ${r.name}`;
    return then;
  };
  const held = view.holding;
  if (held && held.kind !== object) {
    return bring(here!, `move ${held.name} to ${here!.name}`);
  }
  if (held) {
    if (type === 'look_at_obj_in_light') {
      const lamp = here?.contents.find((o) => o.lamp);
      if (lamp) return `use ${lamp.name}`;
      const withLamp = sorted.filter((r) => r.contents.some((o) => o.lamp));
      const place = next((k) => LAMP_PLACES.includes(k)) ?? withLamp[0];
      if (!place) throw new Error('household expert: the room has no lamp');
      return `go to ${place.name}`;
    }
    const verb =
      type === 'pick_clean_then_place_in_recep'
        ? 'clean'
        : type === 'pick_heat_then_place_in_recep'
          ? 'heat'
          : type === 'pick_cool_then_place_in_recep'
            ? 'cool'
            : undefined;
    const done =
      verb === 'clean' ? held.clean : verb === 'heat' ? held.hot : verb === 'cool' ? held.cool : true;
    if (!done) {
      const appliance = firstOf(APPLIANCE[type as keyof typeof APPLIANCE]);
      return here?.name === appliance.name
        ? `${verb} ${held.name} with ${appliance.name}`
        : `go to ${appliance.name}`;
    }
    const t = firstOf(target!);
    return bring(t, `move ${held.name} to ${t.name}`);
  }
  const places = OBJECTS[object]!.places;
  const searched = (kind: string) => places.includes(kind) && kind !== target;
  if (here && searched(here.kind)) {
    if (RECEPTACLES[here.kind]!.openable && !here.open) return `open ${here.name}`;
    const seen = here.contents.filter((o) => o.kind === object).sort((a, b) => (a.name < b.name ? -1 : 1));
    if (seen.length > 0) return `take ${seen[0]!.name} from ${here.name}`;
  }
  const anywhere = sorted.some((r) => searched(r.kind) && r.contents.some((o) => o.kind === object));
  if (!anywhere) {
    // Moved out of the search's way: go where one lies (not on the target, where it is done).
    const lies = sorted.find((r) => r.kind !== target && r.contents.some((o) => o.kind === object));
    if (!lies) throw new NoExpertActionError(`household expert: no ${object} left to take`);
    return bring(lies, `take ${lies.contents.find((o) => o.kind === object)!.name} from ${lies.name}`);
  }
  return `go to ${next(searched)!.name}`;
}

/**
 * The household expert: plans from the task's full initial world (like ALFWorld's handcoded
 * expert, which reads the game state) and returns the commands that reach the goal; with
 * `explore`, it follows `exploringAction` from the start, as an agent that only sees what it
 * observes would.
 */
export class HouseholdExpert implements Expert<HouseholdTask> {
  constructor(readonly options: HouseholdExpertOptions = {}) {}

  /** The command the exploring expert gives in `view` (any state, e.g. one a policy reached). */
  act(view: HouseholdView): string {
    return exploringAction(view);
  }

  demonstrate(task: HouseholdTask): Demonstration {
    if (this.options.explore) return explore(task);
    const world = task.payload;
    const { type, object, target } = world.goal;
    const open = new Map(world.receptacles.map((r) => [r.name, !RECEPTACLES[r.kind]!.openable || r.open]));
    const actions: string[] = [];
    let at = '';
    const goTo = (r: string) => {
      if (at !== r) actions.push(`go to ${r}`);
      at = r;
    };
    const reach = (r: string) => {
      goTo(r);
      if (!open.get(r)) {
        actions.push(`open ${r}`);
        open.set(r, true);
      }
    };
    const firstOf = (kind: string) => world.receptacles.find((r) => r.kind === kind)!.name;
    const candidates = world.objects.filter((o) => o.kind === object);
    const fetch = (o: { name: string; at: string }) => {
      reach(o.at);
      actions.push(`take ${o.name} from ${o.at}`);
      return o;
    };
    const place = (name: string) => {
      const t = firstOf(target!);
      reach(t);
      actions.push(`move ${name} to ${t}`);
    };

    if (type === 'look_at_obj_in_light') {
      fetch(candidates[0]!);
      const lamp = world.objects.find((o) => o.kind === LAMP)!;
      goTo(lamp.at);
      actions.push(`use ${lamp.name}`);
    } else if (type === 'pick_two_obj_and_place') {
      for (const o of candidates.slice(0, 2)) place(fetch(o).name);
    } else {
      const o = fetch(candidates[0]!);
      if (type !== 'pick_and_place_simple') {
        const appliance = firstOf(APPLIANCE[type]);
        goTo(appliance);
        const verb =
          type === 'pick_clean_then_place_in_recep'
            ? 'clean'
            : type === 'pick_heat_then_place_in_recep'
              ? 'heat'
              : 'cool';
        actions.push(`${verb} ${o.name} with ${appliance}`);
      }
      place(o.name);
    }
    return { actions };
  }
}

/** The exploring expert's demonstration: `exploringAction` from the task's start until the goal holds. */
function explore(task: HouseholdTask): Demonstration {
  const state = new HouseholdState(task.payload);
  const actions: string[] = [];
  while (!state.goalHolds()) {
    if (actions.length >= EXPLORE_LIMIT)
      throw new Error(`household expert: task ${task.id} not solved in ${EXPLORE_LIMIT} steps`);
    const action = exploringAction(state.view());
    if (!state.execute(action).admissible)
      throw new Error(`household expert: "${action}" is not admissible in task ${task.id}`);
    actions.push(action);
  }
  return { actions };
}
