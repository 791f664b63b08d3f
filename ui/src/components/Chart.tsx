// A time-series chart drawn by uPlot (canvas, fast on thousands of points).
import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import type { Series } from "../api/metrics";
import type { Window } from "../time";

const PALETTE = ["#4f7cff", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#76b7b2", "#edc948", "#ff9da7", "#9c755f", "#bab0ac"];

/** Merges series with their own timestamps onto one sorted x axis (seconds), as uPlot wants. */
export function align(series: Series[]): uPlot.AlignedData {
  const xs = new Set<number>();
  for (const s of series) for (const [t] of s.points) xs.add(t);
  const x = [...xs].sort((a, b) => a - b);
  const index = new Map(x.map((t, i) => [t, i]));
  const ys = series.map((s) => {
    const y: (number | null)[] = new Array(x.length).fill(null);
    for (const [t, v] of s.points) y[index.get(t) as number] = v;
    return y;
  });
  return [x.map((t) => t / 1000), ...ys] as uPlot.AlignedData;
}

export function Chart({
  title,
  series,
  format,
  testid,
  height = 180,
  window,
}: {
  title: string;
  series: Series[];
  format: (v: number) => string;
  testid?: string;
  height?: number;
  /** The time range asked for (ms): the x axis spans it whatever points came back. */
  window?: Window;
}) {
  const el = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const node = el.current;
    if (!node) return;
    const data = align(series);
    const plot = new uPlot(
      {
        width: Math.max(280, node.clientWidth),
        height,
        legend: { show: series.length > 1 || series.length === 0 ? true : false },
        cursor: { drag: { x: false, y: false } },
        scales: {
          x: window
            ? { time: true, range: (): uPlot.Range.MinMax => [window.from / 1000, window.to / 1000] }
            : { time: true },
        },
        axes: [
          { stroke: "#888", grid: { stroke: "#8882" } },
          { stroke: "#888", grid: { stroke: "#8882" }, size: 60, values: (_u, vals) => vals.map((v) => (v === null ? "" : format(v))) },
        ],
        series: [
          {},
          ...series.map((s, i) => ({
            // An empty key is a group without that dimension (e.g. no model reported).
            label: s.key || "(unknown)",
            stroke: PALETTE[i % PALETTE.length],
            width: 1.5,
            spanGaps: false,
            value: (_u: uPlot, v: number | null) => (v === null ? "–" : format(v)),
          })),
        ],
      },
      data,
      node,
    );
    const resize = new ResizeObserver(() => plot.setSize({ width: Math.max(280, node.clientWidth), height }));
    resize.observe(node);
    return () => {
      resize.disconnect();
      plot.destroy();
    };
  }, [series, height, window?.from, window?.to]);
  return (
    <div class="chart card" data-testid={testid}>
      <div class="chart-title">{title}</div>
      <div ref={el} class="chart-canvas" />
    </div>
  );
}
