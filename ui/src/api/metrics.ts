// `GET /api/v1/stats` and `GET /api/v1/timeseries` (DESIGN §4); the types are generated from
// the Rust response structs (crates/serve/src/api/{stats,timeseries}.rs).
import { api, Params } from "./client";
import type { StatsResponse } from "./generated/StatsResponse";
import type { TimeseriesResponse } from "./generated/TimeseriesResponse";

export type { Percentiles } from "./generated/Percentiles";
export type { Series } from "./generated/Series";
export type { StatsGroup } from "./generated/StatsGroup";
export type { StatsResponse, TimeseriesResponse };

export const GROUP_BYS = ["model", "service", "provider", "operation", "response_model", "user_id"] as const;

export function stats(params: Params, signal?: AbortSignal) {
  return api<StatsResponse>("/stats", params, signal);
}

export function timeseries(params: Params, signal?: AbortSignal) {
  return api<TimeseriesResponse>("/timeseries", params, signal);
}
