/**
 * Policy engine benchmark (issue: "One command prints, measured in the same
 * run: decisions/s and p50/p99 latency, uncached and cached, for (a) … (b) …;
 * the same workload through the reference evaluator and through casbin as
 * peers, with the ratios").
 *
 * For each workload: the engine uncached (`PolicySet.evaluate`, a fresh set per
 * measured phase, no decision cache), the engine cached (`PolicySet.decide`
 * after a warm-up pass, so every call is a hit), the naive reference evaluator
 * and casbin, all over the same requests in the same order. Targets are printed
 * as PASS/MISS, never asserted. Run alone with `pnpm --filter @portcullis/bench
 * run bench:policy`, or with every benchmark through `pnpm bench`.
 */
import { readFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { type CompiledPolicy, compilePolicySource, type Decision, PolicySet } from "@portcullis/policy";
import { buildCasbinEnforcer, type CasbinRequest, casbinRequest, policyLines } from "./casbin-peer.ts";
import {
  type Benchmark,
  fmtInt,
  fmtRatio,
  fmtUs,
  isMain,
  type Measurement,
  type MeasureOptions,
  measure,
  table,
  target,
  timerOverheadNs,
} from "./harness.ts";
import { type PolicyWorkload, workload10x10, workload1000 } from "./policy-workload.ts";
import { ReferenceEvaluator } from "./reference-evaluator.ts";

/** Budgets per subject (ms); the whole policy benchmark stays well under a minute on 2 cores. */
const ENGINE: MeasureOptions = {
  warmupMs: 300,
  throughputMs: 1500,
  latencyMs: 1000,
  maxLatencySamples: 30_000,
};
const REFERENCE: MeasureOptions = {
  warmupMs: 300,
  throughputMs: 1500,
  latencyMs: 1500,
  maxLatencySamples: 30_000,
};
const CASBIN: MeasureOptions = {
  warmupMs: 500,
  throughputMs: 2000,
  latencyMs: 2000,
  maxLatencySamples: 30_000,
};
const SECONDARY: MeasureOptions = {
  warmupMs: 300,
  throughputMs: 1000,
  latencyMs: 1000,
  maxLatencySamples: 30_000,
};

/** Distinct requests of the informational "hot set" cached run. */
const HOT_SET = 1_000;

/** Cache size for the cached runs: above the number of distinct requests, so nothing is evicted. */
const CACHE_SIZE = 1 << 20;

/** The numbers of one workload, for the target lines. */
interface WorkloadResult {
  readonly name: string;
  readonly uncached: Measurement;
  readonly cached: Measurement;
  readonly cachedHot: Measurement;
  readonly reference: Measurement;
  readonly casbin: Measurement;
}

function casbinVersion(): string {
  try {
    const url = new URL(import.meta.resolve("casbin/package.json"));
    return (JSON.parse(readFileSync(url, "utf8")) as { version: string }).version;
  } catch {
    return "?";
  }
}

function percent(n: number, total: number): string {
  return `${((n / total) * 100).toFixed(1)}%`;
}

async function benchWorkload(wl: PolicyWorkload): Promise<WorkloadResult> {
  const { principal, requests } = wl;
  const n = requests.length;
  const documents = wl.policies.map((p) => p.document);

  const tCompile = process.hrtime.bigint();
  const compiled: CompiledPolicy[] = wl.policies.map((p) =>
    compilePolicySource(p.document, { name: p.name, type: "Custom", version: "v1" }),
  );
  const compileMs = Number(process.hrtime.bigint() - tCompile) / 1e6;
  const reference = new ReferenceEvaluator(principal, documents);
  const subject = principal.name ?? "user";
  const lines = policyLines(subject, documents);
  const enforcer = await buildCasbinEnforcer(lines);
  const enforcerNoCond = await buildCasbinEnforcer(lines, { conditions: false });
  const casbinReqs: CasbinRequest[] = requests.map((r) => casbinRequest(subject, r));

  // Correctness first: the engine against the reference on every request, cached against uncached.
  const truth: Decision[] = [];
  const check = new PolicySet(principal, compiled, { cacheSize: 0 });
  for (const r of requests) truth.push(check.evaluate(r));
  const mix = { Allow: 0, ExplicitDeny: 0, ImplicitDeny: 0 };
  let refAgree = 0;
  const disagreements: string[] = [];
  for (let i = 0; i < n; i++) {
    const d = truth[i]!;
    mix[d.decision]++;
    const ref = reference.evaluate(requests[i]!);
    if (ref === d.decision) refAgree++;
    else if (disagreements.length < 3)
      disagreements.push(
        `  request ${i}: engine ${d.decision}, reference ${ref}: ${JSON.stringify(requests[i])}`,
      );
  }
  const statements = documents.reduce((a, d) => a + d.Statement.length, 0);
  const withCond = documents.reduce((a, d) => a + d.Statement.filter((s) => s.Condition).length, 0);
  const denies = documents.reduce((a, d) => a + d.Statement.filter((s) => s.Effect === "Deny").length, 0);
  const crossAccount = truth.filter((d) => d.reason === "cross-account").length;

  console.log(`\n## ${wl.name}`);
  console.log(
    `${wl.policies.length} policies, ${statements} statements (${withCond} with conditions, ${denies} Deny); ` +
      `compiled in ${compileMs.toFixed(1)} ms; casbin: ${lines.length} policy lines`,
  );
  console.log(
    `${fmtInt(n)} requests: Allow ${percent(mix.Allow, n)}, ExplicitDeny ${percent(mix.ExplicitDeny, n)}, ` +
      `ImplicitDeny ${percent(mix.ImplicitDeny, n)} (cross-account ${percent(crossAccount, n)})`,
  );

  // (1) engine, uncached: a fresh set per phase, no decision cache.
  let set = new PolicySet(principal, compiled, { cacheSize: 0 });
  const uncached = measure(
    "engine evaluate (uncached)",
    n,
    (i) => (set.evaluate(requests[i]!).decision === "Allow" ? 1 : 0),
    { ...ENGINE, setup: () => (set = new PolicySet(principal, compiled, { cacheSize: 0 })) },
  );

  // (2) engine, cached: one warm-up pass fills the cache, then every call is a hit.
  let cachedSet = new PolicySet(principal, compiled, { cacheSize: CACHE_SIZE });
  let decideAgree = 0;
  const warm: Decision[] = [];
  for (let i = 0; i < n; i++) {
    const r = requests[i]!;
    const d = cachedSet.decide(r.action, r.resource, r.context);
    warm.push(d);
    if (d.decision === truth[i]!.decision) decideAgree++;
  }
  const filled = cachedSet.cachedDecisions;
  const cached = measure(
    "engine decide (cached, all hits)",
    n,
    (i) => {
      const r = requests[i]!;
      return cachedSet.decide(r.action, r.resource, r.context).decision === "Allow" ? 1 : 0;
    },
    ENGINE,
  );
  // A hit returns the cached object itself: after the measured phase, every request must still get it.
  let sameObject = 0;
  for (let i = 0; i < n; i++) {
    const r = requests[i]!;
    if (cachedSet.decide(r.action, r.resource, r.context) === warm[i]) sameObject++;
  }
  const allHits = cachedSet.cachedDecisions === filled && sameObject === n;

  // (2b) informational: the same, cycling over only the first HOT_SET requests (a working set that fits in CPU caches).
  cachedSet = new PolicySet(principal, compiled, { cacheSize: CACHE_SIZE });
  for (let i = 0; i < HOT_SET; i++) {
    const r = requests[i]!;
    cachedSet.decide(r.action, r.resource, r.context);
  }
  const cachedHot = measure(
    `engine decide (cached, ${fmtInt(HOT_SET)}-request hot set)`,
    HOT_SET,
    (i) => {
      const r = requests[i]!;
      return cachedSet.decide(r.action, r.resource, r.context).decision === "Allow" ? 1 : 0;
    },
    SECONDARY,
  );
  cachedSet = new PolicySet(principal, compiled, { cacheSize: 0 });

  // (3) the naive reference evaluator.
  const ref = measure(
    "reference evaluator (naive)",
    n,
    (i) => (reference.evaluate(requests[i]!) === "Allow" ? 1 : 0),
    REFERENCE,
  );

  // (4) casbin; records its answers to check them against the engine.
  const casbinAnswers = new Int8Array(n).fill(-1);
  const casbin = measure(
    `casbin ${casbinVersion()} enforceSync`,
    n,
    (i) => {
      const ok = enforcer.enforceSync(...casbinReqs[i]!);
      casbinAnswers[i] = ok ? 1 : 0;
      return ok ? 1 : 0;
    },
    CASBIN,
  );
  // (4b) informational: casbin without conditions (not equivalent), a lower bound of its cost.
  const casbinFloor = measure(
    "casbin, conditions dropped (lower bound)",
    n,
    (i) => (enforcerNoCond.enforceSync(...casbinReqs[i]!) ? 1 : 0),
    SECONDARY,
  );
  let casbinSeen = 0;
  let casbinAgree = 0;
  for (let i = 0; i < n; i++) {
    if (casbinAnswers[i] === -1) continue;
    casbinSeen++;
    if ((casbinAnswers[i] === 1) === (truth[i]!.decision === "Allow")) casbinAgree++;
  }

  const rows = [uncached, cached, cachedHot, ref, casbin, casbinFloor].map((m) => [
    m.label,
    fmtInt(m.opsPerSec),
    fmtUs(m.meanNs),
    fmtUs(m.p50Ns),
    fmtUs(m.p99Ns),
    fmtInt(m.samples),
  ]);
  console.log();
  console.log(table(["subject", "decisions/s", "mean µs", "p50 µs", "p99 µs", "latency samples"], rows));
  console.log();
  const ratioRow = (label: string, peer: Measurement) => [
    label,
    fmtRatio(uncached.opsPerSec / peer.opsPerSec),
    fmtRatio(peer.p50Ns / uncached.p50Ns),
    fmtRatio(peer.p99Ns / uncached.p99Ns),
    fmtRatio(cached.opsPerSec / peer.opsPerSec),
    fmtRatio(peer.p50Ns / cached.p50Ns),
  ];
  console.log(
    table(
      [
        "engine faster than",
        "uncached decisions/s",
        "uncached p50",
        "uncached p99",
        "cached decisions/s",
        "cached p50",
      ],
      [
        ratioRow("reference evaluator", ref),
        ratioRow("casbin", casbin),
        ratioRow("casbin, conditions dropped", casbinFloor),
      ],
    ),
  );
  console.log();
  console.log(
    `agreement: engine = reference on ${fmtInt(refAgree)}/${fmtInt(n)}; decide = evaluate on ` +
      `${fmtInt(decideAgree)}/${fmtInt(n)}; casbin allow/deny = engine on ${fmtInt(casbinAgree)}/` +
      `${fmtInt(casbinSeen)} requests it evaluated; cached phase all hits: ${allHits ? "yes" : "NO"} ` +
      `(${fmtInt(filled)} decisions cached; ${fmtInt(sameObject)}/${fmtInt(n)} requests get the cached object)`,
  );
  for (const d of disagreements) console.log(d);
  return { name: wl.name, uncached, cached, cachedHot, reference: ref, casbin };
}

function cpuModel(): string {
  try {
    const m = /^model name\s*:\s*(.*)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"));
    if (m) return m[1]!.trim();
  } catch {
    // not Linux: fall back to os.cpus()
  }
  return cpus()[0]?.model ?? "?";
}

async function runPolicyBench(): Promise<void> {
  console.log("# policy engine benchmark");
  console.log(
    `node ${process.version}, ${cpuModel()}, ${cpus().length} cores; latency per call with ` +
      `process.hrtime.bigint(), timer overhead ${timerOverheadNs()} ns (lowest median of 5 rounds) subtracted; ` +
      `load average ${loadavg()[0]!.toFixed(2)} at start (other processes skew every number)`,
  );
  const a = await benchWorkload(workload10x10());
  const b = await benchWorkload(workload1000());

  const us = (ns: number) => `${fmtUs(ns)} µs`;
  console.log("\n## targets (printed, not asserted)");
  const lines = [
    target("(a) uncached p50 ≤ 5 µs", a.uncached.p50Ns <= 5000, us(a.uncached.p50Ns)),
    target("(a) uncached p99 ≤ 25 µs", a.uncached.p99Ns <= 25_000, us(a.uncached.p99Ns)),
    ...[a, b].map((w) =>
      target(
        `${w.name.slice(0, 3)} cached p50 ≤ 0.3 µs`,
        w.cached.p50Ns <= 300,
        `${us(w.cached.p50Ns)} (tight-loop mean ${us(w.cached.meanNs)}; ` +
          `${fmtInt(HOT_SET)}-request hot set: p50 ${us(w.cachedHot.p50Ns)}, mean ${us(w.cachedHot.meanNs)})`,
      ),
    ),
    ...[a, b].map((w) => {
      const r = w.uncached.opsPerSec / w.casbin.opsPerSec;
      return target(
        `${w.name.slice(0, 3)} uncached ≥ 3× casbin`,
        r >= 3,
        `${fmtRatio(r)} decisions/s, ${fmtRatio(w.casbin.p50Ns / w.uncached.p50Ns)} p50`,
      );
    }),
  ];
  for (const l of lines) console.log(l);
  console.log(`(b) uncached, for the record: p50 ${us(b.uncached.p50Ns)}, p99 ${us(b.uncached.p99Ns)}`);
  console.log(`load average ${loadavg()[0]!.toFixed(2)} at the end`);
}

/** The policy engine benchmark: workloads (a) and (b), engine uncached/cached vs reference vs casbin. */
export const policyBenchmark: Benchmark = {
  name: "policy",
  description: "policy engine decisions/s and p50/p99, uncached and cached, vs a naive reference and casbin",
  run: runPolicyBench,
};

if (isMain(import.meta.url)) await policyBenchmark.run();
