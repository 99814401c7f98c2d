// Evaluates the scenario files' k6 threshold expressions against what the harness measured, the way k6 would.
import type { CounterSummary, MetricsSummary, ThresholdResult } from './results.js';
import { METRICS, THRESHOLD_RE, type MetricName, type Thresholds } from './scenarios.js';
import type { Histogram } from './histogram.js';
import { percentileMs, type TrendSummary } from './histogram.js';

/** Histograms (µs) behind the trend metrics, for percentiles the summary does not hold (e.g. p(99.99)). */
export type TrendSources = Partial<Record<MetricName, Histogram>>;

function aggregate(
  metric: MetricName,
  agg: string,
  pct: number | undefined,
  summary: MetricsSummary,
  sources: TrendSources,
): number | null {
  const m = summary[metric];
  if (!m) return null;
  if (METRICS[metric] === 'counter') {
    const c = m as CounterSummary;
    if (agg === 'count') return c.count;
    if (agg === 'rate') return c.rate;
    return null;
  }
  const t = m as TrendSummary;
  if (t.count === 0) return null;
  switch (agg) {
    case 'avg':
      return t.avg;
    case 'min':
      return t.min;
    case 'max':
      return t.max;
    case 'med':
      return t.med;
    case 'count':
      return t.count;
    default: {
      const h = sources[metric];
      if (pct === undefined) return null;
      if (h) return percentileMs(h, pct);
      return pct === 99 ? t.p99 : pct === 99.9 ? t.p999 : pct === 95 ? t.p95 : pct === 90 ? t.p90 : pct === 50 ? t.med : null;
    }
  }
}

function compare(v: number, op: string, limit: number): boolean {
  switch (op) {
    case '<':
      return v < limit;
    case '<=':
      return v <= limit;
    case '>':
      return v > limit;
    case '>=':
      return v >= limit;
    case '==':
    case '===':
      return v === limit;
    case '!=':
      return v !== limit;
    default:
      return false;
  }
}

/** One result per expression; a metric this run did not measure gives `ok: null` (not applicable). */
export function evaluate(thresholds: Thresholds, summary: MetricsSummary, sources: TrendSources = {}): ThresholdResult[] {
  const out: ThresholdResult[] = [];
  for (const [metric, exprs] of Object.entries(thresholds) as Array<[MetricName, string[]]>) {
    for (const expression of exprs) {
      const m = THRESHOLD_RE.exec(expression);
      if (!m) {
        out.push({ metric, expression, value: null, ok: false });
        continue;
      }
      const agg = m[1]!.startsWith('p(') ? 'p' : m[1]!;
      const value = aggregate(metric, agg, m[2] === undefined ? undefined : Number(m[2]), summary, sources);
      out.push({ metric, expression, value, ok: value === null ? null : compare(value, m[3]!, Number(m[4])) });
    }
  }
  return out;
}
