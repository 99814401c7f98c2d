// The shape of bench/results/<timestamp>.json: what one harness run measured, per scenario and per system.
import type { SystemName, Variant } from './cluster.js';
import type { TrendSummary } from './histogram.js';
import type { MetricName, ScenarioName } from './scenarios.js';

export interface CounterSummary {
  count: number;
  /** Per second over the measured window. */
  rate: number;
}

export type MetricsSummary = Partial<Record<MetricName, TrendSummary | CounterSummary>>;

export interface ThresholdResult {
  metric: MetricName;
  expression: string;
  /** The measured value the expression was checked against; null when the metric was not measured. */
  value: number | null;
  ok: boolean | null;
}

/** One round's figures of one system (same names as SystemRun.figures); the report's spreads are taken over these. */
export type RoundFigures = Record<string, number | null>;

/** One system (and variant) in one scenario, aggregated over its rounds. */
export interface SystemRun {
  system: SystemName;
  variant?: Variant;
  /** Measured seconds (summed over rounds). */
  seconds: number;
  /** k6-named metrics, so thresholds read the same in both drivers. Trends in ms. */
  metrics: MetricsSummary;
  /** Scenario-specific figures (see the scenario runner). */
  figures: Record<string, number | null>;
  thresholds: ThresholdResult[];
  /** Per round (systems alternate within each), the figures the headline spreads are taken over. */
  rounds?: RoundFigures[];
  /** Every threshold held and nothing failed. */
  ok: boolean;
  /** Extra detail: rate steps, RSS samples, rounds. */
  details?: unknown;
  errors: string[];
}

export interface ScenarioResult {
  name: ScenarioName;
  params: unknown;
  runs: SystemRun[];
  seconds: number;
  error?: string;
}

/** The five headline figures per system. */
export interface Figures {
  /** Server CPU seconds (all node processes) per 1,000 deliveries at the fanout scenario's fixed rate. */
  cpuSecondsPer1kDeliveries: number | null;
  /** Growth of one node's RSS per idle connection, with connect-storm's connection count held. */
  rssKiBPerIdleConnection: number | null;
  /** Fanout at the fixed rate: subscribers on the last node, publisher on node 1. */
  crossNodeLatencyMs: { p50: number; p99: number; p999: number } | null;
  /** Highest delivery rate held for the hold time with p99 under the limit and no loss. */
  maxDeliveryRatePerSecond: number | null;
  /** Completed Socket.IO handshakes per second into one node. */
  handshakesPerSecondPerNode: number | null;
}

export interface BenchResult {
  version: 1;
  startedAt: string;
  finishedAt: string;
  seconds: number;
  mode: 'full' | 'smoke';
  /** False when the run was interrupted or a scenario failed to run. */
  complete: boolean;
  machine: { cpus: number; model: string; memoryGiB: number; node: string; kernel: string; uws?: string };
  options: {
    nodes: number;
    workers: number;
    systems: SystemName[];
    scenarios: ScenarioName[];
    reuseClusters: boolean;
    quick?: boolean;
    rounds?: number;
  };
  scenarios: ScenarioResult[];
  figures: Partial<Record<SystemName, Figures>>;
  /** `switchboard/<other>`: each summary figure divided (latency per percentile). */
  ratios: Record<string, Record<string, number | null>>;
  /** Every scenario's headline figures with their spread over rounds (headlines.ts). */
  headlines: HeadlineRow[];
  /** The command line that ran it. */
  command: string;
  errors: string[];
}

/** A headline figure of one scenario (the list is in headlines.ts). */
export interface Headline {
  scenario: ScenarioName;
  variant?: Variant;
  /** A key of SystemRun.figures and of its rounds. */
  figure: string;
  label: string;
  better: 'lower' | 'higher';
  /** Measured once per system, not per round (the max-rate search): no spread. */
  once?: boolean;
}

export interface Spread {
  median: number;
  min: number;
  max: number;
  /** How many rounds (or round pairs) it summarises. */
  n: number;
}

export interface HeadlineRow extends Headline {
  /** Per system: the median of its rounds (or the one value) with min–max. */
  values: Partial<Record<SystemName, Spread | null>>;
  /** `switchboard/<other>`: the per-round ratios' spread. */
  ratios: Record<string, Spread | null>;
  /** Per system: deliveries (or calls) lost or failed over the scenario, so a fast loser cannot pass unseen. */
  lost: Partial<Record<SystemName, number | null>>;
}
