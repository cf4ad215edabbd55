/**
 * A learning curve: uPlot over one or more metric series sharing the iteration axis.
 */
/// <reference lib="dom" />
import { html } from 'htm/preact';
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';

const COLORS = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2', '#be185d', '#4d7c0f'];

export interface ChartProps {
  title: string;
  /** name -> [iteration, value] points. */
  series: Record<string, Array<[number, number]>>;
}

/** Aligns the series on the union of their iterations (uPlot wants one x array). */
function align(series: ChartProps['series']): uPlot.AlignedData {
  const xs = [...new Set(Object.values(series).flatMap((s) => s.map(([x]) => x)))].sort((a, b) => a - b);
  const index = new Map(xs.map((x, i) => [x, i]));
  const ys = Object.values(series).map((s) => {
    const y: Array<number | null> = new Array(xs.length).fill(null);
    for (const [x, v] of s) y[index.get(x)!] = v;
    return y;
  });
  return [xs, ...ys] as uPlot.AlignedData;
}

export function Chart({ title, series }: ChartProps) {
  const el = useRef<HTMLDivElement>(null);
  const names = Object.keys(series);
  const points = Object.values(series).reduce((n, s) => n + s.length, 0);
  useEffect(() => {
    if (!el.current) return;
    const width = Math.max(280, el.current.clientWidth || 380);
    const plot = new uPlot(
      {
        width,
        height: 190,
        legend: { show: true },
        cursor: { drag: { x: false, y: false } },
        scales: { x: { time: false } },
        // iterations are whole numbers: no 0.5 ticks
        axes: [
          { label: 'iteration', size: 36, incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000] },
          { size: 56 },
        ],
        series: [
          { label: 'iteration' },
          ...names.map((n, i) => ({
            label: n,
            stroke: COLORS[i % COLORS.length],
            width: 2,
            points: { show: points < 60 },
          })),
        ],
      },
      align(series),
      el.current,
    );
    return () => plot.destroy();
  }, [JSON.stringify(series)]);
  return html`<figure class="chart" data-chart=${title} data-points=${points}>
    <figcaption>${title}</figcaption>
    <div ref=${el}></div>
  </figure>`;
}
