import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUILTIN_DOCUMENTS, builtinSearchIndex } from '../../src/tools/builtin-docs.ts';
import { SearchIndex } from '../../src/tools/search/index.ts';
import { formatHits, httpSearchProvider, webSearchTool } from '../../src/tools/web-search.ts';

const run = promisify(execFile);
const CLI = join(import.meta.dirname, '../../bin/stepwise.js');

describe('web_search over a local index', () => {
  const tool = webSearchTool({ index: builtinSearchIndex() });

  it('ranks the document that holds the query terms first, with title and snippet', async () => {
    const r = await tool.execute({ query: 'capital of France', k: 3 });
    expect(r.ok).toBe(true);
    const first = r.output.split('\n\n')[0]!;
    expect(first.startsWith('[1] Paris\n')).toBe(true);
    expect(first).toContain('capital and largest city of France');
    expect(r.output.split('\n\n').length).toBeLessThanOrEqual(3);
  });

  it('defaults k, answers "No results." and rejects bad input as a result', async () => {
    const r = await tool.execute({ query: 'sandbox namespaces network' });
    expect(r.output.split('\n\n').length).toBeLessThanOrEqual(5);
    expect(r.output).toContain('Bubblewrap');
    expect((await tool.execute({ query: 'qwertyuiop' })).output).toBe('No results.');
    expect(await tool.execute({ query: '' })).toMatchObject({ ok: false, errorKind: 'bad_arguments' });
    expect(await tool.execute({ query: 'x', k: 0 })).toMatchObject({ ok: false, errorKind: 'bad_arguments' });
  });

  it('an index saved to a file answers the same after loading', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'stepwise-ws-'));
    try {
      const file = join(dir, 'index.json');
      SearchIndex.build(BUILTIN_DOCUMENTS).save(file);
      const loaded = webSearchTool({ index: SearchIndex.load(file) });
      const q = { query: 'policy gradient rewarded actions', k: 2 };
      expect((await loaded.execute(q)).output).toBe((await tool.execute(q)).output);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('web_search with a live provider (a real HTTP server on localhost)', () => {
  let server: Server;
  let base = '';
  const seen: { url: string; key?: string }[] = [];
  beforeAll(async () => {
    server = createServer((req, res) => {
      seen.push({ url: req.url ?? '', key: req.headers['x-api-key'] as string | undefined });
      const q = new URL(req.url ?? '/', 'http://x').searchParams.get('q') ?? '';
      if (q === 'down') {
        res.writeHead(503).end();
        return;
      }
      if (q === 'slow') return; // never answers: the tool's deadline must hold
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          data: {
            items: [1, 2, 3].map((i) => ({ link: `https://e/${i}`, name: `${q} ${i}`, text: `about ${q}` })),
          },
        }),
      );
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  afterAll(() => {
    server.closeAllConnections();
    server.close();
  });

  it('maps the API response into hits and passes query, k and headers', async () => {
    const provider = httpSearchProvider({
      url: `${base}/search?q={query}&n={k}`,
      headers: { 'x-api-key': 'test-key' },
      resultsPath: 'data.items',
      titleField: 'name',
      snippetField: 'text',
      idField: 'link',
    });
    const tool = webSearchTool({ provider, limits: { timeMs: 1_000 } });
    const r = await tool.execute({ query: 'red fox', k: 2 });
    expect(r.output).toBe(
      formatHits([
        { id: 'https://e/1', title: 'red fox 1', snippet: 'about red fox', score: 3 },
        { id: 'https://e/2', title: 'red fox 2', snippet: 'about red fox', score: 2 },
      ]),
    );
    expect(seen.at(-1)).toEqual({ url: '/search?q=red%20fox&n=2', key: 'test-key' });
    expect(await tool.execute({ query: 'down' })).toMatchObject({
      ok: false,
      errorKind: 'tool_error',
      error: 'search API answered HTTP 503',
    });
    expect(await tool.execute({ query: 'slow' })).toMatchObject({ ok: false, errorKind: 'timeout' });
  });
});

describe('stepwise tool (CLI)', () => {
  it('prints one JSON result and exits 0, also for tool errors', async () => {
    const ok = await run('node', [
      CLI,
      'tool',
      'web_search',
      '--input',
      '{"query": "highest mountain", "k": 1}',
    ]);
    const result = JSON.parse(ok.stdout);
    expect(Object.keys(result)).toEqual(['ok', 'output', 'durationMs', 'truncated']);
    expect(result.ok).toBe(true);
    expect(result.output.startsWith('[1] Mount Everest')).toBe(true);

    const js = JSON.parse(
      (await run('node', [CLI, 'tool', 'javascript', '--input', '{"code": "throw new Error(\\"x\\")"}']))
        .stdout,
    );
    expect(js).toMatchObject({ ok: false, error: 'Error: x', truncated: false });

    const py = JSON.parse(
      (await run('node', [CLI, 'tool', 'python', '--input', '{"code": "print(2**100)"}'])).stdout,
    );
    expect(py).toMatchObject({ ok: true, output: `${2n ** 100n}\n`, truncated: false });
  });

  it('searches a saved index given with --index', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'stepwise-cli-'));
    try {
      const file = join(dir, 'index.json');
      SearchIndex.build([
        { id: 'a', title: 'Velora Harbor', text: 'Velora Harbor was founded in 1802 by Oskar Brint.' },
        { id: 'b', title: 'Mount Quell', text: 'Mount Quell is a dormant volcano.' },
      ]).save(file);
      const out = await run('node', [
        CLI,
        'tool',
        'web_search',
        '--index',
        file,
        '--input',
        '{"query": "who founded Velora Harbor"}',
      ]);
      const result = JSON.parse(out.stdout);
      expect(
        result.output.startsWith('[1] Velora Harbor\nVelora Harbor was founded in 1802 by Oskar Brint.'),
      ).toBe(true);
      await expect(
        run('node', [
          CLI,
          'tool',
          'web_search',
          '--index',
          join(dir, 'missing.json'),
          '--input',
          '{"query": "x"}',
        ]),
      ).rejects.toMatchObject({ code: 1 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('exits non-zero for a bad command line', async () => {
    await expect(run('node', [CLI, 'tool', 'no_such_tool', '--input', '{}'])).rejects.toMatchObject({
      code: 1,
    });
    await expect(run('node', [CLI, 'tool', 'python', '--input', '{not json'])).rejects.toMatchObject({
      code: 1,
    });
  });
});
