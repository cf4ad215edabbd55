#!/usr/bin/env node
/**
 * Some registry mirrors serve only the current platform's builds of packages such as
 * @esbuild/*, @rollup/* and @biomejs/cli-*. npm then writes a package-lock.json without entries
 * for the other platforms' optional dependencies, and `npm ci` refuses it as "out of sync".
 * This adds the missing entries (version only, marked optional), which npm ci accepts and skips
 * when they do not fit or cannot be fetched. It never changes an existing entry.
 */
import { readFileSync, writeFileSync } from 'node:fs';

const file = new URL('../package-lock.json', import.meta.url);
const lock = JSON.parse(readFileSync(file, 'utf8'));
const packages = lock.packages ?? {};
let added = 0;
for (const [at, entry] of Object.entries(packages)) {
  for (const [name, range] of Object.entries(entry.optionalDependencies ?? {})) {
    const nested = `${at ? `${at}/` : ''}node_modules/${name}`;
    if (packages[`node_modules/${name}`] || packages[nested]) continue;
    packages[`node_modules/${name}`] = {
      version: String(range).replace(/^[\^~=]/, ''),
      ...(entry.dev ? { dev: true } : {}),
      optional: true,
    };
    added++;
  }
}
if (added > 0) {
  writeFileSync(file, `${JSON.stringify(lock, null, 2)}\n`);
  console.log(`complete-lockfile: added ${added} optional platform entries`);
}
