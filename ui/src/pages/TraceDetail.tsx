// One trace: a waterfall timeline over the span tree (windowed, so a 5,000-span trace opens at
// once), and the selected span's LLM call (messages, output, parameters, tokens, cost, TTFT,
// logprobs) with its raw attributes, resource and events.
import { useMemo, useState } from "preact/hooks";
import { ErrorBox, Loading, StatusBadge, VirtualList, useFetch } from "../components/common";
import { api } from "../api/client";
import type { TraceDetailResponse } from "../api/generated/TraceDetailResponse";
import type { SpanRow } from "../api/generated/SpanRow";
import { setParams, Route } from "../router";
import { fmtMs, fmtUsd } from "../format";
import { LlmPanel } from "../components/LlmPanel";

export interface FlatSpan {
  span: SpanRow;
  depth: number;
  children: number;
  /** Start offset from the trace start and duration, milliseconds. */
  offset: number;
}

/** Orders spans as a tree (parents before children, siblings by start) and flattens it, skipping
 * the subtrees of collapsed spans. Spans whose parent is missing become roots. O(n log n). */
export function flatten(spans: SpanRow[], collapsed: Set<string>): { rows: FlatSpan[]; start: number; total: number } {
  const byId = new Map(spans.map((s) => [s.span_id, s]));
  const kids = new Map<string, SpanRow[]>();
  const roots: SpanRow[] = [];
  for (const s of spans) {
    if (s.parent_span_id && byId.has(s.parent_span_id) && s.parent_span_id !== s.span_id) {
      const list = kids.get(s.parent_span_id);
      if (list) list.push(s);
      else kids.set(s.parent_span_id, [s]);
    } else roots.push(s);
  }
  const byStart = (a: SpanRow, b: SpanRow) => a.start_time_unix_nano - b.start_time_unix_nano;
  let start = Infinity;
  let end = -Infinity;
  for (const s of spans) {
    start = Math.min(start, s.start_time_unix_nano);
    end = Math.max(end, s.end_time_unix_nano);
  }
  const rows: FlatSpan[] = [];
  const seen = new Set<string>();
  const stack: [SpanRow, number][] = roots.sort(byStart).reverse().map((s) => [s, 0]);
  while (stack.length) {
    const [s, depth] = stack.pop() as [SpanRow, number];
    if (seen.has(s.span_id)) continue;
    seen.add(s.span_id);
    const children = (kids.get(s.span_id) ?? []).sort(byStart);
    rows.push({ span: s, depth, children: children.length, offset: (s.start_time_unix_nano - start) / 1e6 });
    if (!collapsed.has(s.span_id)) for (let i = children.length - 1; i >= 0; i--) stack.push([children[i], depth + 1]);
  }
  return { rows, start, total: Math.max((end - start) / 1e6, 0.001) };
}

/** The span to show first: the first model call with messages (a chat over an agent or tool
 * span), else the first span with any call, else the root. */
function defaultSpan(spans: SpanRow[]): SpanRow | undefined {
  const talks = (s: SpanRow) => !!s.llm && (s.llm.input_messages.length > 0 || s.llm.output_messages.length > 0);
  const model = (s: SpanRow) => !!s.llm && !!(s.llm.response_model ?? s.llm.request_model);
  return spans.find((s) => talks(s) && model(s)) ?? spans.find(talks) ?? spans.find((s) => s.llm) ?? spans[0];
}

/** Where a bar's duration label goes: after the bar, else before it, else inside it. */
function labelPlace(left: number, width: number) {
  if (left + width <= 85) return { left: `${left + width}%` };
  if (left >= 15) return { right: `${100 - left}%` };
  return { left: `${left}%` };
}

export function TraceDetail({ route, traceId }: { route: Route; traceId: string }) {
  const trace = useFetch((signal) => api<TraceDetailResponse>(`/traces/${encodeURIComponent(traceId)}`, {}, signal), [traceId]);
  const [collapsed, setCollapsed] = useState<Set<string>>(new Set());
  const spans = trace.data?.spans ?? [];
  const tree = useMemo(() => flatten(spans, collapsed), [spans, collapsed]);
  const selectedId = route.params.get("span") ?? defaultSpan(spans)?.span_id;
  const selected = spans.find((s) => s.span_id === selectedId) ?? null;

  if (trace.error) return <ErrorBox error={trace.error} what={`trace ${traceId}`} />;
  if (!trace.data) return <Loading />;

  const llm = spans.filter((s) => s.llm);
  const cost = llm.reduce<number | null>((a, s) => (s.llm?.cost ? (a ?? 0) + s.llm.cost.total_usd : a), null);
  const tokens = llm.reduce((a, s) => a + (s.llm?.usage.input_tokens ?? 0) + (s.llm?.usage.output_tokens ?? 0), 0);
  const errors = spans.filter((s) => s.status === "error").length;
  const root = tree.rows[0]?.span;
  const toggle = (id: string) => {
    const next = new Set(collapsed);
    if (next.has(id)) next.delete(id);
    else next.add(id);
    setCollapsed(next);
  };
  const ticks = [0, 0.25, 0.5, 0.75, 1];

  return (
    <div class="page" data-testid="page-trace">
      <div class="toolbar">
        <h1 title={traceId}>{root?.name ?? "Trace"}</h1>
        <span class="muted mono">{traceId}</span>
      </div>
      <div class="stats small">
        <span>
          <b data-testid="span-count">{spans.length}</b> spans
        </span>
        <span>
          <b>{llm.length}</b> LLM calls
        </span>
        <span>
          <b>{fmtMs(tree.total)}</b>
        </span>
        <span>
          <b>{tokens.toLocaleString("en-US")}</b> tokens
        </span>
        <span>
          <b>{fmtUsd(cost)}</b>
        </span>
        <span>{errors ? <span class="badge badge-error">{errors} errors</span> : <StatusBadge status="ok" />}</span>
        {root?.llm?.session_id ?? llm[0]?.llm?.session_id ? (
          <a href={`/sessions/${encodeURIComponent((root?.llm?.session_id ?? llm[0]?.llm?.session_id) as string)}`}>session</a>
        ) : null}
      </div>
      <div class="split">
        <div class="waterfall">
          <div class="wrow whead">
            <span class="w-name">span</span>
            <span class="w-bar">
              {ticks.map((t) => (
                <span class="tick" style={{ left: `${t * 100}%` }}>
                  {fmtMs(t * tree.total)}
                </span>
              ))}
            </span>
          </div>
          <VirtualList
            items={tree.rows}
            rowHeight={26}
            height={Math.max(320, window.innerHeight - 230)}
            testid="waterfall"
            render={(r) => {
              const s = r.span;
              const left = (r.offset / tree.total) * 100;
              const width = Math.max((s.duration_ms / tree.total) * 100, 0.2);
              return (
                <div
                  class={`wrow ${s.span_id === selectedId ? "selected" : ""} ${s.status === "error" ? "err" : ""}`}
                  data-testid="span-row"
                  data-span-id={s.span_id}
                  onClick={() => setParams({ span: s.span_id })}
                >
                  <span class="w-name" style={{ paddingLeft: 4 + r.depth * 12 }} title={s.name}>
                    {r.children ? (
                      <button
                        class="twisty"
                        onClick={(e) => {
                          e.stopPropagation();
                          toggle(s.span_id);
                        }}
                      >
                        {collapsed.has(s.span_id) ? "▸" : "▾"}
                      </button>
                    ) : (
                      <span class="twisty" />
                    )}
                    {s.llm ? <span class="llm-dot" title="LLM call" /> : null}
                    {s.name}
                  </span>
                  <span class="w-bar">
                    <span class={`bar ${s.llm ? "bar-llm" : ""}`} style={{ left: `${Math.min(left, 99.8)}%`, width: `${width}%` }} />
                    <span class={`bar-label ${left + width > 85 && left < 15 ? "inside" : ""}`} style={labelPlace(left, width)}>
                      {fmtMs(s.duration_ms)}
                    </span>
                  </span>
                </div>
              );
            }}
          />
        </div>
        <div class="detail" data-testid="span-detail">
          {selected ? <SpanPanel span={selected} /> : <div class="muted">Select a span.</div>}
        </div>
      </div>
    </div>
  );
}

function SpanPanel({ span }: { span: SpanRow }) {
  return (
    <div>
      <h2 class="span-title">
        {span.name} <StatusBadge status={span.status === "error" ? "error" : "ok"} />
      </h2>
      <div class="kv">
        <span>service</span>
        <b>{span.service}</b>
        <span>kind</span>
        <b>{span.kind}</b>
        <span>duration</span>
        <b>{fmtMs(span.duration_ms)}</b>
        <span>span id</span>
        <b class="mono">{span.span_id}</b>
        {span.status_message ? (
          <>
            <span>status</span>
            <b class="err-text">{span.status_message}</b>
          </>
        ) : null}
      </div>
      {span.llm ? <LlmPanel call={span.llm} /> : null}
      <Raw title={`Attributes (${Object.keys(span.attributes).length})`} value={span.attributes} open={!span.llm} testid="raw-attributes" />
      <Raw title={`Events (${span.events.length})`} value={span.events} open={false} testid="raw-events" />
      <Raw title="Resource" value={span.resource} open={false} />
      <Raw title="Scope" value={span.scope} open={false} />
    </div>
  );
}

export function Raw({ title, value, open, testid }: { title: string; value: unknown; open: boolean; testid?: string }) {
  return (
    <details class="raw" open={open} data-testid={testid}>
      <summary>{title}</summary>
      <pre>{JSON.stringify(value, null, 2)}</pre>
    </details>
  );
}
