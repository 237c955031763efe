// The members' load over the last minutes: one figure per node (vehicles online, or the
// reports/s of its load reports), one uPlot line each.
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import type { LoadSample } from './types.js';

const COLORS = ['#2b6cb0', '#dd6b20', '#38a169', '#805ad5', '#d53f8c', '#319795', '#718096'];

export function LoadChart({
  history,
  figure,
  label,
}: {
  history: LoadSample[];
  figure: 'online' | 'reportsPerSecond';
  label: string;
}) {
  const host = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const nodes = [...new Set(history.flatMap((s) => Object.keys(s[figure] ?? {})))].sort();
  const key = nodes.join(',');
  useEffect(() => {
    const el = host.current;
    if (!el) return;
    const data: uPlot.AlignedData = [
      history.map((s) => s.tUnixMs / 1000),
      ...nodes.map((n) => history.map((s) => s[figure]?.[n] ?? null)),
    ];
    // A new set of members is a new chart; otherwise only the data changes.
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
            })),
          ],
        },
        data,
        el,
      );
    } else plot.current.setData(data);
  }, [history, key]);
  useEffect(() => () => plot.current?.destroy(), []);
  return <div ref={host} class="load-chart" data-figure={figure} />;
}
