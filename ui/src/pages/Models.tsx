// Models: every model (or exact response model version) side by side, from the rollups.
import { ErrorBox, Loading, RangePicker, SendDataHelp, useFetch } from "../components/common";
import { Chart } from "../components/Chart";
import { StatsGroup, stats, timeseries } from "../api/metrics";
import { setParams, Route } from "../router";
import { stepFor, windowOf } from "../time";
import { fmtCompact, fmtMs, fmtPct, fmtUsd } from "../format";

type Column = { key: string; label: string; value: (g: StatsGroup) => number | null; format: (v: number | null) => string; better: "low" | "high" };

const COLUMNS: Column[] = [
  { key: "calls", label: "calls", value: (g) => g.calls, format: fmtCompact, better: "high" },
  { key: "p50", label: "latency p50", value: (g) => g.latency_ms?.p50 ?? null, format: fmtMs, better: "low" },
  { key: "p95", label: "latency p95", value: (g) => g.latency_ms?.p95 ?? null, format: fmtMs, better: "low" },
  { key: "ttft", label: "TTFT p50", value: (g) => g.ttft_ms?.p50 ?? null, format: fmtMs, better: "low" },
  { key: "tps", label: "output tokens/s", value: (g) => g.output_tokens_per_s ?? null, format: (v) => (v === null ? "–" : v.toFixed(1)), better: "high" },
  { key: "cpc", label: "cost / call", value: (g) => (g.cost_usd === null || !g.calls ? null : g.cost_usd / g.calls), format: (v) => (v === null ? "unpriced" : fmtUsd(v)), better: "low" },
  { key: "err", label: "error rate", value: (g) => g.error_rate, format: fmtPct, better: "low" },
];

export function Models({ route }: { route: Route }) {
  const p = route.params;
  const range = p.get("range") ?? "24h";
  const by = p.get("by") === "response_model" ? "response_model" : "model";
  const sort = p.get("sort") ?? "calls";
  const key = [range, p.get("from"), p.get("to"), by];
  const table = useFetch((signal) => {
    const w = windowOf(p, "24h");
    return stats({ from: w.from, to: w.to, group_by: by }, signal);
  }, key);
  const chart = useFetch(async (signal) => {
    const w = windowOf(p, "24h");
    const r = await timeseries({ from: w.from, to: w.to, step: `${stepFor(w) / 1000}s`, metric: "latency_p95", group_by: by }, signal);
    return { ...r, window: w };
  }, key);

  const col = COLUMNS.find((c) => c.key === sort) ?? COLUMNS[0];
  const groups = [...(table.data?.groups ?? [])].sort((a, b) => {
    const va = col.value(a);
    const vb = col.value(b);
    if (va === null) return 1;
    if (vb === null) return -1;
    return col.better === "high" ? vb - va : va - vb;
  });
  const best = (c: Column) => {
    const vals = groups.map(c.value).filter((v): v is number => v !== null);
    if (!vals.length) return null;
    return c.better === "high" ? Math.max(...vals) : Math.min(...vals);
  };

  return (
    <div class="page" data-testid="page-models">
      <div class="toolbar">
        <h1>Models</h1>
        <RangePicker value={range} />
        <label class="picker">
          Compare{" "}
          <select data-testid="models-by" value={by} onChange={(e) => setParams({ by: (e.target as HTMLSelectElement).value })}>
            <option value="model">models</option>
            <option value="response_model">versions (response model)</option>
          </select>
        </label>
      </div>
      {table.error ? <ErrorBox error={table.error} what="model statistics" /> : null}
      {table.loading && !table.data ? <Loading /> : null}
      {table.data && groups.length === 0 ? <SendDataHelp title="No model calls in this time range" /> : null}
      {groups.length ? (
        <table class="table" data-testid="models-table">
          <thead>
            <tr>
              <th>{by === "model" ? "model" : "version"}</th>
              {COLUMNS.map((c) => (
                <th class={`num sortable ${c.key === col.key ? "sorted" : ""}`} onClick={() => setParams({ sort: c.key })}>
                  {c.label}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {groups.map((g) => (
              <tr data-testid="model-row">
                <td>{g.key ? <a href={`/traces?model=${encodeURIComponent(g.key)}`}>{g.key}</a> : "(none)"}</td>
                {COLUMNS.map((c) => {
                  const v = c.value(g);
                  const isBest = v !== null && groups.length > 1 && v === best(c);
                  return <td class={`num ${isBest ? "best" : ""}`}>{c.format(v)}</td>;
                })}
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
      {chart.error ? <ErrorBox error={chart.error} what="latency over time" /> : null}
      {chart.data ? <Chart title={`Latency p95 by ${by}`} series={chart.data.series} format={fmtMs} testid="chart-models-latency" window={chart.data.window} /> : null}
    </div>
  );
}
