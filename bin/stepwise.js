#!/usr/bin/env node
// The command from a clone's TypeScript sources through tsx (no build step): `npm start`,
// `npm run bench` and the tests run this, so they always run the code as it is now. The
// installed package's `stepwise` is the compiled dist/cli/main.js (`npm run build`).
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
