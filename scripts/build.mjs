#!/usr/bin/env node
/**
 * `npm run build`: the package's JavaScript in dist/. tsc compiles src/ to ESM JavaScript and .d.ts
 * (tsconfig.build.json; `.ts` import specifiers become `.js`), then the files tsc does not emit are
 * copied beside the compiled modules that load them at run time: the sandbox workers (plain
 * `.mjs`, they start without any TypeScript loader) and the viewer's page, which esbuild bundles
 * from its sources when `stepwise view` starts (so dist holds them as they are in src).
 * Plain JavaScript, so that it runs before anything is built (`npm ci` runs it as `prepare`).
 */
import { execFileSync } from 'node:child_process';
import { cpSync, readdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const src = join(root, 'src');
const dist = join(root, 'dist');

rmSync(dist, { recursive: true, force: true });
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
execFileSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], { stdio: 'inherit' });

/** Files under src/ that modules read at run time by a path relative to themselves. */
const assets = readdirSync(src, { recursive: true, encoding: 'utf8' }).filter(
  (file) => file.endsWith('.mjs') || file.startsWith(join('viewer', 'page', '')),
);
for (const file of assets) cpSync(join(src, file), join(dist, file), { recursive: true });
console.log(`build: dist/ compiled from src/, ${assets.length} run-time files copied`);
