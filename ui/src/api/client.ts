// The one place the UI talks to the JSON API (DESIGN §4). Response types come from
// ./generated (ts-rs, from the Rust structs); the metrics shapes are in ./metrics.ts.
import type { ErrorResponse } from "./generated/ErrorResponse";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field: string | null = null,
  ) {
    super(message);
  }
}

export type Params = Record<string, string | number | undefined | null>;

export function query(params: Params): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

/** GETs `/api/v1{path}` and returns its JSON; non-2xx answers become an ApiError with the
 * server's `{"error":{code,message,field}}` when it sent one. */
export async function api<T>(path: string, params: Params = {}, signal?: AbortSignal): Promise<T> {
  let res: Response;
  try {
    res = await fetch(`/api/v1${path}${query(params)}`, { signal, headers: { accept: "application/json" } });
  } catch (e) {
    if ((e as Error).name === "AbortError") throw e;
    throw new ApiError(0, "unreachable", `cannot reach the Sightline server: ${(e as Error).message}`);
  }
  if (!res.ok) {
    let body: Partial<ErrorResponse> | null = null;
    try {
      body = (await res.json()) as ErrorResponse;
    } catch {
      body = null;
    }
    const err = body?.error;
    throw new ApiError(res.status, err?.code ?? `http_${res.status}`, err?.message ?? res.statusText, err?.field ?? null);
  }
  return (await res.json()) as T;
}
