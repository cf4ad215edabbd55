/**
 * Fetching the API: a hook that loads a URL, optionally again every `pollMs` (live runs).
 */
/// <reference lib="dom" />
import { useEffect, useState } from 'preact/hooks';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export async function getJson<T>(url: string): Promise<T> {
  const res = await fetch(url);
  const body = (await res.json().catch(() => ({ error: `${res.status} ${res.statusText}` }))) as T & {
    error?: string;
  };
  if (!res.ok) throw new ApiError(res.status, body.error ?? `${res.status} ${res.statusText}`);
  return body;
}

export interface Loaded<T> {
  data: T | undefined;
  error: ApiError | Error | undefined;
}

export function useJson<T>(url: string, pollMs?: number): Loaded<T> {
  const [state, setState] = useState<Loaded<T>>({ data: undefined, error: undefined });
  useEffect(() => {
    let alive = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    setState({ data: undefined, error: undefined });
    const load = async () => {
      try {
        const data = await getJson<T>(url);
        if (alive) setState({ data, error: undefined });
      } catch (err) {
        if (alive) setState((s) => ({ data: s.data, error: err as Error }));
      }
      if (alive && pollMs) timer = setTimeout(load, pollMs);
    };
    void load();
    return () => {
      alive = false;
      if (timer) clearTimeout(timer);
    };
  }, [url, pollMs]);
  return state;
}

export const api = (...parts: Array<string | number>) =>
  `/api/${parts.map((p) => encodeURIComponent(String(p))).join('/')}`;

export const fmt = (v: number | null | undefined, digits = 3): string =>
  v === null || v === undefined || Number.isNaN(v)
    ? '–'
    : Number.isInteger(v)
      ? String(v)
      : v.toFixed(digits);
