// Shapes of `GET /api/v1/stats` and `GET /api/v1/timeseries` (DESIGN §4).
// The Rust structs behind them live in the metrics part of sightline-serve; once they derive
// ts-rs like the other responses, these declarations move to ./generated.
import { api, Params } from "./client";

export interface Quantiles {
  p50: number | null;
  p90: number | null;
  p95: number | null;
  p99: number | null;
}

export interface StatsGroup {
  key: string | null;
  calls: number;
  errors: number;
  error_rate: number;
  latency_ms: Quantiles | null;
  ttft_ms: Quantiles | null;
  input_tokens: number;
  output_tokens: number;
  cost_usd: number | null;
  output_tokens_per_s: number | null;
}

export interface StatsResponse {
  groups: StatsGroup[];
}

export interface Series {
  key: string | null;
  points: [number, number | null][];
}

export interface TimeseriesResponse {
  series: Series[];
}

export const GROUP_BYS = ["model", "service", "provider", "operation", "response_model", "user_id"] as const;

export function stats(params: Params, signal?: AbortSignal) {
  return api<StatsResponse>("/stats", params, signal);
}

export function timeseries(params: Params, signal?: AbortSignal) {
  return api<TimeseriesResponse>("/timeseries", params, signal);
}
