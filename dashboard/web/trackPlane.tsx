// A vehicle's track drawn on a plane, no map tiles: coordinates are projected to metres around
// the track's centre (equirectangular, exact enough over a few tens of km), with a grid at a
// round distance, a scale bar and north up. The newest point is the live position.
import { useEffect, useRef, useState } from 'preact/hooks';
import type { TrackPoint } from './types.js';

const M_PER_DEG_LAT = 110_574;
const M_PER_DEG_LON_EQUATOR = 111_320;

/** The round step (1, 2 or 5 × 10^k metres) giving about `lines` grid lines over `span`. */
export function gridStep(spanM: number, lines = 6): number {
  const raw = Math.max(spanM, 1) / lines;
  const pow = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * pow >= raw) return m * pow;
  return 10 * pow;
}

export function distance(m: number): string {
  return m >= 1000 ? `${+(m / 1000).toFixed(2)} km` : `${+m.toFixed(0)} m`;
}

interface Props {
  points: TrackPoint[];
  width?: number;
  height?: number;
}

export function TrackPlane({ points, width: most = 640, height = 420 }: Props) {
  const canvas = useRef<HTMLCanvasElement>(null);
  // As wide as its card allows (up to `most`): drawn at the size shown, never stretched.
  const [width, setWidth] = useState(most);
  useEffect(() => {
    const box = canvas.current?.parentElement;
    if (!box) return;
    const fit = (): void => setWidth(Math.max(200, Math.min(most, box.clientWidth - 32)));
    fit();
    const watch = new ResizeObserver(fit);
    watch.observe(box);
    return () => watch.disconnect();
  }, [most]);
  useEffect(() => {
    const c = canvas.current;
    if (c) draw(c, points, width, height);
  }, [points, width, height]);
  return (
    <canvas
      ref={canvas}
      class="track"
      data-points={points.length}
      style={{ width: `${width}px`, height: `${height}px` }}
      aria-label={`track of ${points.length} points`}
    />
  );
}

function draw(c: HTMLCanvasElement, points: TrackPoint[], width: number, height: number): void {
  const dpr = window.devicePixelRatio || 1;
  c.width = Math.round(width * dpr);
  c.height = Math.round(height * dpr);
  const g = c.getContext('2d');
  if (!g) return;
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.fillStyle = '#fbfbf8';
  g.fillRect(0, 0, width, height);
  g.font = '11px system-ui, sans-serif';
  if (points.length === 0) {
    g.fillStyle = '#777';
    g.fillText('no positions yet: they appear as the vehicle reports', 16, height / 2);
    c.dataset.gridM = '';
    return;
  }
  const lat0 = points.reduce((s, p) => s + p.lat, 0) / points.length;
  const lon0 = points.reduce((s, p) => s + p.lon, 0) / points.length;
  const kx = M_PER_DEG_LON_EQUATOR * Math.cos((lat0 * Math.PI) / 180);
  const xy = points.map((p) => [(p.lon - lon0) * kx, (p.lat - lat0) * M_PER_DEG_LAT] as const);
  const xs = xy.map((q) => q[0]);
  const ys = xy.map((q) => q[1]);
  const pad = 36;
  // At least 200 m across, so a parked vehicle is a dot in a readable grid, not a zoom to 0.
  const spanX = Math.max(Math.max(...xs) - Math.min(...xs), 200);
  const spanY = Math.max(Math.max(...ys) - Math.min(...ys), 200);
  const scale = Math.min((width - 2 * pad) / spanX, (height - 2 * pad) / spanY); // px per m
  const cx = (Math.max(...xs) + Math.min(...xs)) / 2;
  const cy = (Math.max(...ys) + Math.min(...ys)) / 2;
  const px = (x: number): number => width / 2 + (x - cx) * scale;
  const py = (y: number): number => height / 2 - (y - cy) * scale;

  // Grid at a round distance, labelled by distance and side from the track's centre.
  const step = gridStep(Math.max(width, height) / scale, 8);
  c.dataset.gridM = String(step);
  g.strokeStyle = '#e2e2dc';
  g.fillStyle = '#999';
  g.lineWidth = 1;
  const x0 = cx - width / 2 / scale;
  const y0 = cy - height / 2 / scale;
  for (let x = Math.ceil(x0 / step) * step; x < x0 + width / scale; x += step) {
    g.beginPath();
    g.moveTo(px(x), 0);
    g.lineTo(px(x), height);
    g.stroke();
    g.fillText(
      `${distance(Math.abs(x))}${x < 0 ? ' W' : x > 0 ? ' E' : ''}`,
      px(x) + 2,
      height - 4,
    );
  }
  for (let y = Math.ceil(y0 / step) * step; y < y0 + height / scale; y += step) {
    g.beginPath();
    g.moveTo(0, py(y));
    g.lineTo(width, py(y));
    g.stroke();
    g.fillText(`${distance(Math.abs(y))}${y < 0 ? ' S' : y > 0 ? ' N' : ''}`, 2, py(y) - 2);
  }

  // The track, oldest to newest.
  g.strokeStyle = '#2b6cb0';
  g.lineWidth = 2;
  g.beginPath();
  xy.forEach(([x, y], i) => (i === 0 ? g.moveTo(px(x), py(y)) : g.lineTo(px(x), py(y))));
  g.stroke();
  g.fillStyle = '#2b6cb0';
  for (const [x, y] of xy) g.fillRect(px(x) - 1.5, py(y) - 1.5, 3, 3);
  const [sx, sy] = xy[0] as readonly [number, number];
  g.fillStyle = '#38a169';
  g.beginPath();
  g.arc(px(sx), py(sy), 5, 0, 2 * Math.PI);
  g.fill();
  const [ex, ey] = xy[xy.length - 1] as readonly [number, number];
  g.fillStyle = '#e53e3e';
  g.beginPath();
  g.arc(px(ex), py(ey), 7, 0, 2 * Math.PI);
  g.fill();

  // Scale bar (one grid step) and north.
  g.fillStyle = '#222';
  g.strokeStyle = '#222';
  g.lineWidth = 3;
  const bar = step * scale;
  g.beginPath();
  g.moveTo(width - pad - bar, pad / 2);
  g.lineTo(width - pad, pad / 2);
  g.stroke();
  g.fillText(distance(step), width - pad - bar, pad / 2 + 14);
  g.fillText('N ↑', 8, 14);
}
