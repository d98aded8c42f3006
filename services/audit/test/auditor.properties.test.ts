/**
 * Property tests of the audit queries over random coherent histories (the
 * generators of packages/projection/test/history.ts), stored in a real
 * MemoryEventStore:
 *
 * | property | |
 * |---|---|
 * | `state` at a position P (with and without snapshots) = the view of a projection of the first P events; at a time T = the longest prefix with every event at or before T; no secret in any view | (a) |
 * | `whoCan` agrees with `explain` for every principal (root and every user at P), statements included | (b) |
 * | `diff` P1→P2 over a sample of probes = the set differences of the `whoCan` answers at P1 and P2, per principal; every change names ≥ 1 causing event in (P1, P2] | (c) |
 * | `history` lists every event in the range after which some sampled decision of the principal changed, in order, and only events in the range | (d) |
 * | `verify` finds no mismatch in decisions logged by a projection walking the log, and exactly the records planted by editing the log | (e) |
 * | `explain` from principal slices (skeleton + one user) = `explain` from a full replay (root, ids, every name ever used, unknown names) | (f) |
 */
import type { EventStore } from "@portcullis/event-store";
import { MemoryEventStore } from "@portcullis/event-store";
import type { RecordedEvent } from "@portcullis/events";
import type { DecisionRecord } from "@portcullis/feed";
import { type PrincipalRef, Projection, principalKey } from "@portcullis/projection";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import {
  CONTEXTS,
  type History,
  historyArb,
  REQUEST_ACTIONS,
  resources,
  UNIVERSE,
} from "../../../packages/projection/test/history.ts";
import { Auditor } from "../src/auditor.ts";
import { DecisionLog } from "../src/decision-log.ts";
import { namedProbes, type Probe } from "../src/probes.ts";
import { MemorySnapshotStore, SqliteSnapshotStore } from "../src/snapshots.ts";
import { SqliteDecisionStore } from "../src/sqlite-decision-store.ts";
import { stateView } from "../src/state-view.ts";

const TIME_LIMIT = 3_000;
const TEST_TIMEOUT = 40_000;
const runs = new Map<string, { runs: number; ms: number; interrupted: boolean }>();

async function check<Ts>(name: string, prop: fc.IAsyncPropertyWithHooks<Ts>, numRuns: number) {
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
/** How much the properties actually saw (so a vacuous pass shows). */
const seen = { usersAllowed: 0, diffChanges: 0, historyEvents: 0, snapshotsWritten: 0, slimExplains: 0 };
afterAll(() => {
  for (const [name, r] of runs)
    console.log(
      `${name}: ${r.runs} runs in ${r.ms} ms${r.interrupted ? " (stopped by the time limit)" : ""}`,
    );
  console.log(`coverage: ${JSON.stringify(seen)}`);
});

/** A real in-memory store holding exactly the history's events, at the same positions. */
async function storeOf(events: readonly RecordedEvent[]): Promise<EventStore> {
  const store = new MemoryEventStore();
  for (const e of events) {
    const { stream, revision: _r, position, ...envelope } = e;
    const r = await store.append(stream, [envelope]);
    if (r.position !== position) throw new Error(`store gave position ${r.position} to event ${position}`);
  }
  return store;
}

/** A projection of the first `p` events, applied one by one (the reference). */
function prefix(events: readonly RecordedEvent[], p: number): Projection {
  const pr = new Projection();
  for (const e of events) if (e.position <= p) pr.apply(e);
  return pr;
}

/** Root and every user of the account at that projection. */
function principalsOf(pr: Projection, accountId: string): PrincipalRef[] {
  const out: PrincipalRef[] = [{ accountId, kind: "root" }];
  for (const u of pr.account(accountId)?.users.values() ?? [])
    out.push({ accountId, kind: "user", userId: u.userId });
  return out;
}

const combo = fc.record({
  action: fc.constantFrom(...REQUEST_ACTIONS),
  resource: fc.constantFrom(...resources(UNIVERSE)),
  context: fc.constantFrom(...CONTEXTS),
});
const probeOf = (c: { action: string; resource: string; context: unknown }): Probe => ({
  action: c.action,
  resource: c.resource,
  ...(c.context !== undefined ? { context: c.context as Probe["context"] } : {}),
});
/** A position in 0..n as a fraction of the history. */
const frac = fc.double({ min: 0, max: 1, noNaN: true });
const at = (h: History, f: number) => Math.round(f * h.events.length);

describe("audit queries over random histories", () => {
  it(
    "(a) state at P = the projection of the first P events (position or time; with or without snapshots)",
    async () => {
      await check(
        "(a) state",
        fc.asyncProperty(
          historyArb({ maxSteps: 80 }),
          frac,
          fc.option(fc.integer({ min: 1, max: 12 }), { nil: undefined }),
          async (h, f, every) => {
            const store = await storeOf(h.events);
            const snapshots = every === undefined ? undefined : new MemorySnapshotStore();
            const auditor = new Auditor(store, snapshots ? { snapshots } : {});
            if (every !== undefined)
              seen.snapshotsWritten += (await auditor.snapshots!.update({ every })).length;
            const p = at(h, f);
            const want = stateView(prefix(h.events, p).state, {
              ...(p > 0 ? { time: h.events[p - 1]!.occurredAt } : {}),
            });
            const got = await auditor.state({ at: p });
            expect(got).toEqual(want);
            expect(JSON.stringify(got)).not.toMatch(/ciphertext|"secret"/);
            // By time: the state after every event that occurred at or before T.
            if (p > 0) {
              const t = h.events[p - 1]!.occurredAt;
              let q = 0;
              while (q < h.events.length && h.events[q]!.occurredAt <= t) q++;
              const byTime = await auditor.state({ at: t });
              expect(byTime.position).toBe(q);
              expect(byTime.accounts).toEqual(stateView(prefix(h.events, q).state).accounts);
            }
            // One account only.
            const acct = h.accounts[0]!;
            const one = await auditor.state({ at: p, accountId: acct });
            expect(one.accounts).toEqual(want.accounts.filter((a) => a.accountId === acct));
          },
        ),
        150,
      );
    },
    TEST_TIMEOUT,
  );

  it(
    "(b) who-can agrees with explain for every principal",
    async () => {
      await check(
        "(b) who-can = explain",
        fc.asyncProperty(
          historyArb({ minSteps: 30, maxSteps: 100 }),
          frac,
          fc.array(combo, { minLength: 1, maxLength: 4 }),
          async (h, f, combos) => {
            const store = await storeOf(h.events);
            const auditor = new Auditor(store, { snapshots: new MemorySnapshotStore() });
            await auditor.snapshots!.update({ every: 7 });
            const p = at(h, f);
            const ref = prefix(h.events, p);
            // Random requests, and requests the policies name (these are often allowed).
            const named = h.accounts.flatMap((a) => {
              const acc = ref.account(a);
              return acc ? [...namedProbes(acc, "local").values()].slice(0, 4) : [];
            });
            // Every action × resource of the universe with the context that satisfies every condition.
            const every = REQUEST_ACTIONS.flatMap((action) =>
              resources(UNIVERSE).map((resource) => probeOf({ action, resource, context: CONTEXTS[1] })),
            );
            for (const probe of [...combos.map(probeOf), ...named, ...every]) {
              const acct = probe.resource.split(":")[3]!;
              const who = await auditor.whoCan({ ...probe, at: p });
              expect(who.position).toBe(p);
              const allowed = new Map(who.allowed.map((a) => [a.principal.key, a]));
              for (const pr of principalsOf(ref, acct)) {
                const ex = await auditor.explain({ ...probe, principal: pr, at: p });
                expect(ex.decision).toEqual(
                  ref.authorizeUncached(pr, probe.action, probe.resource, probe.context),
                );
                const a = allowed.get(principalKey(pr));
                expect(a !== undefined).toBe(ex.decision.decision === "Allow");
                if (a) expect(a.decidingStatements).toEqual(ex.decision.decidingStatements);
                if (a && pr.kind === "user") seen.usersAllowed++;
                allowed.delete(principalKey(pr));
              }
              expect([...allowed.keys()]).toEqual([]); // nobody else
            }
          },
        ),
        150,
      );
    },
    TEST_TIMEOUT,
  );

  it(
    "(f) explain from principal slices (skeleton + one user) = explain from a full replay, names included",
    async () => {
      await check(
        "(f) slim explain = full explain",
        fc.asyncProperty(
          historyArb({ minSteps: 10, maxSteps: 100 }),
          fc.integer({ min: 1, max: 10 }),
          fc.array(fc.tuple(frac, combo, fc.nat({ max: 40 })), { minLength: 1, maxLength: 6 }),
          fc.boolean(),
          async (h, every, asks, sqlite) => {
            const store = await storeOf(h.events);
            const snapshots = sqlite ? SqliteSnapshotStore.open(":memory:") : new MemorySnapshotStore();
            const slim = new Auditor(store, { snapshots, cacheSize: 0 });
            await slim.snapshots!.update({ every });
            const full = new Auditor(store, { cacheSize: 0 });
            // Every name any user ever had, ids, root, and a name nobody had.
            const names = [
              ...new Set(
                h.events.flatMap((e) => {
                  const d = e.data as { userName?: string; newUserName?: string };
                  return [d.userName, d.newUserName].filter((x): x is string => x !== undefined);
                }),
              ),
            ];
            const who = ["root", "nobody", ...names, ...[0, 1, 2, 3, 4].map((i) => `id:u${i}`)];
            for (const [f, c, w] of asks) {
              const p = at(h, f);
              const pb = probeOf(c);
              const acct = pb.resource.split(":")[3]!;
              const q = { ...pb, principal: who[w % who.length]!, at: p, accountId: acct };
              const outcome = (a: Auditor) =>
                a.explain(q).then(
                  (r) => ({ ok: r }),
                  (e: Error) => ({ err: e.message }),
                );
              const [x, y] = await Promise.all([outcome(slim), outcome(full)]);
              expect(x).toEqual(y);
            }
            seen.slimExplains += slim.stats.sliceExplains;
            snapshots.close();
          },
        ),
        150,
      );
    },
    TEST_TIMEOUT,
  );

  it(
    "(c) diff P1→P2 = the set differences of the who-can answers at P1 and P2, with causes in (P1, P2]",
    async () => {
      await check(
        "(c) diff = who-can differences",
        fc.asyncProperty(
          historyArb({ minSteps: 20, maxSteps: 100 }),
          frac,
          frac,
          // Actions are case-insensitive: `mq:pub` and `mq:PUB` are one probe.
          fc.uniqueArray(combo, {
            minLength: 1,
            maxLength: 6,
            selector: (c) => JSON.stringify({ ...c, action: c.action.toLowerCase() }),
          }),
          async (h, f1, f2, combos) => {
            const store = await storeOf(h.events);
            const auditor = new Auditor(store, { snapshots: new MemorySnapshotStore() });
            await auditor.snapshots!.update({ every: 5 });
            const [p1, p2] = [at(h, f1), at(h, f2)].sort((a, b) => a - b) as [number, number];
            const probes = combos.map(probeOf);
            for (const acct of h.accounts) {
              const given = probes.filter((pb) => pb.resource.split(":")[3] === acct);
              // The caller's probes, or (none given) the probes the policies name.
              const diff = await auditor.diff({ accountId: acct, from: p1, to: p2, probes: given });
              expect(diff.probeSource).toBe(given.length > 0 ? "given" : "named");
              const mine = diff.probes;
              const want = new Map<string, { gained: string[]; lost: string[] }>();
              for (const [i, pb] of mine.entries()) {
                const s1 = new Set(
                  (await auditor.whoCan({ ...pb, at: p1 })).allowed.map((a) => a.principal.key),
                );
                const s2 = new Set(
                  (await auditor.whoCan({ ...pb, at: p2 })).allowed.map((a) => a.principal.key),
                );
                const entry = (k: string) => {
                  let e = want.get(k);
                  if (!e) {
                    e = { gained: [], lost: [] };
                    want.set(k, e);
                  }
                  return e;
                };
                for (const k of s2) if (!s1.has(k)) entry(k).gained.push(String(i));
                for (const k of s1) if (!s2.has(k)) entry(k).lost.push(String(i));
              }
              const idx = (c: { action: string; resource: string; context?: unknown }) =>
                String(
                  mine.findIndex(
                    (pb) =>
                      pb.action === c.action &&
                      pb.resource === c.resource &&
                      JSON.stringify(pb.context) === JSON.stringify(c.context),
                  ),
                );
              const got = new Map(
                diff.principals.map((d) => [
                  d.principal.key,
                  { gained: d.gained.map(idx), lost: d.lost.map(idx) },
                ]),
              );
              expect(got).toEqual(want);
              for (const d of diff.principals) seen.diffChanges += d.gained.length + d.lost.length;
              for (const d of diff.principals)
                for (const ch of [...d.gained, ...d.lost]) {
                  expect(ch.causes.length).toBeGreaterThan(0);
                  for (const c of ch.causes) {
                    expect(c.position).toBeGreaterThan(p1);
                    expect(c.position).toBeLessThanOrEqual(p2);
                  }
                }
            }
          },
        ),
        150,
      );
    },
    TEST_TIMEOUT,
  );

  it(
    "(d) history lists every event that changed a sampled decision of the principal",
    async () => {
      await check(
        "(d) history",
        fc.asyncProperty(
          historyArb({ minSteps: 30, maxSteps: 80 }),
          frac,
          frac,
          fc.nat({ max: UNIVERSE.users }),
          fc.array(combo, { minLength: 1, maxLength: 4 }),
          async (h, f1, f2, slot, combos) => {
            const store = await storeOf(h.events);
            const auditor = new Auditor(store);
            const [p1, p2] = [at(h, f1), at(h, f2)].sort((a, b) => a - b) as [number, number];
            const acct = h.accounts[0]!;
            const created = [
              ...new Set(
                h.events
                  .filter((e) => e.type === "UserCreated" && e.accountId === acct)
                  .map((e) => (e.data as { userId: string }).userId),
              ),
            ];
            const who: PrincipalRef =
              slot === UNIVERSE.users || created.length === 0
                ? { accountId: acct, kind: "root" }
                : { accountId: acct, kind: "user", userId: created[slot % created.length]! };
            const hist = await auditor.history({ accountId: acct, principal: who, from: p1, to: p2 });
            const listed = hist.events.map((e) => e.position);
            seen.historyEvents += listed.length;
            expect(listed).toEqual([...listed].sort((a, b) => a - b));
            for (const q of listed) {
              expect(q).toBeGreaterThan(p1);
              expect(q).toBeLessThanOrEqual(p2);
            }
            const walk = prefix(h.events, p1);
            const probes = combos.map(probeOf);
            let before = probes.map((pb) => walk.authorizeUncached(who, pb.action, pb.resource, pb.context));
            for (const e of h.events.slice(p1, p2)) {
              walk.apply(e);
              const after = probes.map((pb) =>
                walk.authorizeUncached(who, pb.action, pb.resource, pb.context),
              );
              const changed = after.some((d, i) => d.decision !== before[i]!.decision);
              if (changed) expect(listed).toContain(e.position);
              before = after;
            }
            for (const e of hist.events) {
              const src = h.events[e.position - 1]!;
              expect(e.type).toBe(src.type);
              expect(e.actor).toBe("root");
              expect(JSON.stringify(e.data)).not.toContain("ciphertext");
            }
          },
        ),
        150,
      );
    },
    TEST_TIMEOUT,
  );

  it(
    "(e) verify: no mismatch in honestly logged decisions; each planted edit is found",
    async () => {
      await check(
        "(e) verify",
        fc.asyncProperty(
          historyArb({ minSteps: 5, maxSteps: 60 }),
          // (position fraction, request, principal slot, second of the log time: not in position order)
          fc.array(fc.tuple(frac, combo, fc.nat({ max: UNIVERSE.users }), fc.nat({ max: 50 })), {
            minLength: 1,
            maxLength: 30,
          }),
          fc.nat(),
          fc.constantFrom("decision", "statements", "position"),
          async (h, asks, plantAt, how) => {
            const store = await storeOf(h.events);
            const auditor = new Auditor(store, { snapshots: new MemorySnapshotStore() });
            await auditor.snapshots!.update({ every: 4 });
            // An "edge": a projection walking the log, deciding at whatever position it has reached.
            const log = SqliteDecisionStore.open(":memory:");
            const dlog = new DecisionLog({ writer: log, allows: "all", closeWriter: false });
            const edge = new Projection();
            const sorted = [...asks].sort((a, b) => a[0] - b[0]);
            const t0 = Date.UTC(2025, 5, 1);
            for (const [f, c, slot, sec] of sorted) {
              const p = at(h, f);
              for (const e of h.events.slice(edge.position, p)) edge.apply(e);
              const acct = h.accounts[slot % h.accounts.length]!;
              const who: PrincipalRef =
                slot === UNIVERSE.users
                  ? { accountId: acct, kind: "root" }
                  : { accountId: acct, kind: "user", userId: `u${slot}` };
              const pb = probeOf(c);
              const d = edge.authorize(who, pb.action, pb.resource, pb.context);
              const r: DecisionRecord = {
                time: new Date(t0 + sec * 1000).toISOString(),
                edgeId: "edge-1",
                protocol: "mqtt",
                principal: principalKey(who),
                action: pb.action,
                resource: pb.resource,
                ...(pb.context !== undefined ? { context: pb.context } : {}),
                decision: d.decision,
                decidingStatements: d.decidingStatements,
                position: edge.position,
              };
              dlog.sink(r);
            }
            await dlog.flush();
            // Small chunks: the replay both moves forward and restarts from a snapshot.
            const clean = await auditor.verify(log, { chunkSize: 4 });
            expect(clean).toEqual({ checked: asks.length, mismatchCount: 0, mismatches: [] });

            // Plant one edit in the stored log.
            const db = log.database;
            const seq = (plantAt % asks.length) + 1;
            const row = db
              .prepare<[number], { record: string }>("SELECT record FROM decisions WHERE seq = ?")
              .get(seq)!;
            const r = JSON.parse(row.record) as DecisionRecord;
            if (how === "decision") r.decision = r.decision === "Allow" ? "ImplicitDeny" : "Allow";
            else if (how === "statements")
              r.decidingStatements = [
                ...r.decidingStatements,
                { policy: "planted", policyType: "Custom", version: "v1", statement: 0, effect: "Allow" },
              ];
            else r.position = h.events.length + 5;
            db.prepare("UPDATE decisions SET record = ? WHERE seq = ?").run(JSON.stringify(r), seq);
            const dirty = await auditor.verify(log, { chunkSize: 4 });
            expect(dirty.checked).toBe(asks.length);
            expect(dirty.mismatchCount).toBe(1);
            expect(dirty.mismatches[0]!.id).toBe(`sqlite:${seq}`);
            log.close();
          },
        ),
        150,
      );
    },
    TEST_TIMEOUT,
  );
});
