import type { Demonstration, Expert } from '../types.ts';
import { APPLIANCE, LAMP, RECEPTACLES } from './catalog.ts';
import type { HouseholdTask } from './generator.ts';

/**
 * The household expert: plans from the task's full initial world (like ALFWorld's handcoded
 * expert, which reads the game state) and returns the commands that reach the goal.
 */
export class HouseholdExpert implements Expert<HouseholdTask> {
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
    const fetch = (o: { name: string; at: string }) => {
      reach(o.at);
      actions.push(`take ${o.name} from ${o.at}`);
    };
    const place = (name: string) => {
      const t = firstOf(target!);
      reach(t);
      actions.push(`move ${name} to ${t}`);
    };

    if (type === 'look_at_obj_in_light') {
      const lamp = world.objects.find((o) => o.kind === LAMP)!;
      fetch(candidates[0]!);
      goTo(lamp.at);
      actions.push(`use ${lamp.name}`);
    } else if (type === 'pick_two_obj_and_place') {
      for (const o of candidates.slice(0, 2)) {
        fetch(o);
        place(o.name);
      }
    } else {
      const o = candidates[0]!;
      fetch(o);
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
