// A hand-written SVG of the headline figures: latency percentiles (log scale), highest held delivery rate and
// handshakes per second, one colour per system.
import type { SystemName } from './cluster.js';
import type { BenchResult } from './results.js';
import { fmt } from './report.js';

const COLORS: Record<SystemName, string> = {
  switchboard: '#2563eb',
  plain: '#7c3aed',
  stock: '#d97706',
  ceiling: '#059669',
  pushpin: '#db2777',
};
const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

interface Panel {
  title: string;
  groups: string[];
  /** values[group][system] */
  values: Array<Array<number | null>>;
  log: boolean;
  unit: string;
}

function niceMax(v: number): number {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function panel(p: Panel, systems: SystemName[], x0: number, y0: number, w: number, h: number): string {
  const out: string[] = [];
  const top = y0 + 34;
  const bottom = y0 + h - 40;
  const left = x0 + 74;
  const right = x0 + w - 10;
  out.push(`<text x="${x0 + w / 2}" y="${y0 + 18}" text-anchor="middle" class="title">${esc(p.title)}</text>`);
  const all = p.values.flat().filter((v): v is number => v !== null && v > 0);
  let scale: (v: number) => number;
  let ticks: number[];
  if (p.log) {
    const lo = 10 ** Math.floor(Math.log10(Math.min(...all, 1)));
    const hi = 10 ** Math.ceil(Math.log10(Math.max(...all, lo * 10)));
    scale = (v) => bottom - ((Math.log10(Math.max(v, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * (bottom - top);
    ticks = [];
    for (let t = lo; t <= hi * 1.0001; t *= 10) ticks.push(t);
  } else {
    const hi = niceMax(Math.max(...all, 0));
    scale = (v) => bottom - (v / hi) * (bottom - top);
    ticks = [0, hi / 4, hi / 2, (3 * hi) / 4, hi];
  }
  for (const t of ticks) {
    const y = scale(t);
    out.push(`<line x1="${left}" x2="${right}" y1="${y.toFixed(1)}" y2="${y.toFixed(1)}" class="grid"/>`);
    out.push(`<text x="${left - 6}" y="${(y + 4).toFixed(1)}" text-anchor="end" class="tick">${esc(fmt(t))}</text>`);
  }
  out.push(
    `<text x="${x0 + 12}" y="${(top + bottom) / 2}" transform="rotate(-90 ${x0 + 12} ${(top + bottom) / 2})" text-anchor="middle" class="tick">${esc(p.unit)}</text>`,
  );
  const gw = (right - left) / p.groups.length;
  const bw = Math.min(40, (gw * 0.8) / systems.length);
  p.groups.forEach((g, gi) => {
    const gx = left + gi * gw + (gw - bw * systems.length) / 2;
    systems.forEach((s, si) => {
      const v = p.values[gi]?.[si] ?? null;
      const x = gx + si * bw;
      if (v === null || v <= 0) {
        out.push(`<text x="${(x + bw / 2).toFixed(1)}" y="${bottom - 4}" text-anchor="middle" class="val">–</text>`);
        return;
      }
      const y = scale(v);
      out.push(
        `<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${(bw - 3).toFixed(1)}" height="${Math.max(0.5, bottom - y).toFixed(1)}" fill="${COLORS[s]}"><title>${esc(`${s} ${g}: ${fmt(v)} ${p.unit}`)}</title></rect>`,
      );
      out.push(
        `<text x="${(x + (bw - 3) / 2).toFixed(1)}" y="${(y - 4).toFixed(1)}" text-anchor="middle" class="val">${esc(fmt(v))}</text>`,
      );
    });
    out.push(`<text x="${(left + gi * gw + gw / 2).toFixed(1)}" y="${bottom + 16}" text-anchor="middle" class="tick">${esc(g)}</text>`);
  });
  out.push(`<line x1="${left}" x2="${right}" y1="${bottom}" y2="${bottom}" class="axis"/>`);
  return out.join('\n');
}

export function chart(result: BenchResult): string {
  const systems = result.options.systems;
  const f = (s: SystemName) => result.figures[s];
  const panels: Panel[] = [
    {
      title: 'Cross-node end-to-end latency (fanout, fixed rate)',
      groups: ['p50', 'p99', 'p99.9'],
      values: (['p50', 'p99', 'p999'] as const).map((k) => systems.map((s) => f(s)?.crossNodeLatencyMs?.[k] ?? null)),
      log: true,
      unit: 'ms (log scale)',
    },
    {
      title: 'Highest delivery rate held',
      groups: ['deliveries/s'],
      values: [systems.map((s) => f(s)?.maxDeliveryRatePerSecond ?? null)],
      log: false,
      unit: 'per second',
    },
    {
      title: 'Handshakes per second, one node',
      groups: ['handshakes/s'],
      values: [systems.map((s) => f(s)?.handshakesPerSecondPerNode ?? null)],
      log: false,
      unit: 'per second',
    },
  ];
  const W = 1000;
  const H = 380;
  const widths = [440, 280, 280];
  let x = 0;
  const body = panels.map((p, i) => {
    const s = panel(p, systems, x, 30, widths[i]!, H - 60);
    x += widths[i]!;
    return s;
  });
  const legend = systems
    .map(
      (s, i) =>
        `<rect x="${20 + i * 150}" y="${H - 22}" width="12" height="12" fill="${COLORS[s]}"/><text x="${38 + i * 150}" y="${H - 12}" class="tick">${esc(s)}</text>`,
    )
    .join('\n');
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="system-ui, -apple-system, Segoe UI, sans-serif">`,
    '<style>.title{font-size:13px;font-weight:600}.tick{font-size:11px;fill:#444}.val{font-size:10px;fill:#222}.grid{stroke:#e5e7eb}.axis{stroke:#888}</style>',
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    `<text x="${W / 2}" y="20" text-anchor="middle" class="title">${esc(`Switchboard benchmark ${result.startedAt}${result.mode === 'smoke' ? ' (smoke run)' : ''}`)}</text>`,
    ...body,
    legend,
    '</svg>',
    '',
  ].join('\n');
}
