/**
 * The household expert: the shortest command sequence to each goal, or an exploring one that uses only
 * what it has observed.
 */
import type { Demonstration, Expert } from '../types.ts';
import { APPLIANCE, LAMP, LAMP_PLACES, OBJECTS, RECEPTACLES } from './catalog.ts';
import type { HouseholdTask } from './generator.ts';

export interface HouseholdExpertOptions {
  /**
   * Search instead of going straight to the object: visit the receptacles where such an object
   * may be (in the room's listing order), take it where it is seen. Every decision then follows
   * from what the agent has observed, so a policy can imitate it (the default expert reads the
   * whole world, like ALFWorld's handcoded expert, and its first step cannot be learned from the
   * observation). The lamp of `look_at_obj_in_light` is searched for the same way.
   */
  explore?: boolean;
}

/**
 * The household expert: plans from the task's full initial world (like ALFWorld's handcoded
 * expert, which reads the game state) and returns the commands that reach the goal; with
 * `explore`, it searches as an agent that only sees what it observes would.
 */
export class HouseholdExpert implements Expert<HouseholdTask> {
  constructor(readonly options: HouseholdExpertOptions = {}) {}

  demonstrate(task: HouseholdTask): Demonstration {
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
    const taken = new Set<string>();
    // Receptacles seen without an untaken object of a kind (by kind): not visited again for it.
    const seenEmpty = new Set<string>();
    // Where an explorer goes next for a `kind`: the receptacles it may be in, in listing order,
    // until one shows an object of that kind not yet taken.
    const seek = (kind: string, places: readonly string[]) => {
      for (const r of world.receptacles) {
        if (!places.includes(r.kind) || r.kind === target || seenEmpty.has(`${kind}@${r.name}`)) continue;
        reach(r.name);
        const here = world.objects.find((o) => o.kind === kind && o.at === r.name && !taken.has(o.name));
        if (here) return here;
        seenEmpty.add(`${kind}@${r.name}`);
      }
      throw new Error(`household expert: no ${kind} in task ${task.id}`);
    };
    const fetch = (o: { name: string; at: string }) => {
      const found = this.options.explore ? seek(object, OBJECTS[object]!.places) : o;
      reach(found.at);
      actions.push(`take ${found.name} from ${found.at}`);
      taken.add(found.name);
      return found;
    };
    const place = (name: string) => {
      const t = firstOf(target!);
      reach(t);
      actions.push(`move ${name} to ${t}`);
    };

    if (type === 'look_at_obj_in_light') {
      fetch(candidates[0]!);
      const lamp = this.options.explore
        ? seek(LAMP, LAMP_PLACES)
        : world.objects.find((o) => o.kind === LAMP)!;
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
