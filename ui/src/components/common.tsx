import type { ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError } from "../api/client";
import { setParams } from "../router";
import { RANGES } from "../time";

/** The state of one request: loading, its data, or its error. Re-runs when `deps` change;
 * `refreshMs` re-runs it periodically (live refresh) without flashing the loading state. */
export function useFetch<T>(
  load: (signal: AbortSignal) => Promise<T>,
  deps: unknown[],
  refreshMs = 0,
): { data: T | null; error: ApiError | null; loading: boolean } {
  const [state, setState] = useState<{ data: T | null; error: ApiError | null; loading: boolean }>({
    data: null,
    error: null,
    loading: true,
  });
  useEffect(() => {
    const ctl = new AbortController();
    let timer = 0;
    setState((s) => ({ ...s, loading: true }));
    const run = () =>
      load(ctl.signal).then(
        (data) => setState({ data, error: null, loading: false }),
        (e) => {
          if ((e as Error).name === "AbortError") return;
          const err = e instanceof ApiError ? e : new ApiError(0, "client", String(e));
          setState({ data: null, error: err, loading: false });
        },
      );
    run();
    if (refreshMs > 0) timer = window.setInterval(run, refreshMs);
    return () => {
      ctl.abort();
      window.clearInterval(timer);
    };
  }, [...deps, refreshMs]);
  return state;
}

export function ErrorBox({ error, what }: { error: ApiError; what: string }) {
  return (
    <div class="error-box" role="alert" data-testid="error">
      <strong>Cannot load {what}.</strong> {error.message}
      {error.status ? <span class="muted"> (HTTP {error.status})</span> : null}
    </div>
  );
}

export function Loading() {
  return <div class="loading" data-testid="loading">Loading…</div>;
}

/** What a new user needs to send data: shown wherever a list comes back empty. */
export function SendDataHelp({ title }: { title: string }) {
  const host = window.location.host;
  const origin = window.location.origin;
  return (
    <div class="empty" data-testid="empty">
      <h3>{title}</h3>
      <p>Point any OpenTelemetry SDK at this server — it speaks OTLP on the standard ports:</p>
      <pre>{`export OTEL_EXPORTER_OTLP_ENDPOINT=${origin}
export OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf   # or grpc, on the --grpc-addr port (4317 by default)
export OTEL_SERVICE_NAME=my-llm-app`}</pre>
      <p>
        OTLP/HTTP traces go to <code>{origin}/v1/traces</code>. Or call models through the gateway, which
        records every call with no SDK at all:
      </p>
      <pre>{`export OPENAI_BASE_URL=http://${host}/gateway/openai/v1`}</pre>
      <p class="muted">
        Run <code>sightline demo</code> to see the UI with generated agent traffic.
      </p>
    </div>
  );
}

export function RangePicker({ value }: { value: string }) {
  return (
    <label class="picker">
      Range{" "}
      <select
        data-testid="range"
        value={value}
        onChange={(e) => setParams({ range: (e.target as HTMLSelectElement).value, from: null, to: null })}
      >
        {Object.keys(RANGES).map((r) => (
          <option value={r}>last {r}</option>
        ))}
      </select>
    </label>
  );
}

export function Stat({ label, value, testid }: { label: string; value: ComponentChildren; testid?: string }) {
  return (
    <div class="stat" data-testid={testid}>
      <div class="stat-label">{label}</div>
      <div class="stat-value">{value}</div>
    </div>
  );
}

export function StatusBadge({ status }: { status: string }) {
  return <span class={`badge ${status === "error" ? "badge-error" : "badge-ok"}`}>{status}</span>;
}

/** A windowed list: only the rows in view (plus a margin) are in the DOM, so lists of any
 * length scroll smoothly. Rows have a fixed height. `onEnd` fires near the bottom (next page). */
export function VirtualList<T>({
  items,
  rowHeight,
  height,
  render,
  onEnd,
  testid,
}: {
  items: T[];
  rowHeight: number;
  height: number;
  render: (item: T, index: number) => ComponentChildren;
  onEnd?: () => void;
  testid?: string;
}) {
  const ref = useRef<HTMLDivElement>(null);
  const [top, setTop] = useState(0);
  const overscan = 10;
  const first = Math.max(0, Math.floor(top / rowHeight) - overscan);
  const last = Math.min(items.length, Math.ceil((top + height) / rowHeight) + overscan);
  useEffect(() => {
    if (onEnd && last >= items.length - 1 && items.length > 0) onEnd();
  }, [last, items.length]);
  const rows = [];
  for (let i = first; i < last; i++) {
    rows.push(
      <div class="vrow" style={{ top: i * rowHeight, height: rowHeight }} key={i}>
        {render(items[i], i)}
      </div>,
    );
  }
  return (
    <div
      class="vlist"
      ref={ref}
      data-testid={testid}
      style={{ height: Math.min(height, Math.max(items.length * rowHeight, rowHeight)) }}
      onScroll={(e) => setTop((e.target as HTMLDivElement).scrollTop)}
    >
      <div style={{ height: items.length * rowHeight, position: "relative" }}>{rows}</div>
    </div>
  );
}
