// A training run's writer in its own process, for the viewer's consistency test: writes household
// iterations `from`..`to` (exclusive) into the store at `db`, then exits.
import { openStore } from '../../src/store/index.ts';
import { disposeFixtureModels, writeHouseholdIteration } from './fixture-store.ts';

const [db, from, to] = process.argv.slice(2);
const store = openStore(db!);
try {
  for (let it = Number(from); it < Number(to); it++)
    await writeHouseholdIteration(store, it, { iterations: Number(to) });
} finally {
  store.close();
  await disposeFixtureModels();
}
