/**
 * The page's script and styles, bundled once per process with esbuild's JS API and served from
 * memory: preact + htm for the views, uPlot for the charts, nothing fetched from a CDN.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

export interface Bundle {
  html: string;
  js: string;
  css: string;
}

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));

const HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>stepwise viewer</title>
<link rel="stylesheet" href="/app.css">
</head>
<body>
<div id="app"></div>
<script type="module" src="/app.js"></script>
</body>
</html>
`;

let cached: Promise<Bundle> | undefined;

/** The bundle (built on first use, then shared by every server of this process). */
export function bundlePage(): Promise<Bundle> {
  cached ??= (async () => {
    const result = await build({
      entryPoints: [here('./page/main.ts')],
      bundle: true,
      write: false,
      format: 'esm',
      platform: 'browser',
      target: 'es2020',
      minify: true,
      legalComments: 'none',
      logLevel: 'silent',
    });
    const require = createRequire(import.meta.url);
    const uplotCss = readFileSync(require.resolve('uplot/dist/uPlot.min.css'), 'utf8');
    const css = `${uplotCss}\n${readFileSync(here('./page/style.css'), 'utf8')}`;
    return { html: HTML, js: result.outputFiles[0]!.text, css };
  })();
  cached.catch(() => {
    cached = undefined;
  });
  return cached;
}
