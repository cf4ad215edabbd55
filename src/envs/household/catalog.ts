/**
 * What a household world is made of: receptacle kinds, object kinds, rooms and task types,
 * written from ALFWorld's vocabulary (names as ALFWorld spells them, e.g. "sinkbasin").
 */

export const TASK_TYPES = [
  'pick_and_place_simple',
  'look_at_obj_in_light',
  'pick_clean_then_place_in_recep',
  'pick_heat_then_place_in_recep',
  'pick_cool_then_place_in_recep',
  'pick_two_obj_and_place',
] as const;
export type HouseholdTaskType = (typeof TASK_TYPES)[number];

export const ROOMS = ['kitchen', 'livingroom', 'bedroom', 'bathroom'] as const;
export type Room = (typeof ROOMS)[number];

export interface ReceptacleKind {
  /** Starts closed or open; objects inside are hidden and out of reach while closed. */
  openable: boolean;
}

export const RECEPTACLES: Record<string, ReceptacleKind> = {
  cabinet: { openable: true },
  drawer: { openable: true },
  fridge: { openable: true },
  microwave: { openable: true },
  safe: { openable: true },
  countertop: { openable: false },
  shelf: { openable: false },
  sinkbasin: { openable: false },
  stoveburner: { openable: false },
  coffeemachine: { openable: false },
  garbagecan: { openable: false },
  toaster: { openable: false },
  diningtable: { openable: false },
  desk: { openable: false },
  bed: { openable: false },
  sofa: { openable: false },
  armchair: { openable: false },
  sidetable: { openable: false },
  dresser: { openable: false },
  toilet: { openable: false },
  bathtubbasin: { openable: false },
};

/** The appliance each transforming task type needs (and which it may not use as its target). */
export const APPLIANCE = {
  pick_clean_then_place_in_recep: 'sinkbasin',
  pick_heat_then_place_in_recep: 'microwave',
  pick_cool_then_place_in_recep: 'fridge',
} as const;

/** Receptacles every layout of a room has (the appliances its task types need), then optional ones. */
export const ROOM_RECEPTACLES: Record<Room, { required: string[]; optional: string[] }> = {
  kitchen: {
    required: ['countertop', 'sinkbasin', 'fridge', 'microwave', 'cabinet'],
    optional: [
      'cabinet',
      'drawer',
      'stoveburner',
      'coffeemachine',
      'garbagecan',
      'toaster',
      'diningtable',
      'shelf',
      'countertop',
    ],
  },
  livingroom: {
    required: ['sidetable', 'sofa'],
    optional: ['armchair', 'shelf', 'drawer', 'diningtable', 'garbagecan', 'dresser', 'cabinet', 'sidetable'],
  },
  bedroom: {
    required: ['desk', 'bed'],
    optional: ['drawer', 'shelf', 'dresser', 'sidetable', 'garbagecan', 'safe', 'armchair', 'drawer'],
  },
  bathroom: {
    required: ['sinkbasin', 'countertop', 'toilet'],
    optional: ['cabinet', 'drawer', 'shelf', 'garbagecan', 'bathtubbasin', 'cabinet'],
  },
};

export interface ObjectKind {
  rooms: Room[];
  /** Receptacle kinds it may start in or be placed in by a goal. */
  places: string[];
  /** Objects of the same category are each other's distractors (a cup for a mug task). */
  category: string;
  clean?: boolean;
  heat?: boolean;
  cool?: boolean;
}

const FOOD = ['countertop', 'fridge', 'diningtable', 'microwave', 'sinkbasin', 'garbagecan', 'shelf'];
const DISH = ['cabinet', 'countertop', 'shelf', 'sinkbasin', 'diningtable', 'microwave', 'fridge'];
const COOKWARE = ['stoveburner', 'countertop', 'cabinet', 'sinkbasin', 'diningtable'];
const UTENSIL = ['drawer', 'countertop', 'diningtable', 'sinkbasin', 'cabinet'];
const SMALL = [
  'drawer',
  'desk',
  'sidetable',
  'dresser',
  'shelf',
  'sofa',
  'armchair',
  'diningtable',
  'safe',
  'bed',
];
const LARGE = ['desk', 'sidetable', 'dresser', 'shelf', 'sofa', 'armchair', 'bed', 'diningtable'];
const BATH = [
  'countertop',
  'cabinet',
  'toilet',
  'bathtubbasin',
  'sinkbasin',
  'shelf',
  'drawer',
  'garbagecan',
];
const K: Room[] = ['kitchen'];
const LB: Room[] = ['livingroom', 'bedroom'];

export const OBJECTS: Record<string, ObjectKind> = {
  apple: { rooms: K, places: FOOD, category: 'food', clean: true, heat: true, cool: true },
  tomato: { rooms: K, places: FOOD, category: 'food', clean: true, heat: true, cool: true },
  potato: { rooms: K, places: FOOD, category: 'food', clean: true, heat: true, cool: true },
  egg: { rooms: K, places: FOOD, category: 'food', clean: true, heat: true, cool: true },
  bread: { rooms: K, places: FOOD, category: 'food', heat: true, cool: true },
  lettuce: { rooms: K, places: FOOD, category: 'food', clean: true, cool: true },
  mug: {
    rooms: K,
    places: [...DISH, 'coffeemachine'],
    category: 'dish',
    clean: true,
    heat: true,
    cool: true,
  },
  cup: {
    rooms: K,
    places: [...DISH, 'coffeemachine'],
    category: 'dish',
    clean: true,
    heat: true,
    cool: true,
  },
  plate: { rooms: K, places: DISH, category: 'dish', clean: true, heat: true, cool: true },
  bowl: { rooms: K, places: DISH, category: 'dish', clean: true, cool: true },
  pan: { rooms: K, places: COOKWARE, category: 'cookware', clean: true, cool: true },
  pot: { rooms: K, places: COOKWARE, category: 'cookware', clean: true, cool: true },
  kettle: { rooms: K, places: COOKWARE, category: 'cookware', clean: true },
  knife: { rooms: K, places: UTENSIL, category: 'utensil', clean: true },
  butterknife: { rooms: K, places: UTENSIL, category: 'utensil', clean: true },
  fork: { rooms: K, places: UTENSIL, category: 'utensil', clean: true },
  spoon: { rooms: K, places: UTENSIL, category: 'utensil', clean: true },
  spatula: { rooms: K, places: UTENSIL, category: 'utensil', clean: true },
  ladle: { rooms: K, places: UTENSIL, category: 'utensil', clean: true },
  saltshaker: {
    rooms: K,
    places: ['countertop', 'cabinet', 'shelf', 'diningtable', 'drawer'],
    category: 'shaker',
  },
  peppershaker: {
    rooms: K,
    places: ['countertop', 'cabinet', 'shelf', 'diningtable', 'drawer'],
    category: 'shaker',
  },
  winebottle: {
    rooms: K,
    places: ['countertop', 'cabinet', 'fridge', 'diningtable', 'shelf'],
    category: 'bottle',
    cool: true,
  },
  dishsponge: {
    rooms: K,
    places: ['countertop', 'cabinet', 'sinkbasin', 'drawer'],
    category: 'cleaning',
    clean: true,
  },
  keychain: { rooms: LB, places: SMALL, category: 'small' },
  creditcard: { rooms: LB, places: SMALL, category: 'small' },
  cellphone: { rooms: LB, places: SMALL, category: 'small' },
  remotecontrol: { rooms: LB, places: SMALL, category: 'small' },
  pen: { rooms: ['bedroom'], places: SMALL, category: 'writing' },
  pencil: { rooms: ['bedroom'], places: SMALL, category: 'writing' },
  cd: { rooms: ['bedroom'], places: SMALL, category: 'small' },
  watch: { rooms: LB, places: SMALL, category: 'small' },
  book: { rooms: LB, places: LARGE, category: 'reading' },
  newspaper: { rooms: ['livingroom'], places: LARGE, category: 'reading' },
  laptop: { rooms: LB, places: LARGE, category: 'device' },
  alarmclock: { rooms: ['bedroom'], places: LARGE, category: 'device' },
  pillow: { rooms: LB, places: ['sofa', 'armchair', 'bed'], category: 'soft' },
  statue: { rooms: ['livingroom'], places: LARGE, category: 'decor' },
  vase: { rooms: ['livingroom'], places: LARGE, category: 'decor' },
  box: { rooms: ['livingroom'], places: LARGE, category: 'decor' },
  tissuebox: {
    rooms: ['livingroom', 'bathroom'],
    places: [...LARGE, 'countertop', 'toilet'],
    category: 'paper',
  },
  candle: { rooms: ['bathroom'], places: BATH, category: 'decor' },
  soapbar: { rooms: ['bathroom'], places: BATH, category: 'soap', clean: true },
  soapbottle: { rooms: ['bathroom'], places: BATH, category: 'soap' },
  cloth: { rooms: ['bathroom'], places: BATH, category: 'cleaning', clean: true },
  toiletpaper: { rooms: ['bathroom'], places: BATH, category: 'paper' },
  spraybottle: { rooms: ['bathroom'], places: BATH, category: 'cleaning' },
};

/** Lamps are objects that stay where they are and are switched on with `use`. */
export const LAMP = 'desklamp';
export const LAMP_PLACES = ['desk', 'sidetable', 'dresser'];

/** Receptacles described with "on" in goals ("put a mug on countertop"); the rest take "in". */
export const ON_SURFACES = new Set([
  'countertop',
  'shelf',
  'stoveburner',
  'diningtable',
  'desk',
  'bed',
  'sofa',
  'armchair',
  'sidetable',
  'dresser',
  'toilet',
  'toaster',
]);
