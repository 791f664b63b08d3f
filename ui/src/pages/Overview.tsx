// Overview: calls, error rate, latency, TTFT, tokens and cost over time, by any dimension.
// Everything here comes from /api/v1/stats and /api/v1/timeseries, which read the per-minute
// rollups, never raw spans.
import { ErrorBox, Loading, RangePicker, SendDataHelp, Stat, useFetch } from "../components/common";
import { Chart } from "../components/Chart";
import { GROUP_BYS, Series, StatsGroup, stats, timeseries } from "../api/metrics";
import { setParams, Route } from "../router";
import { stepFor, windowOf } from "../time";
import { fmtCompact, fmtInt, fmtMs, fmtPct, fmtUsd } from "../format";

/** Timeseries metrics the overview charts, with how to show their values. */
const CHARTS: { metric: string; title: string; grouped: boolean; format: (v: number) => string }[] = [
  { metric: "calls", title: "Calls", grouped: true, format: fmtCompact },
  { metric: "error_rate", title: "Error rate", grouped: true, format: fmtPct },
  { metric: "latency_p95", title: "Latency p95", grouped: true, format: fmtMs },
  { metric: "ttft_p95", title: "Time to first token p95", grouped: true, format: fmtMs },
  { metric: "output_tokens", title: "Output tokens", grouped: true, format: fmtCompact },
  { metric: "cost_usd", title: "Cost (USD)", grouped: true, format: (v) => fmtUsd(v) },
];

const LATENCY = ["latency_p50", "latency_p95", "latency_p99"];

export function Overview({ route }: { route: Route }) {
  const p = route.params;
  const range = p.get("range") ?? "1h";
  const groupBy = p.get("group_by") ?? "model";
  const live = p.get("live") !== "0";
  const refresh = live ? 10_000 : 0;
  const key = [range, p.get("from"), p.get("to"), groupBy];

  const total = useFetch(
    (signal) => {
      const w = windowOf(p, "1h");
      return stats({ from: w.from, to: w.to }, signal);
    },
    key,
    refresh,
  );
  const grouped = useFetch(
    (signal) => {
      const w = windowOf(p, "1h");
      return stats({ from: w.from, to: w.to, group_by: groupBy }, signal);
    },
    key,
    refresh,
  );
  const charts = useFetch(
    async (signal) => {
      const w = windowOf(p, "1h");
      const step = stepFor(w);
      const base = { from: w.from, to: w.to, step: `${step / 1000}s` };
      const grouped = Promise.all(
        CHARTS.map((c) => timeseries({ ...base, metric: c.metric, group_by: c.grouped ? groupBy : undefined }, signal)),
      );
      const latency = Promise.all(LATENCY.map((metric) => timeseries({ ...base, metric }, signal)));
      const [g, l] = await Promise.all([grouped, latency]);
      const latencySeries: Series[] = l.map((r, i) => ({
        key: LATENCY[i].replace("latency_", ""),
        points: r.series.flatMap((s) => s.points),
      }));
      return { grouped: g.map((r) => r.series), latency: latencySeries, window: w };
    },
    key,
    refresh,
  );

  // Without `group_by` the server answers one group covering every call.
  const t = total.data?.groups[0] ?? null;

  return (
    <div class="page" data-testid="page-overview">
      <div class="toolbar">
        <h1>Overview</h1>
        <RangePicker value={range} />
        <label class="picker">
          Group by{" "}
          <select data-testid="group-by" value={groupBy} onChange={(e) => setParams({ group_by: (e.target as HTMLSelectElement).value })}>
            {GROUP_BYS.map((g) => (
              <option value={g}>{g}</option>
            ))}
          </select>
        </label>
        <label class="picker">
          <input type="checkbox" data-testid="live" checked={live} onChange={(e) => setParams({ live: (e.target as HTMLInputElement).checked ? null : "0" })} />{" "}
          live
        </label>
      </div>

      {total.error ? <ErrorBox error={total.error} what="the totals" /> : null}
      {total.loading && !total.data ? <Loading /> : null}
      {t === null && total.data ? <SendDataHelp title="No LLM calls in this time range yet" /> : null}
      {t ? (
        <div class="stats" data-testid="kpis">
          <Stat label="Calls" value={fmtInt(t.calls)} testid="kpi-calls" />
          <Stat label="Error rate" value={fmtPct(t.error_rate)} testid="kpi-error-rate" />
          <Stat label="Latency p50 / p95 / p99" value={`${fmtMs(t.latency_ms?.p50)} / ${fmtMs(t.latency_ms?.p95)} / ${fmtMs(t.latency_ms?.p99)}`} />
          <Stat label="TTFT p50 / p95" value={`${fmtMs(t.ttft_ms?.p50)} / ${fmtMs(t.ttft_ms?.p95)}`} />
          <Stat label="Tokens in / out" value={`${fmtCompact(t.input_tokens)} / ${fmtCompact(t.output_tokens)}`} />
          <Stat label="Cost" value={fmtUsd(t.cost_usd)} testid="kpi-cost" />
        </div>
      ) : null}

      {charts.error ? <ErrorBox error={charts.error} what="the time series" /> : null}
      {charts.data ? (
        <div class="charts" data-testid="charts">
          <Chart title="Latency p50 / p95 / p99" series={charts.data.latency} format={fmtMs} testid="chart-latency" window={charts.data.window} />
          {CHARTS.map((c, i) => (
            <Chart title={`${c.title} by ${groupBy}`} series={charts.data!.grouped[i]} format={c.format} testid={`chart-${c.metric}`} window={charts.data!.window} />
          ))}
        </div>
      ) : null}

      <h2>By {groupBy}</h2>
      {grouped.error ? <ErrorBox error={grouped.error} what={`the breakdown by ${groupBy}`} /> : null}
      {grouped.data ? <GroupTable groups={grouped.data.groups} groupBy={groupBy} /> : null}
    </div>
  );
}

export function GroupTable({ groups, groupBy, testid = "group-table" }: { groups: StatsGroup[]; groupBy: string; testid?: string }) {
  const filterable = ["model", "service", "provider", "user_id"].includes(groupBy);
  return (
    <table class="table" data-testid={testid}>
      <thead>
        <tr>
          <th>{groupBy}</th>
          <th class="num">calls</th>
          <th class="num">error rate</th>
          <th class="num">p50</th>
          <th class="num">p95</th>
          <th class="num">p99</th>
          <th class="num">TTFT p50</th>
          <th class="num">tokens/s</th>
          <th class="num">tokens in / out</th>
          <th class="num">cost</th>
          <th class="num">cost / call</th>
        </tr>
      </thead>
      <tbody>
        {groups.map((g) => (
          <tr data-testid="group-row">
            <td>
              {filterable && g.key ? <a href={`/traces?${groupBy}=${encodeURIComponent(g.key)}`}>{g.key}</a> : g.key ?? "(none)"}
            </td>
            <td class="num">{fmtInt(g.calls)}</td>
            <td class="num">{fmtPct(g.error_rate)}</td>
            <td class="num">{fmtMs(g.latency_ms?.p50)}</td>
            <td class="num">{fmtMs(g.latency_ms?.p95)}</td>
            <td class="num">{fmtMs(g.latency_ms?.p99)}</td>
            <td class="num">{fmtMs(g.ttft_ms?.p50)}</td>
            <td class="num">{g.output_tokens_per_s == null ? "–" : g.output_tokens_per_s.toFixed(1)}</td>
            <td class="num">
              {fmtCompact(g.input_tokens)} / {fmtCompact(g.output_tokens)}
            </td>
            <td class="num">{fmtUsd(g.cost_usd)}</td>
            <td class="num">{g.cost_usd === null || !g.calls ? "unpriced" : fmtUsd(g.cost_usd / g.calls)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
