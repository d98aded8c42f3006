/**
 * Shared benchmark machinery: the registration type every benchmark exports,
 * throughput and per-call latency measurement with `process.hrtime.bigint()`,
 * percentiles, and plain-text tables. Nothing here asserts: benchmarks print.
 */
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** One benchmark module, as registered in `run.ts`. */
export interface Benchmark {
  /** Short name, e.g. `policy`. */
  readonly name: string;
  /** One line saying what it measures. */
  readonly description: string;
  /** Run every scenario and print the tables; must not throw on a missed target. */
  run(): Promise<void> | void;
}

/** Options for one measured subject. */
export interface MeasureOptions {
  /** Time spent calling the subject before measuring, so the JIT has optimised it. */
  warmupMs: number;
  /** Time budget of the tight throughput loop. */
  throughputMs: number;
  /** Time budget of the per-call latency pass. */
  latencyMs: number;
  /** Cap on latency samples (the pass stops at whichever limit comes first). */
  maxLatencySamples: number;
  /** Called before the warm-up and before each measured phase (e.g. to build a fresh, uncached set). */
  setup?: () => void;
}

/** What one subject measured. */
export interface Measurement {
  readonly label: string;
  /** Calls per second in the tight loop. */
  readonly opsPerSec: number;
  /** Mean time per call in the tight loop (ns). */
  readonly meanNs: number;
  /** Median per-call latency (ns, timer overhead subtracted). */
  readonly p50Ns: number;
  /** 99th percentile per-call latency (ns, timer overhead subtracted). */
  readonly p99Ns: number;
  /** Calls made in the throughput loop. */
  readonly calls: number;
  /** Latency samples taken. */
  readonly samples: number;
}

/** Keeps results observable so no call can be optimised away. */
export let sink = 0;

const hr = process.hrtime.bigint;

let overheadNs: number | undefined;

/**
 * Cost of one `process.hrtime.bigint()` pair with nothing between (ns): the lowest
 * median over five rounds, measured once per process. A round disturbed by other
 * processes overstates it, and subtracting too much would flatter every latency.
 */
export function timerOverheadNs(): number {
  if (overheadNs !== undefined) return overheadNs;
  const n = 20_000;
  const s = new Float64Array(n);
  let lowest = Number.POSITIVE_INFINITY;
  for (let round = 0; round < 6; round++) {
    for (let i = 0; i < n; i++) {
      const t0 = hr();
      const t1 = hr();
      s[i] = Number(t1 - t0);
    }
    s.sort();
    // Round 0 warms the loop up.
    if (round > 0) lowest = Math.min(lowest, s[n >> 1]!);
  }
  overheadNs = lowest;
  return overheadNs;
}

/** The q-quantile (0..1) of sorted samples (nearest rank). */
export function quantile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

/**
 * Measure `call(i)` over inputs `0..n-1` (cycled): a warm-up, a tight loop for
 * throughput (the clock is read once per batch, batches grow until they last
 * ≥ 2 ms) and a pass timing each call on its own for the latency percentiles.
 * `call` returns a number that is folded into `sink`.
 */
export function measure(
  label: string,
  n: number,
  call: (i: number) => number,
  opts: MeasureOptions,
): Measurement {
  const overhead = timerOverheadNs();
  let acc = 0;

  opts.setup?.();
  let idx = 0;
  const warmEnd = hr() + BigInt(Math.round(opts.warmupMs * 1e6));
  while (hr() < warmEnd) {
    for (let b = 0; b < 16; b++) {
      acc += call(idx);
      idx = idx + 1 === n ? 0 : idx + 1;
    }
  }

  // Throughput.
  opts.setup?.();
  idx = 0;
  let calls = 0;
  let batch = 1;
  const budget = BigInt(Math.round(opts.throughputMs * 1e6));
  const t0 = hr();
  const end = t0 + budget;
  let t = t0;
  while (t < end) {
    const bStart = t;
    for (let b = 0; b < batch; b++) {
      acc += call(idx);
      idx = idx + 1 === n ? 0 : idx + 1;
    }
    calls += batch;
    t = hr();
    if (t - bStart < 2_000_000n && batch < 65_536) batch *= 2;
  }
  const elapsedNs = Number(t - t0);

  // Per-call latency.
  opts.setup?.();
  idx = 0;
  const samples = new Float64Array(opts.maxLatencySamples);
  const latEnd = hr() + BigInt(Math.round(opts.latencyMs * 1e6));
  let k = 0;
  while (k < samples.length) {
    const a = hr();
    acc += call(idx);
    const b = hr();
    const d = Number(b - a) - overhead;
    samples[k++] = Math.max(d, 0);
    idx = idx + 1 === n ? 0 : idx + 1;
    if (b > latEnd) break;
  }
  const sorted = samples.subarray(0, k).sort();
  sink += acc;
  return {
    label,
    opsPerSec: (calls / elapsedNs) * 1e9,
    meanNs: elapsedNs / calls,
    p50Ns: quantile(sorted, 0.5),
    p99Ns: quantile(sorted, 0.99),
    calls,
    samples: k,
  };
}

/** `1,234,567` */
export function fmtInt(x: number): string {
  return Math.round(x).toLocaleString("en-US");
}

/** Nanoseconds as microseconds with a precision that suits the size. */
export function fmtUs(ns: number): string {
  const us = ns / 1000;
  if (us < 10) return us.toFixed(3);
  if (us < 1000) return us.toFixed(1);
  return us.toFixed(0);
}

/** `12.3×` */
export function fmtRatio(r: number): string {
  return r >= 100 ? `${r.toFixed(0)}×` : r >= 10 ? `${r.toFixed(1)}×` : `${r.toFixed(2)}×`;
}

/** A plain-text table: first column left-aligned, the others right-aligned. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!)))
      .join("  ")
      .trimEnd();
  return [line(headers), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}

/** A target line, printed and never asserted: `PASS`/`MISS` and the measured value. */
export function target(name: string, ok: boolean, detail: string): string {
  return `${ok ? "PASS" : "MISS"}  ${name}: ${detail}`;
}

/** True when `moduleUrl` is the script node was started with (so a module can also run on its own). */
export function isMain(moduleUrl: string): boolean {
  const script = process.argv[1];
  if (!script) return false;
  return fileURLToPath(moduleUrl) === resolve(script);
}
