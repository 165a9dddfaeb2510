// A small SVG line chart for live series (no chart library: a few hundred bytes instead of 100 KiB).
export interface Series {
  name: string;
  color: string;
  points: number[];
}

export function Chart({ title, series, unit = '' }: { title: string; series: Series[]; unit?: string }) {
  const w = 320;
  const h = 110;
  const n = Math.max(2, ...series.map((s) => s.points.length));
  const max = Math.max(1, ...series.flatMap((s) => s.points));
  const path = (pts: number[]) =>
    pts.map((v, i) => `${i === 0 ? 'M' : 'L'}${((i + n - pts.length) / (n - 1)) * w},${h - 4 - (v / max) * (h - 12)}`).join(' ');
  return (
    <figure class="chart">
      <figcaption>
        <span>{title}</span>
        <span class="legend">
          {series.map((s) => (
            <span>
              <i style={{ background: s.color }} />
              {s.name} {s.points.length ? `${Math.round(s.points[s.points.length - 1] * 10) / 10}${unit}` : '—'}
            </span>
          ))}
        </span>
      </figcaption>
      <svg viewBox={`0 0 ${w} ${h}`} preserveAspectRatio="none" role="img" aria-label={title}>
        <line x1="0" x2={w} y1={h - 4} y2={h - 4} class="axis" />
        <text x="4" y="12" class="tick">
          {Math.round(max * 10) / 10}
          {unit}
        </text>
        {series.map((s) => (s.points.length > 1 ? <path d={path(s.points)} stroke={s.color} fill="none" stroke-width="2" vector-effect="non-scaling-stroke" /> : null))}
      </svg>
    </figure>
  );
}
