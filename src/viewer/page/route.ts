/**
 * The page's state lives in the URL hash (`#/run/abc?metric=kl`), so that any view can be linked.
 */
/// <reference lib="dom" />
import { useEffect, useState } from 'preact/hooks';

export interface Route {
  /** Path segments after `#/`, decoded. */
  parts: string[];
  query: URLSearchParams;
}

export function parseHash(hash: string): Route {
  const raw = hash.replace(/^#\/?/, '');
  const [path = '', search = ''] = raw.split('?', 2);
  return {
    parts: path.split('/').filter(Boolean).map(decodeURIComponent),
    query: new URLSearchParams(search),
  };
}

/** A hash link: `href('run', id)` -> `#/run/<id>`; `query` entries that are empty are left out. */
export function href(
  parts: Array<string | number>,
  query: Record<string, string | number | undefined> = {},
): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== '') q.set(k, String(v));
  const s = q.toString();
  return `#/${parts.map((p) => encodeURIComponent(String(p))).join('/')}${s ? `?${s}` : ''}`;
}

/** Replaces query parameters of the current route (filters, the selected step) without a new history entry per keypress. */
export function setQuery(changes: Record<string, string | number | undefined>, replace = true): void {
  const route = parseHash(location.hash);
  const query: Record<string, string> = Object.fromEntries(route.query.entries());
  for (const [k, v] of Object.entries(changes)) {
    if (v === undefined || v === '') delete query[k];
    else query[k] = String(v);
  }
  const next = href(route.parts, query);
  if (replace) history.replaceState(null, '', next);
  else history.pushState(null, '', next);
  window.dispatchEvent(new HashChangeEvent('hashchange'));
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseHash(location.hash));
  useEffect(() => {
    const on = () => setRoute(parseHash(location.hash));
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  return route;
}
