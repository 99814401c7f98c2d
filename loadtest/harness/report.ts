// Turns a run's scenario results into the headline figures, the Switchboard ratios, and the Markdown report.
import type { SystemName } from './cluster.js';
import type { BenchResult, Figures, ScenarioResult, SystemRun } from './results.js';
import type { Spread } from './headlines.js';

function run(scenarios: readonly ScenarioResult[], name: string, system: SystemName): SystemRun | undefined {
  return scenarios.find((s) => s.name === name)?.runs.find((r) => r.system === system);
}

const num = (v: number | null | undefined): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

export function figuresOf(scenarios: readonly ScenarioResult[], system: SystemName): Figures {
  const fan = run(scenarios, 'fanout', system);
  const storm = run(scenarios, 'connect-storm', system);
  const p50 = num(fan?.figures.latencyP50Ms);
  const p99 = num(fan?.figures.latencyP99Ms);
  const p999 = num(fan?.figures.latencyP999Ms);
  const hasLatency = fan !== undefined && (fan.metrics.sb_e2e_latency as { count?: number } | undefined)?.count;
  return {
    cpuSecondsPer1kDeliveries: num(fan?.figures.cpuSecondsPer1kDeliveries),
    rssKiBPerIdleConnection: num(storm?.figures.rssKiBPerIdleConnection),
    crossNodeLatencyMs: hasLatency && p50 !== null && p99 !== null && p999 !== null ? { p50, p99, p999 } : null,
    maxDeliveryRatePerSecond: num(fan?.figures.maxDeliveryRatePerSecond),
    handshakesPerSecondPerNode: num(storm?.figures.handshakesPerSecond),
  };
}

/** Figure → value, flattened (latency per percentile) for ratios and tables. */
export function flatFigures(f: Figures | undefined): Record<string, number | null> {
  return {
    cpuSecondsPer1kDeliveries: f?.cpuSecondsPer1kDeliveries ?? null,
    rssKiBPerIdleConnection: f?.rssKiBPerIdleConnection ?? null,
    latencyP50Ms: f?.crossNodeLatencyMs?.p50 ?? null,
    latencyP99Ms: f?.crossNodeLatencyMs?.p99 ?? null,
    latencyP999Ms: f?.crossNodeLatencyMs?.p999 ?? null,
    maxDeliveryRatePerSecond: f?.maxDeliveryRatePerSecond ?? null,
    handshakesPerSecondPerNode: f?.handshakesPerSecondPerNode ?? null,
  };
}

const spreadText = (x: Spread | null | undefined, withRange: boolean) =>
  x ? (withRange && x.n > 1 ? `${fmt(x.median)} (${fmt(x.min)}–${fmt(x.max)})` : fmt(x.median)) : '–';

/**
 * Every scenario's headline figures: each system's median over its rounds, Switchboard ÷ each other system as the
 * median (min–max) of the per-round ratios, and what each lost. The README's table is this, from one full run.
 */
export function spreadTable(result: Pick<BenchResult, 'headlines' | 'options'>): string {
  const systems = result.options.systems.filter((s) => result.headlines.some((h) => h.values[s] !== undefined));
  const others = systems
    .filter((s) => s !== 'switchboard')
    .map((s) => `switchboard/${s}`)
    .filter((k) => result.headlines.some((h) => h.ratios[k] !== undefined));
  const short = (k: string) => k.replace('switchboard/', 'sb/');
  const lines = [
    `| scenario: figure | ${systems.join(' | ')} | ${others.map(short).join(' | ')} | better | lost |`,
    `|---|${systems.map(() => '---:').join('|')}|${others.map(() => '---:|').join('')}---|---|`,
  ];
  for (const h of result.headlines) {
    const lost = systems
      .filter((s) => typeof h.lost[s] === 'number' && h.lost[s]! > 0)
      .map((s) => `${s} ${fmt(h.lost[s])}`)
      .join(', ');
    lines.push(
      `| ${h.label}${h.once ? ' ¹' : ''} | ${systems.map((s) => spreadText(h.values[s], false)).join(' | ')} | ${others.map((k) => spreadText(h.ratios[k], true)).join(' | ')} | ${h.better} | ${lost || 'none'} |`,
    );
  }
  return lines.join('\n');
}

export const SPREAD_NOTE =
  "Values are each system's median over its rounds; ratios are Switchboard ÷ the other system per round (systems alternate within a round), shown as median (min–max). " +
  '¹ measured once per system (one rate search), so no spread. "lost": deliveries lost (pub/sub) or calls failed (rpc) over the scenario.';

export function ratios(figures: BenchResult['figures']): BenchResult['ratios'] {
  const out: BenchResult['ratios'] = {};
  const sb = flatFigures(figures.switchboard);
  for (const other of ['plain', 'stock', 'ceiling'] as const) {
    if (!figures.switchboard || !figures[other]) continue;
    const o = flatFigures(figures[other]);
    const r: Record<string, number | null> = {};
    for (const [k, v] of Object.entries(sb)) {
      const d = o[k];
      r[k] = v !== null && d !== null && d !== undefined && d !== 0 ? Math.round((v / d) * 1000) / 1000 : null;
    }
    out[`switchboard/${other}`] = r;
  }
  return out;
}

const HEADLINES: Array<{ key: string; label: string; better: 'lower' | 'higher' }> = [
  { key: 'cpuSecondsPer1kDeliveries', label: 'Server CPU seconds per 1,000 deliveries (fanout, fixed rate)', better: 'lower' },
  { key: 'rssKiBPerIdleConnection', label: 'RSS per idle connection, KiB (connect-storm, one node)', better: 'lower' },
  { key: 'latencyP50Ms', label: 'Cross-node end-to-end latency p50, ms', better: 'lower' },
  { key: 'latencyP99Ms', label: 'Cross-node end-to-end latency p99, ms', better: 'lower' },
  { key: 'latencyP999Ms', label: 'Cross-node end-to-end latency p99.9, ms', better: 'lower' },
  { key: 'maxDeliveryRatePerSecond', label: 'Highest delivery rate held (p99 under the limit, no loss), per s', better: 'higher' },
  { key: 'handshakesPerSecondPerNode', label: 'Handshakes per second per node', better: 'higher' },
];

export function fmt(v: unknown): string {
  if (v === null || v === undefined) return '–';
  if (typeof v !== 'number') return String(v);
  if (!Number.isFinite(v)) return '–';
  if (Number.isInteger(v)) return v.toLocaleString('en-US');
  const a = Math.abs(v);
  return a >= 100 ? Math.round(v).toLocaleString('en-US') : a >= 1 ? v.toFixed(2) : v.toPrecision(3);
}

const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

function runName(r: SystemRun): string {
  return r.variant ? `${r.system} (${r.variant})` : r.system;
}

export function headlineTable(result: BenchResult): string {
  // Systems with a headline figure (Pushpin has none of these: it stands in sse-fanout's own table).
  const systems = result.options.systems.filter((s) => Object.values(flatFigures(result.figures[s])).some((v) => v !== null));
  const ratioCols = Object.keys(result.ratios);
  const lines = [
    `| figure | ${systems.join(' | ')}${ratioCols.length ? ` | ${ratioCols.join(' | ')}` : ''} | better |`,
    `|---|${systems.map(() => '---:').join('|')}|${ratioCols.map(() => '---:|').join('')}---|`,
  ];
  for (const h of HEADLINES) {
    const vals = systems.map((s) => fmt(flatFigures(result.figures[s])[h.key]));
    const rs = ratioCols.map((c) => fmt(result.ratios[c]?.[h.key]));
    lines.push(`| ${h.label} | ${vals.join(' | ')}${rs.length ? ` | ${rs.join(' | ')}` : ''} | ${h.better} |`);
  }
  return lines.join('\n');
}

function scenarioSection(s: ScenarioResult): string {
  const out = [`### ${s.name}`, ''];
  if (s.error) out.push(`**Failed to run:** ${cell(s.error)}`, '');
  if (s.runs.length === 0) return out.join('\n');
  const cols = s.runs.map(runName);
  const keys = [...new Set(s.runs.flatMap((r) => Object.keys(r.figures)))];
  out.push(`| | ${cols.join(' | ')} |`, `|---|${cols.map(() => '---:').join('|')}|`);
  out.push(`| measured seconds | ${s.runs.map((r) => fmt(r.seconds)).join(' | ')} |`);
  for (const k of keys) out.push(`| ${k} | ${s.runs.map((r) => fmt(r.figures[k])).join(' | ')} |`);
  const exprs = [...new Set(s.runs.flatMap((r) => r.thresholds.map((t) => `${t.metric} ${t.expression}`)))];
  for (const e of exprs) {
    out.push(
      `| threshold \`${e}\` | ${s.runs
        .map((r) => {
          const t = r.thresholds.find((x) => `${x.metric} ${x.expression}` === e);
          return t ? `${t.ok === null ? 'n/a' : t.ok ? '✓' : '✗'} ${fmt(t.value)}` : '–';
        })
        .join(' | ')} |`,
    );
  }
  out.push(`| **all thresholds held** | ${s.runs.map((r) => (r.ok ? '**yes**' : '**no**')).join(' | ')} |`);
  out.push('');
  const steps = s.runs.filter((r) => (r.details as { maxRate?: unknown[] } | undefined)?.maxRate?.length);
  if (steps.length) {
    out.push(
      'Rate steps (deliveries per second offered → achieved, p99; [client-bound]: the client workers used ≥ 60 % of the machine, so a miss may be theirs):',
      '',
    );
    for (const r of steps) {
      const list = (
        r.details as {
          maxRate: Array<{
            kind: string;
            offeredDeliveryRate: number;
            achievedDeliveryRate: number;
            p99Ms: number;
            pass: boolean;
            why?: string;
            clientBound?: boolean;
          }>;
        }
      ).maxRate;
      out.push(
        `- ${runName(r)}: ${list.map((x) => `${x.kind} ${fmt(x.offeredDeliveryRate)} → ${fmt(x.achievedDeliveryRate)}, ${fmt(x.p99Ms)} ms ${x.pass ? '✓' : `✗ (${x.why})`}${x.clientBound ? ' [client-bound]' : ''}`).join('; ')}`,
      );
    }
    out.push('');
  }
  const errs = s.runs.filter((r) => r.errors.length);
  if (errs.length) {
    out.push('Errors:', '');
    for (const r of errs) for (const e of r.errors.slice(0, 5)) out.push(`- ${runName(r)}: ${cell(e.split('\n')[0] ?? e)}`);
    out.push('');
  }
  return out.join('\n');
}

export function markdown(result: BenchResult, svgFile?: string): string {
  const m = result.machine;
  const lines = [
    `# Switchboard benchmark — ${result.startedAt}`,
    '',
    `${result.mode === 'smoke' ? '**Smoke run** (seconds, a handful of clients: shapes only, no meaningful figures). ' : ''}` +
      `${result.options.nodes} node(s) per system, ${result.options.workers} client worker processes, ${Math.round(result.seconds)} s in all` +
      `${result.complete ? '' : ' — **incomplete**'}. Machine: ${m.cpus} × ${m.model}, ${m.memoryGiB} GiB, Node ${m.node}, Linux ${m.kernel}${m.uws ? `, uWS ${m.uws}` : ''}. ` +
      'Everything (servers, Redis, clients) shares this machine over loopback, so absolute numbers are lower bounds; compare systems, not machines.',
    '',
    `Command: \`${result.command}\``,
    '',
    '## Headline figures, with their spread over rounds',
    '',
    spreadTable(result),
    '',
    SPREAD_NOTE,
    '',
  ];
  if (
    headlineTable(result).split('\n').length > 2 &&
    result.options.systems.some((s) => Object.values(flatFigures(result.figures[s])).some((v) => v !== null))
  ) {
    lines.push(
      '## Summary figures (fanout and connect-storm)',
      '',
      headlineTable(result),
      '',
      'Ratios are Switchboard ÷ the other system over the whole scenario (for "lower is better" figures a ratio above 1 means Switchboard costs more).',
      '',
    );
  }
  if (svgFile) lines.push(`![latency and throughput per system](${svgFile})`, '');
  lines.push('## Scenarios', '');
  for (const s of result.scenarios) lines.push(scenarioSection(s));
  if (result.errors.length) {
    lines.push('## Errors', '');
    for (const e of result.errors) lines.push(`- ${cell(e.split('\n')[0] ?? e)}`);
    lines.push('');
  }
  lines.push(
    '## How these were measured',
    '',
    '- Latency: publisher send time to subscriber receipt on the shared monotonic clock (µs, HDR histogram), so it includes the publish leg; k6 scripts use the server-stamped `meta.ts` instead.',
    '- Loss: every acknowledged publication × the subscribers of its channel must arrive (exact count after a drain); in soak, by per-stream sequence numbers with resubscribes that did not recover restarting the stream.',
    '- Server CPU: utime + stime from /proc/<pid>/stat of every node process (and descendants) over the measured window; Redis is reported separately.',
    '- RSS per idle connection: /proc/<pid>/status VmRSS of one node before connecting and after the hold, divided by the connections.',
    '- RSS per SSE stream: VmRSS of the server (every process of it) before the streams open and at the end of the measured window (while publishing), divided by the streams; it includes what the traffic grows the heap by, so it moves by several KiB from run to run at 1,000 streams.',
    '- Systems alternate per round (ABC, CBA, …) so drift over the run does not favour one.',
    '',
  );
  return lines.join('\n');
}
