// Time ranges as they appear in the URL (`range=1h`, or `from`/`to` in RFC 3339).

export const RANGES: Record<string, number> = {
  "15m": 15 * 60_000,
  "1h": 3600_000,
  "6h": 6 * 3600_000,
  "24h": 24 * 3600_000,
  "7d": 7 * 24 * 3600_000,
  "30d": 30 * 24 * 3600_000,
};

export interface Window {
  from: number;
  to: number;
}

/** The window of `range` ending now, or the explicit `from`/`to` (unix ms or RFC 3339). */
export function windowOf(params: URLSearchParams, fallback: string): Window {
  const parse = (s: string | null) => {
    if (!s) return NaN;
    return /^\d+$/.test(s) ? Number(s) : new Date(s).getTime();
  };
  const from = parse(params.get("from"));
  const to = parse(params.get("to"));
  if (Number.isFinite(from)) return { from, to: Number.isFinite(to) ? to : Date.now() };
  const span = RANGES[params.get("range") ?? fallback] ?? RANGES[fallback];
  const now = Date.now();
  return { from: now - span, to: now };
}

/** A step (ms) giving about 60–120 points over the window, from a fixed ladder. */
export function stepFor(w: Window): number {
  const ladder = [60_000, 5 * 60_000, 15 * 60_000, 3600_000, 6 * 3600_000, 86400_000];
  const target = (w.to - w.from) / 90;
  return ladder.find((s) => s >= target) ?? ladder[ladder.length - 1];
}
