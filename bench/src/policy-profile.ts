/**
 * Profiling aids for the policy engine (not part of `pnpm bench`).
 *
 *   node --cpu-prof --cpu-prof-dir=/tmp/prof --import tsx bench/src/policy-profile.ts cached a 5
 *     runs one engine loop (`uncached` = PolicySet.evaluate, `cached` = PolicySet.decide, all hits)
 *     over workload `a` or `b` for that many seconds, so a CPU profile shows where the time goes;
 *   tsx bench/src/policy-profile.ts scaling a
 *     prints the cost of a cache hit against the number of distinct cached decisions, split
 *     into contexts that hold every referenced key and contexts that lack one.
 */
import { compilePolicySource, PolicySet } from "@portcullis/policy";
import { workload10x10, workload1000 } from "./policy-workload.ts";

const mode = process.argv[2] ?? "uncached";
const wl = process.argv[3] === "b" ? workload1000() : workload10x10();
const compiled = wl.policies.map((p) =>
  compilePolicySource(p.document, { name: p.name, type: "Custom", version: "v1" }),
);
let allows = 0;

/** ns per `decide` hit over `reqs`, cycled for at least `calls` calls. */
function hitCost(set: PolicySet, reqs: typeof wl.requests, calls: number): number {
  const t0 = process.hrtime.bigint();
  let done = 0;
  while (done < calls) {
    for (const r of reqs) if (set.decide(r.action, r.resource, r.context).decision === "Allow") allows++;
    done += reqs.length;
  }
  return Number(process.hrtime.bigint() - t0) / done;
}

if (mode === "scaling") {
  const hasAll = (r: (typeof wl.requests)[number]) =>
    ["acs:SourceIp", "mq:ClientId", "mq:Qos", "acs:SecureTransport"].every(
      (k) => r.context?.[k] !== undefined,
    );
  console.log(`${wl.name}: ns per cached hit`);
  console.log("distinct  all        every key present  some key missing");
  for (const size of [10, 100, 1_000, 10_000]) {
    const reqs = wl.requests.slice(0, size);
    const set = new PolicySet(wl.principal, compiled, { cacheSize: 1 << 20 });
    for (const r of reqs) set.decide(r.action, r.resource, r.context);
    hitCost(set, reqs, 1_000_000);
    const all = hitCost(set, reqs, 2_000_000);
    const present = reqs.filter(hasAll);
    const missing = reqs.filter((r) => !hasAll(r));
    const p = present.length > 0 ? hitCost(set, present, 1_000_000) : Number.NaN;
    const m = missing.length > 0 ? hitCost(set, missing, 1_000_000) : Number.NaN;
    console.log(
      `${String(size).padStart(8)}  ${all.toFixed(0).padStart(4)}       ` +
        `${p.toFixed(0).padStart(4)} (${present.length})`.padEnd(19) +
        `${m.toFixed(0).padStart(4)} (${missing.length})`,
    );
  }
} else {
  const cached = mode === "cached";
  const seconds = Number(process.argv[4] ?? 5);
  const set = new PolicySet(wl.principal, compiled, { cacheSize: cached ? 1 << 20 : 0 });
  const reqs = wl.requests;
  for (const r of reqs) set.decide(r.action, r.resource, r.context);
  const end = Date.now() + seconds * 1000;
  let calls = 0;
  while (Date.now() < end) {
    for (const r of reqs) {
      const d = cached ? set.decide(r.action, r.resource, r.context) : set.evaluate(r);
      if (d.decision === "Allow") allows++;
    }
    calls += reqs.length;
  }
  console.log(
    `${cached ? "cached" : "uncached"} ${wl.name}: ${calls} calls in ${seconds} s ` +
      `(${((seconds * 1e9) / calls).toFixed(0)} ns/call)`,
  );
}
if (allows < 0) console.log(allows);
