/**
 * Property tests of the projection over random coherent histories
 * (`history.ts`): 1–2 accounts, ≤ 5 users, ≤ 3 groups, ≤ 3 custom policies,
 * attachments, grants, disable/enable, deletes and AccessKey events.
 *
 * | property | runs |
 * |---|---|
 * | (a) built incrementally = `replay` of the whole log (snapshot JSON) | 300 |
 * | (b) `replay` to P = the first P events; from a snapshot at Q ≤ P too; `replay` to a time | 300 |
 * | (c) after every event, `authorize` (warmed before it) = `authorizeUncached` = a fresh projection restored from a snapshot; a decision (or key usability) that changed is listed in `Affected` (documents in normal and shorthand form) | 250 × 2 modes |
 * | (d) snapshot (as JSON text) → restore → the rest = everything (state and decisions) | 300 |
 * | (e) an event at or below the current position changes nothing (Affected empty, state and decisions unchanged) | 300 |
 * | (f) after every event, decisions (kind, reason, RAM deciding statements) and AccessKey usability = the independent `HistoryModel` reference (deny-wins; documents in normal and shorthand form) | 300 |
 * | (f′) the same in `union` mode (seed 003: a grant gives whatever RAM does not allow) | 300 |
 * | (g) incoherent logs (`odd.ts`: every event valid, the sequence senseless): (c) in a random mode, and snapshot → restore = live | 300 |
 *
 * Requests: every principal of the universe × 4–8 random (action, resource,
 * context) combinations. Each property stops after TIME_LIMIT (4 s); the runs
 * actually done are printed at the end.
 */
import type { RecordedEvent } from "@portcullis/events";
import type { Decision } from "@portcullis/policy";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { type Affected, Projection, principalKey, replay } from "../src/mod.ts";
import {
  type GrantMode,
  type History,
  HistoryModel,
  historyArb,
  referenceAuthorize,
  requestSetArb,
  type SampleRequest,
} from "./history.ts";
import { MemorySource } from "./log.ts";
import { ODD_KEY_IDS, oddLogArb } from "./odd.ts";

/** Each property stops after this long (the runs done so far count; the summary is printed at the end). */
const TIME_LIMIT = 4_000;
const TEST_TIMEOUT = 30_000;
const runs = new Map<string, { runs: number; ms: number; interrupted: boolean }>();

/** `fc.assert` with a time bound, recording how many runs were done. */
async function check<Ts>(name: string, prop: fc.IRawProperty<Ts>, numRuns: number) {
  const t = performance.now();
  const out = await fc.check(prop as fc.IAsyncProperty<unknown>, {
    numRuns,
    interruptAfterTimeLimit: TIME_LIMIT,
  });
  runs.set(name, { runs: out.numRuns, ms: Math.round(performance.now() - t), interrupted: out.interrupted });
  if (out.failed) {
    const cause = out.errorInstance instanceof Error ? out.errorInstance.message : String(out.errorInstance);
    throw new Error(`${fc.defaultReportMessage(out) ?? "property failed"}\nCaused by: ${cause}`, {
      cause: out.errorInstance,
    });
  }
}
afterAll(() => {
  for (const [name, r] of runs)
    console.log(
      `${name}: ${r.runs} runs in ${r.ms} ms${r.interrupted ? " (stopped by the time limit)" : ""}`,
    );
});
/** Every principal of the universe × 4–8 random (action, resource, context) combinations. */
const requests = requestSetArb();

const json = (p: Projection) => JSON.stringify(p.snapshot());
function build(events: readonly RecordedEvent[], opts: { consoleGrants?: GrantMode } = {}): Projection {
  const p = new Projection(opts);
  for (const e of events) p.apply(e);
  return p;
}
const ask = (p: Projection, r: SampleRequest, cached = true): Decision =>
  cached
    ? p.authorize(r.principal, r.action, r.resource, r.context)
    : p.authorizeUncached(r.principal, r.action, r.resource, r.context);
/** Deep equality of two decisions, cheaply (the property loops ask it hundreds of thousands of times). */
const same = (a: Decision, b: Decision) =>
  a === b ||
  (a.decision === b.decision &&
    a.reason === b.reason &&
    a.action === b.action &&
    a.resource === b.resource &&
    a.message === b.message &&
    JSON.stringify(a.decidingStatements) === JSON.stringify(b.decidingStatements) &&
    JSON.stringify(a.missingContextKeys) === JSON.stringify(b.missingContextKeys));
/** Fail with a readable diff when two decisions differ. */
const expectSame = (got: Decision, want: Decision, where: () => string) => {
  if (!same(got, want)) expect(got, where()).toEqual(want);
};
const label = (r: SampleRequest) =>
  `${principalKey(r.principal)} ${r.action} ${r.resource} ${JSON.stringify(r.context ?? null)}`;

describe("projection properties", { timeout: TEST_TIMEOUT }, () => {
  it("(a) a projection built incrementally equals one built by replay", async () => {
    await check(
      "(a)",
      fc.asyncProperty(historyArb(), async (h) => {
        const live = build(h.events);
        const replayed = await replay(new MemorySource(h.events));
        expect(replayed.position).toBe(h.events.length);
        expect(json(replayed)).toBe(json(live));
      }),
      300,
    );
  });

  it("(b) replay to P equals the first P events, also from a snapshot at Q ≤ P; replay to a time", async () => {
    const arb = historyArb().chain((h) =>
      fc
        .tuple(fc.nat({ max: h.events.length }), fc.nat({ max: h.events.length }))
        .map(([x, y]) => ({ h, q: Math.min(x, y), p: Math.max(x, y) })),
    );
    await check(
      "(b)",
      fc.asyncProperty(arb, async ({ h, q, p }) => {
        const expected = json(build(h.events.slice(0, p)));
        const src = new MemorySource(h.events);
        expect(json(await replay(src, { position: p }))).toBe(expected);
        const fromSnap = await replay(
          src,
          { position: p },
          { snapshot: build(h.events.slice(0, q)).snapshot() },
        );
        expect(json(fromSnap)).toBe(expected);
        // To a time: every event that occurred at or before the time of event P (ties included).
        if (p > 0) {
          const t = h.events[p - 1]!.occurredAt;
          const k = h.events.filter((e) => e.occurredAt <= t).length;
          expect(json(await replay(src, { time: t }))).toBe(json(build(h.events.slice(0, k))));
        }
      }),
      300,
    );
  });

  /** After every event: cached = uncached = restored from a snapshot; a changed decision or key is in Affected. */
  const noStaleDecision = (
    mode: GrantMode,
    events: readonly RecordedEvent[],
    keys: readonly string[],
    reqs: readonly SampleRequest[],
  ) => {
    const p = new Projection({ consoleGrants: mode });
    for (const e of events) {
      // Warm the cache, and remember what was decided before the event.
      const before = reqs.map((r) => ask(p, r));
      const keysBefore = keys.map((k) => p.resolveAccessKey(k)?.usable);
      const affected: Affected = p.apply(e);
      const fresh = Projection.fromSnapshot(p.snapshot(), { consoleGrants: mode });
      reqs.forEach((r, i) => {
        const cached = ask(p, r);
        const uncached = ask(p, r, false);
        const at = () => `after #${e.position} ${e.type}: ${label(r)}`;
        expectSame(cached, uncached, () => `cached vs uncached ${at()}`);
        expectSame(uncached, ask(fresh, r), () => `live vs fresh ${at()}`);
        if (!same(cached, before[i]!) && !affected.principals.has(principalKey(r.principal)))
          expect.fail(`decision changed but the principal is not in Affected ${at()}`);
      });
      keys.forEach((k, i) => {
        if (p.resolveAccessKey(k)?.usable !== keysBefore[i] && !affected.accessKeys.has(k))
          expect.fail(`key ${k} changed but is not in Affected after #${e.position} ${e.type}`);
      });
    }
  };
  const cacheProperty = (mode: GrantMode) => async () => {
    await check(
      `(c) ${mode}`,
      fc.property(historyArb({ shorthandDocuments: true }), requests, (h, reqs) =>
        noStaleDecision(mode, h.events, h.accessKeyIds, reqs),
      ),
      250,
    );
  };
  it(
    "(c) no stale cached decision after any event (deny-wins); changed decisions are in Affected",
    cacheProperty("deny-wins"),
  );
  it(
    "(c) no stale cached decision after any event (union); changed decisions are in Affected",
    cacheProperty("union"),
  );

  it("(c) quiet apply (a catch-up nobody listens to): the same state, and no stale cached decision", async () => {
    await check(
      "(c) quiet",
      fc.property(
        historyArb({ shorthandDocuments: true }),
        requests,
        fc.array(fc.boolean(), { minLength: 1 }),
        (h, reqs, quietPattern) => {
          const loud = new Projection();
          const quiet = new Projection();
          h.events.forEach((e, i) => {
            for (const r of reqs) ask(quiet, r); // warm its cache before every event
            loud.apply(e);
            const aff = quiet.apply(e, { quiet: quietPattern[i % quietPattern.length]! });
            for (const k of aff.accessKeys) expect(h.accessKeyIds).toContain(k);
            for (const r of reqs)
              expectSame(
                ask(quiet, r),
                ask(quiet, r, false),
                () => `quiet after #${e.position}: ${label(r)}`,
              );
          });
          expect(json(quiet)).toBe(json(loud));
          for (const r of reqs) expectSame(ask(quiet, r), ask(loud, r), () => label(r));
        },
      ),
      250,
    );
  });

  it("(g) incoherent logs (valid events a decider never writes): no stale decision, snapshot round trip = live", async () => {
    await check(
      "(g)",
      fc.property(
        oddLogArb(),
        requests,
        fc.constantFrom<GrantMode>("deny-wins", "union"),
        (events, reqs, mode) => {
          noStaleDecision(mode, events, ODD_KEY_IDS, reqs);
          const live = build(events, { consoleGrants: mode });
          const restored = Projection.fromSnapshot(JSON.parse(json(live)), { consoleGrants: mode });
          expect(json(restored)).toBe(json(live));
        },
      ),
      300,
    );
  });

  it("(d) snapshot → restore → apply the rest equals applying everything", async () => {
    const arb = historyArb().chain((h) =>
      fc.record({ h: fc.constant(h), q: fc.nat({ max: h.events.length }) }),
    );
    await check(
      "(d)",
      fc.property(arb, requests, ({ h, q }, reqs) => {
        const all = build(h.events);
        const text = JSON.stringify(build(h.events.slice(0, q)).snapshot());
        const restored = Projection.fromSnapshot(JSON.parse(text));
        expect(restored.position).toBe(q);
        for (const e of h.events.slice(q)) restored.apply(e);
        expect(json(restored)).toBe(json(all));
        for (const r of reqs) expectSame(ask(restored, r), ask(all, r), () => label(r));
      }),
      300,
    );
  });

  it("(e) applying an event at or below the current position changes nothing", async () => {
    const arb = historyArb({ minSteps: 1 }).chain((h) =>
      fc.record({
        h: fc.constant(h),
        // Any event of the history, replayed at any position already applied.
        which: fc.nat({ max: h.events.length - 1 }),
        at: fc.integer({ min: 1, max: h.events.length }),
      }),
    );
    await check(
      "(e)",
      fc.property(arb, requests, ({ h, which, at }, reqs) => {
        const p = build(h.events);
        const before = reqs.map((r) => ask(p, r));
        const snap = json(p);
        const affected = p.apply({ ...h.events[which]!, position: at });
        expect([
          ...affected.principals,
          ...affected.accessKeys,
          ...affected.policies,
          ...affected.resources,
        ]).toEqual([]);
        expect(json(p)).toBe(snap);
        for (const [i, r] of reqs.entries()) expectSame(ask(p, r), before[i]!, () => label(r));
      }),
      300,
    );
  });

  /** The deciding statements that come from RAM policies (console grant statements are named differently). */
  const ramStatements = (d: Pick<Decision, "decidingStatements">) =>
    d.decidingStatements
      .filter((s) => s.policyType !== "ConsoleGrant")
      .map((s) => `${s.policyType}:${s.policy}@${s.version}#${s.statement}`);
  const modelProperty = (mode: GrantMode) => async () => {
    await check(
      `(f) ${mode}`,
      fc.property(historyArb({ shorthandDocuments: true }), requests, (h: History, reqs) => {
        const p = new Projection({ consoleGrants: mode });
        const m = new HistoryModel();
        for (const e of h.events) {
          p.apply(e);
          m.apply(e);
          for (const r of reqs) {
            const got = ask(p, r);
            const want = referenceAuthorize(m, r.principal, r.action, r.resource, r.context, mode);
            const g = { decision: got.decision, reason: got.reason, ram: ramStatements(got) };
            const w = { decision: want.decision, reason: want.reason, ram: ramStatements(want) };
            if (JSON.stringify(g) !== JSON.stringify(w))
              expect(g, `after #${e.position} ${e.type}: ${label(r)}`).toEqual(w);
          }
          for (const k of h.accessKeyIds)
            if (p.resolveAccessKey(k)?.usable !== m.keyUsable(k))
              expect(p.resolveAccessKey(k)?.usable, `key ${k} after #${e.position} ${e.type}`).toBe(
                m.keyUsable(k),
              );
        }
      }),
      300,
    );
  };
  it(
    "(f) decisions and key usability agree with the independent model (deny-wins)",
    modelProperty("deny-wins"),
  );
  it("(f′) decisions agree with the independent model in union mode (seed 003 rule)", modelProperty("union"));
});
