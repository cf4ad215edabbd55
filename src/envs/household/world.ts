/**
 * The household world's state and rules: objects, receptacles, appliances, command parsing, feedback
 * and admissible commands.
 */
import { APPLIANCE, type HouseholdTaskType, LAMP, OBJECTS, RECEPTACLES, type Room } from './catalog.ts';

/** A household task's goal: object kind, target receptacle kind (absent for the lamp task). */
export interface HouseholdGoal {
  type: HouseholdTaskType;
  object: string;
  target?: string;
}

/** The initial world of a household task, as plain JSON (a task's payload). */
export interface HouseholdWorld {
  room: Room;
  /** Layout id; held-out ids make the valid-unseen split. */
  layout: number;
  receptacles: { name: string; kind: string; open: boolean }[];
  /** Objects (lamps included) and the receptacle each starts in or on. */
  objects: { name: string; kind: string; at: string }[];
  goal: HouseholdGoal;
  /** "put a clean mug in coffeemachine." */
  goalText: string;
}

interface Recep {
  name: string;
  kind: string;
  openable: boolean;
  open: boolean;
  contents: number[];
}

interface Item {
  name: string;
  kind: string;
  lamp: boolean;
  on: boolean;
  clean: boolean;
  hot: boolean;
  cool: boolean;
  /** Receptacle index, or -1 while held. */
  at: number;
}

/** A read-only view of a state: what the exploring expert decides from (see expert.ts). */
export interface HouseholdView {
  goal: HouseholdGoal;
  /** The receptacle the agent stands at; undefined in the middle of the room. */
  location: string | undefined;
  /** The object in hand, with its states. */
  holding: { name: string; kind: string; clean: boolean; hot: boolean; cool: boolean } | undefined;
  /** Every receptacle with its contents (objects and lamps), in the room's listing order. */
  receptacles: {
    name: string;
    kind: string;
    open: boolean;
    contents: { name: string; kind: string; lamp: boolean; on: boolean }[];
  }[];
}

/** What executing one command gives back. */
export interface Outcome {
  feedback: string;
  /** The command parsed as one of the grammar's forms (false: malformed). */
  wellFormed: boolean;
  /** The command was one of the state's admissible commands (it did something). */
  admissible: boolean;
}

const NOTHING = 'Nothing happens.';

// Every command form; a string that matches none is malformed (valid: false).
const GRAMMAR = [
  /^go to [a-z]+ \d+$/,
  /^open [a-z]+ \d+$/,
  /^close [a-z]+ \d+$/,
  /^take [a-z]+ \d+ from [a-z]+ \d+$/,
  /^move [a-z]+ \d+ to [a-z]+ \d+$/,
  /^(heat|cool|clean) [a-z]+ \d+ with [a-z]+ \d+$/,
  /^use [a-z]+ \d+$/,
  /^examine [a-z]+ \d+$/,
  /^inventory$/,
  /^look$/,
];

/** Lower case, single spaces, no trailing period: "Go to  Cabinet 1." -> "go to cabinet 1". */
export function normalizeCommand(command: string): string {
  return command.trim().toLowerCase().replace(/\s+/g, ' ').replace(/\.$/, '');
}

/**
 * The mutable state of one household trajectory and its rules. Each state's admissible commands
 * are built once, as a map from command text to its effect, so that stepping with an admissible
 * command is one map lookup (the hot path of random play and rollouts).
 */
export class HouseholdState {
  readonly goal: HouseholdGoal;
  private readonly receps: Recep[];
  private readonly items: Item[];
  private readonly recepIndex = new Map<string, number>();
  /** Receptacle index the agent stands at; -1 in the middle of the room. */
  private loc = -1;
  private held = -1;
  private commands: Map<string, () => string> | undefined;

  constructor(world: HouseholdWorld) {
    this.goal = world.goal;
    this.receps = world.receptacles.map((r, i) => {
      const kind = RECEPTACLES[r.kind];
      if (!kind) throw new Error(`household world: unknown receptacle kind "${r.kind}" (${r.name})`);
      this.recepIndex.set(r.name, i);
      return {
        name: r.name,
        kind: r.kind,
        openable: kind.openable,
        open: kind.openable ? r.open : true,
        contents: [],
      };
    });
    this.items = world.objects.map((o, i) => {
      const at = this.recepIndex.get(o.at);
      if (at === undefined)
        throw new Error(`household world: object ${o.name} is at unknown receptacle "${o.at}"`);
      if (o.kind !== LAMP && !OBJECTS[o.kind])
        throw new Error(`household world: unknown object kind "${o.kind}"`);
      this.receps[at]!.contents.push(i);
      return {
        name: o.name,
        kind: o.kind,
        lamp: o.kind === LAMP,
        on: false,
        clean: false,
        hot: false,
        cool: false,
        at,
      };
    });
  }

  /**
   * An independent copy: the same world after the same commands, for running an expert (which acts
   * on the state it is given) without replaying the history into a new state.
   */
  clone(): HouseholdState {
    const copy = Object.create(HouseholdState.prototype) as HouseholdState;
    return Object.assign(copy, {
      goal: this.goal,
      receps: this.receps.map((r) => ({ ...r, contents: [...r.contents] })),
      items: this.items.map((o) => ({ ...o })),
      // Names to indices: fixed once the world is built, so shared.
      recepIndex: this.recepIndex,
      loc: this.loc,
      held: this.held,
      commands: undefined,
    });
  }

  /** Text of the room at the start: what the agent sees from the middle of the room. */
  overview(): string {
    return `You are in the middle of a room. Looking quickly around you, you see ${listing(this.receps.map((r) => r.name))}.`;
  }

  /** Admissible commands of the current state, sorted. */
  admissible(): string[] {
    return [...this.commandMap().keys()].sort();
  }

  /** Run `command`; an impossible or malformed one changes nothing and says "Nothing happens.". */
  execute(command: string): Outcome {
    const text = normalizeCommand(command);
    const effect = this.commandMap().get(text);
    if (effect) {
      this.commands = undefined;
      return { feedback: effect(), wellFormed: true, admissible: true };
    }
    return { feedback: NOTHING, wellFormed: GRAMMAR.some((g) => g.test(text)), admissible: false };
  }

  /** Whether the goal holds now. */
  goalHolds(): boolean {
    const { type, object, target } = this.goal;
    switch (type) {
      case 'look_at_obj_in_light': {
        if (this.held < 0 || this.items[this.held]!.kind !== object || this.loc < 0) return false;
        return this.receps[this.loc]!.contents.some((i) => this.items[i]!.lamp && this.items[i]!.on);
      }
      case 'pick_two_obj_and_place':
        return this.receps.some(
          (r) => r.kind === target && r.contents.filter((i) => this.items[i]!.kind === object).length >= 2,
        );
      default: {
        const need =
          type === 'pick_clean_then_place_in_recep'
            ? 'clean'
            : type === 'pick_heat_then_place_in_recep'
              ? 'hot'
              : type === 'pick_cool_then_place_in_recep'
                ? 'cool'
                : undefined;
        return this.receps.some(
          (r) =>
            r.kind === target &&
            r.contents.some((i) => {
              const it = this.items[i]!;
              return it.kind === object && (need === undefined || it[need]);
            }),
        );
      }
    }
  }

  /** The state as plain data (copies), for an expert that acts from any state (DAgger labels). */
  view(): HouseholdView {
    const held = this.held < 0 ? undefined : this.items[this.held]!;
    return {
      goal: this.goal,
      location: this.loc < 0 ? undefined : this.receps[this.loc]!.name,
      holding: held && {
        name: held.name,
        kind: held.kind,
        clean: held.clean,
        hot: held.hot,
        cool: held.cool,
      },
      receptacles: this.receps.map((r) => ({
        name: r.name,
        kind: r.kind,
        open: r.open,
        contents: r.contents.map((i) => {
          const it = this.items[i]!;
          return { name: it.name, kind: it.kind, lamp: it.lamp, on: it.on };
        }),
      })),
    };
  }

  /** A JSON snapshot of the state (for tests and debugging): changes iff the world changed. */
  snapshot(): string {
    return JSON.stringify({ loc: this.loc, held: this.held, receps: this.receps, items: this.items });
  }

  private describe(r: Recep): string {
    if (r.openable && !r.open) return `The ${r.name} is closed.`;
    const seen = r.contents.length === 0 ? 'nothing' : listing(r.contents.map((i) => this.items[i]!.name));
    return r.openable
      ? `The ${r.name} is open. In it, you see ${seen}.`
      : `On the ${r.name}, you see ${seen}.`;
  }

  private commandMap(): Map<string, () => string> {
    if (this.commands) return this.commands;
    const m = new Map<string, () => string>();
    this.receps.forEach((r, ri) => {
      if (ri !== this.loc)
        m.set(`go to ${r.name}`, () => {
          this.loc = ri;
          return `You arrive at ${r.name}. ${this.describe(r)}`;
        });
    });
    m.set('inventory', () =>
      this.held < 0
        ? 'You are not carrying anything.'
        : `You are carrying: a ${this.items[this.held]!.name}.`,
    );
    m.set('look', () =>
      this.loc < 0
        ? this.overview()
        : `You are facing the ${this.receps[this.loc]!.name}. Next to it, you see nothing.`,
    );
    if (this.held >= 0) {
      const it = this.items[this.held]!;
      m.set(`examine ${it.name}`, () => {
        const states = (['clean', 'hot', 'cool'] as const).filter((s) => it[s]);
        return states.length === 0
          ? `There's nothing special about ${it.name}.`
          : `The ${it.name} is ${states.join(' and ')}.`;
      });
    }
    if (this.loc >= 0) this.localCommands(m, this.receps[this.loc]!);
    this.commands = m;
    return m;
  }

  private localCommands(m: Map<string, () => string>, r: Recep): void {
    m.set(`examine ${r.name}`, () => this.describe(r));
    if (r.openable) {
      if (r.open)
        m.set(`close ${r.name}`, () => {
          r.open = false;
          return `You close the ${r.name}.`;
        });
      else
        m.set(`open ${r.name}`, () => {
          r.open = true;
          return `You open the ${r.name}. ${this.describe(r)}`;
        });
    }
    if (r.open) {
      for (const i of r.contents) {
        const it = this.items[i]!;
        if (it.lamp) {
          if (!it.on)
            m.set(`use ${it.name}`, () => {
              it.on = true;
              return `You turn on the ${it.name}.`;
            });
        } else if (this.held < 0) {
          m.set(`take ${it.name} from ${r.name}`, () => {
            r.contents.splice(r.contents.indexOf(i), 1);
            it.at = -1;
            this.held = i;
            return `You pick up the ${it.name} from the ${r.name}.`;
          });
        }
      }
    }
    if (this.held < 0) return;
    const h = this.held;
    const it = this.items[h]!;
    if (r.open)
      m.set(`move ${it.name} to ${r.name}`, () => {
        r.contents.push(h);
        it.at = this.loc;
        this.held = -1;
        return `You move the ${it.name} to the ${r.name}.`;
      });
    // Appliances work closed, as in ALFWorld: heating needs the object in hand, not the door open.
    const kind = OBJECTS[it.kind]!;
    if (r.kind === APPLIANCE.pick_clean_then_place_in_recep && kind.clean)
      m.set(`clean ${it.name} with ${r.name}`, () => {
        it.clean = true;
        return `You clean the ${it.name} using the ${r.name}.`;
      });
    if (r.kind === APPLIANCE.pick_heat_then_place_in_recep && kind.heat)
      m.set(`heat ${it.name} with ${r.name}`, () => {
        it.hot = true;
        it.cool = false;
        return `You heat the ${it.name} using the ${r.name}.`;
      });
    if (r.kind === APPLIANCE.pick_cool_then_place_in_recep && kind.cool)
      m.set(`cool ${it.name} with ${r.name}`, () => {
        it.cool = true;
        it.hot = false;
        return `You cool the ${it.name} using the ${r.name}.`;
      });
  }
}

/** "a mug 1, a cup 2, and a plate 1" (TextWorld's list style, "a" before every name). */
export function listing(names: string[]): string {
  const items = names.map((n) => `a ${n}`);
  if (items.length <= 1) return items.join('');
  return `${items.slice(0, -1).join(', ')}, and ${items[items.length - 1]}`;
}
