/**
 * The layering of `src/` stays true: every import between folders must be allowed by the
 * "Layers" table of docs/ARCHITECTURE.md (or listed there as a known exception).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '..');
const doc = readFileSync(join(root, 'docs/ARCHITECTURE.md'), 'utf8');

/** The rows of the first Markdown table after `heading`, as arrays of cells. */
function tableAfter(text: string, heading: string): string[][] {
  const start = text.indexOf(heading);
  if (start < 0) throw new Error(`docs/ARCHITECTURE.md: no "${heading}"`);
  const lines = text.slice(start).split('\n');
  const first = lines.findIndex((l) => l.startsWith('|'));
  const rows: string[][] = [];
  for (const line of lines.slice(first + 2)) {
    if (!line.startsWith('|')) break;
    rows.push(
      line
        .split('|')
        .slice(1, -1)
        .map((c) => c.trim()),
    );
  }
  return rows;
}

/** The code spans of a cell: "`src/a`, `src/b`" -> ['src/a', 'src/b']. */
const spans = (cell: string) => [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);

const allowed = new Map(
  tableAfter(doc, '## Layers').map(([folder, may]) => [spans(folder!)[0]!, spans(may!)]),
);
const exceptions = tableAfter(doc, 'Known exceptions').map(
  ([from, to]) => `${spans(from!)[0]} -> ${spans(to!)[0]}`,
);

/** The folder an import lands in: `src/<area>`, or the top folder outside src. */
function area(file: string): string {
  const parts = relative(root, file).split('/');
  return parts[0] === 'src' && parts.length > 2
    ? `src/${parts[1]}`
    : parts[0] === 'src'
      ? parts.join('/')
      : parts[0]!;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(path);
    return /\.(ts|mts|mjs|js)$/.test(e.name) ? [path] : [];
  });
}

/** Every relative import of `src/`, type-only and dynamic ones included, as "from -> to" files. */
function imports(): { from: string; to: string }[] {
  return sourceFiles(join(root, 'src')).flatMap((file) =>
    ts
      .preProcessFile(readFileSync(file, 'utf8'), true, true)
      .importedFiles.map((f) => f.fileName)
      .filter((spec) => spec.startsWith('.'))
      .map((spec) => ({ from: file, to: resolve(dirname(file), spec) })),
  );
}

describe('layering', () => {
  it('lists every folder of src/ in the table', () => {
    const folders = readdirSync(join(root, 'src'), { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => `src/${e.name}`);
    expect(folders.filter((f) => !allowed.has(f))).toEqual([]);
  });

  it("imports across folders only what docs/ARCHITECTURE.md's table allows", () => {
    const bad: string[] = [];
    const used = new Set<string>();
    for (const { from, to } of imports()) {
      const a = area(from);
      const b = area(to);
      if (a === b || a === 'src/index.ts') continue;
      const edge = `${relative(root, from)} -> ${relative(root, to)}`;
      if (allowed.get(a)?.includes(b)) continue;
      if (exceptions.includes(edge)) {
        used.add(edge);
        continue;
      }
      bad.push(`${edge} (${a} may import: ${(allowed.get(a) ?? []).join(', ') || 'nothing'})`);
    }
    expect(bad).toEqual([]);
    // An exception nothing needs any more goes from the table.
    expect(exceptions.filter((e) => !used.has(e))).toEqual([]);
  });
});
