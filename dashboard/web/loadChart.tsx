// Figures per node over time, one uPlot line per node: the members' load over the last minutes
// (vehicles online, or the reports/s of its load reports), and the locator's decisions per node.
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import type { LoadSample } from './types.js';

const COLORS = ['#2b6cb0', '#dd6b20', '#38a169', '#805ad5', '#d53f8c', '#319795', '#718096'];

/** One point in time: a figure per node (a node missing from it has none then). */
export interface NodePoint {
  tUnixMs: number;
  values: Record<string, number>;
}

export function NodeChart({
  points,
  label,
  name,
  missing = null,
  steps = false,
}: {
  points: NodePoint[];
  label: string;
  /** data-figure of the chart's element. */
  name: string;
  /** What a node missing from a point is drawn as: a gap (null), or 0 (counts). */
  missing?: number | null;
  /** Counts per interval: drawn as steps over each interval instead of lines between points. */
  steps?: boolean;
}) {
  const host = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const nodes = [...new Set(points.flatMap((s) => Object.keys(s.values)))].sort();
  const key = nodes.join(',');
  useEffect(() => {
    const el = host.current;
    if (!el) return;
    const data: uPlot.AlignedData = [
      points.map((s) => s.tUnixMs / 1000),
      ...nodes.map((n) => points.map((s) => s.values[n] ?? missing)),
    ];
    // A new set of nodes is a new chart; otherwise only the data changes.
    if (!plot.current || el.dataset.nodes !== key) {
      plot.current?.destroy();
      el.dataset.nodes = key;
      plot.current = new uPlot(
        {
          width: Math.max(320, el.clientWidth || 640),
          height: 200,
          scales: { y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] } },
          axes: [{}, { label }],
          series: [
            {},
            ...nodes.map((n, i) => ({
              label: n,
              stroke: COLORS[i % COLORS.length] as string,
              width: 2,
              ...(steps ? { paths: uPlot.paths.stepped!({ align: 1 }) } : {}),
            })),
          ],
        },
        data,
        el,
      );
    } else plot.current.setData(data);
  }, [points, key]);
  useEffect(() => () => plot.current?.destroy(), []);
  return <div ref={host} class="load-chart" data-figure={name} />;
}

export function LoadChart({
  history,
  figure,
  label,
}: {
  history: LoadSample[];
  figure: 'online' | 'reportsPerSecond';
  label: string;
}) {
  const points = history.map((s) => ({ tUnixMs: s.tUnixMs, values: s[figure] ?? {} }));
  return <NodeChart points={points} label={label} name={figure} />;
}
