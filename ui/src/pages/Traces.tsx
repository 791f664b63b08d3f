// Traces: the list with every API filter and full-text search, paged by the server's cursor and
// windowed in the browser, so it stays instant however many traces the project holds.
import { useEffect, useState } from "preact/hooks";
import { ErrorBox, Loading, RangePicker, SendDataHelp, StatusBadge, VirtualList } from "../components/common";
import { api, ApiError, Params } from "../api/client";
import type { TraceRow } from "../api/generated/TraceRow";
import { navigate, setParams, Route } from "../router";
import { windowOf } from "../time";
import { fmtCompact, fmtMs, fmtTime, fmtUsd, shortId } from "../format";

/** Filters that map one to one onto API parameters (DESIGN §4). */
export const FILTERS = ["q", "service", "model", "provider", "user_id", "session_id"] as const;
const PAGE = 100;

/** The API parameters of the list, from the page URL (time range, filters, `attr.*`). */
export function listParams(p: URLSearchParams, fallbackRange: string): Params {
  const out: Params = {};
  const w = windowOf(p, fallbackRange);
  if (p.get("range") !== "all") {
    out.from = w.from;
    out.to = w.to;
  }
  for (const f of FILTERS) out[f] = p.get(f);
  out.status = p.get("status");
  for (const [k, v] of p.entries()) if (k.startsWith("attr.")) out[k] = v;
  return out;
}

/** Loads pages of a list endpoint on demand; resets when `key` changes. */
export function usePaged<T>(path: string, field: string, params: Params, key: string) {
  const [items, setItems] = useState<T[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [state, setState] = useState<{ loading: boolean; error: ApiError | null; done: boolean }>({ loading: true, error: null, done: false });
  const load = (reset: boolean, signal?: AbortSignal) => {
    setState((s) => ({ ...s, loading: true }));
    api<Record<string, unknown>>(path, { ...params, limit: PAGE, cursor: reset ? undefined : cursor }, signal).then(
      (res) => {
        const page = (res[field] as T[]) ?? [];
        setItems((old) => (reset ? page : [...old, ...page]));
        const next = (res.next_cursor as string | null) ?? null;
        setCursor(next);
        setState({ loading: false, error: null, done: next === null });
      },
      (e) => {
        if ((e as Error).name === "AbortError") return;
        setState({ loading: false, error: e as ApiError, done: true });
      },
    );
  };
  useEffect(() => {
    const ctl = new AbortController();
    setItems([]);
    setCursor(null);
    load(true, ctl.signal);
    return () => ctl.abort();
  }, [key]);
  const more = () => {
    if (!state.loading && !state.done && cursor) load(false);
  };
  return { items, ...state, more };
}

/** The filter form. Its inputs are uncontrolled (re-renders while data loads must not wipe what
 * the user is typing); the `key` resets them, and the status choice, whenever the URL changes. */
export function FilterBar({ p, fields = FILTERS as readonly string[] }: { p: URLSearchParams; fields?: readonly string[] }) {
  return <FilterForm key={p.toString()} p={p} fields={fields} />;
}

function FilterForm({ p, fields }: { p: URLSearchParams; fields: readonly string[] }) {
  const [status, setStatus] = useState(p.get("status") ?? "");
  const attrs = [...p.entries()].filter(([k]) => k.startsWith("attr.")).map(([k, v]) => `${k.slice(5)}=${v}`);
  const submit = (e: Event) => {
    e.preventDefault();
    const form = new FormData(e.target as HTMLFormElement);
    const changes: Record<string, string | null> = {};
    for (const f of fields) changes[f] = (form.get(f) as string | null)?.trim() || null;
    changes.status = (form.get("status") as string) || null;
    for (const [k] of p.entries()) if (k.startsWith("attr.")) changes[k] = null;
    const attr = ((form.get("attr") as string) ?? "").trim();
    for (const pair of attr.split(/\s*,\s*/)) {
      const i = pair.indexOf("=");
      if (i > 0) changes[`attr.${pair.slice(0, i).trim()}`] = pair.slice(i + 1).trim();
    }
    setParams(changes, false);
  };
  return (
    <form class="filters" onSubmit={submit} data-testid="filters">
      {fields.includes("q") ? <input name="q" class="search" placeholder="Search prompts and completions…" defaultValue={p.get("q") ?? ""} data-testid="filter-q" /> : null}
      {fields
        .filter((f) => f !== "q")
        .map((f) => (
          <input name={f} placeholder={f} defaultValue={p.get(f) ?? ""} data-testid={`filter-${f}`} size={12} />
        ))}
      <select name="status" data-testid="filter-status" value={status} onChange={(e) => setStatus((e.target as HTMLSelectElement).value)}>
        <option value="">any status</option>
        <option value="ok">ok</option>
        <option value="error">error</option>
      </select>
      <input name="attr" placeholder="attr key=value" defaultValue={attrs.join(", ")} data-testid="filter-attr" size={16} />
      <button type="submit" data-testid="apply">Apply</button>
      <button type="button" onClick={() => navigate(window.location.pathname)}>Clear</button>
    </form>
  );
}

export function TraceRowView({ t }: { t: TraceRow }) {
  return (
    <a class="trow" href={`/traces/${t.trace_id}`} data-testid="trace-row" data-trace-id={t.trace_id}>
      <span class="c-time">{fmtTime(t.start_time)}</span>
      <span class="c-name" title={t.name}>
        {t.name}
      </span>
      <span class="c-svc">{t.service}</span>
      <span class="c-num">{fmtMs(t.duration_ms)}</span>
      <span class="c-num">{t.span_count}</span>
      <span class="c-num">{t.llm_call_count}</span>
      <span class="c-num">
        {fmtCompact(t.input_tokens)}/{fmtCompact(t.output_tokens)}
      </span>
      <span class="c-num">{fmtUsd(t.cost_usd)}</span>
      <span class="c-status">
        <StatusBadge status={t.status} />
      </span>
      <span class="c-id" title={t.user_id ?? ""}>{t.user_id ?? ""}</span>
      <span class="c-id" title={t.session_id ?? ""}>{t.session_id ? shortId(t.session_id, 14) : ""}</span>
    </a>
  );
}

export function TraceHeader() {
  return (
    <div class="trow thead">
      <span class="c-time">start</span>
      <span class="c-name">name</span>
      <span class="c-svc">service</span>
      <span class="c-num">duration</span>
      <span class="c-num">spans</span>
      <span class="c-num">LLM calls</span>
      <span class="c-num">tokens in/out</span>
      <span class="c-num">cost</span>
      <span class="c-status">status</span>
      <span class="c-id">user</span>
      <span class="c-id">session</span>
    </div>
  );
}

export function Traces({ route }: { route: Route }) {
  const p = route.params;
  const range = p.get("range") ?? "24h";
  const params = listParams(p, "24h");
  const key = JSON.stringify({ ...params, from: p.get("from"), to: p.get("to"), range });
  const list = usePaged<TraceRow>("/traces", "traces", params, key);
  const filtered = [...p.keys()].some((k) => k !== "range");
  return (
    <div class="page" data-testid="page-traces">
      <div class="toolbar">
        <h1>Traces</h1>
        <RangePicker value={range} />
        <span class="muted" data-testid="trace-count">
          {list.items.length}
          {list.done ? "" : "+"} traces
        </span>
      </div>
      <FilterBar p={p} />
      {list.error ? <ErrorBox error={list.error} what="traces" /> : null}
      {list.items.length ? (
        <div class="listbox">
          <TraceHeader />
          <VirtualList items={list.items} rowHeight={34} height={Math.max(300, window.innerHeight - 260)} render={(t) => <TraceRowView t={t} />} onEnd={list.more} testid="trace-list" />
        </div>
      ) : null}
      {list.loading ? <Loading /> : null}
      {!list.loading && !list.error && list.items.length === 0 ? (
        filtered ? (
          <div class="empty" data-testid="no-match">
            No trace matches these filters. <a href="/traces">Clear the filters</a>.
          </div>
        ) : (
          <SendDataHelp title="No traces yet" />
        )
      ) : null}
    </div>
  );
}
