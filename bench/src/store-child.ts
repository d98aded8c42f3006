/**
 * The child process of the store benchmark: everything measured here (cold
 * start, RSS) must not be skewed by the parent's heap, so each measurement runs
 * in a fresh node process started by `store.ts` with `--expose-gc`.
 *
 * Modes (argument 2 is a JSON `ChildJob`; the result is printed as one line
 * `RESULT <json>`):
 * - `snapshot`: replay the SQLite log up to `to` (validation off, the store has
 *   validated every event it read) and write the snapshot as JSON text to `out`.
 * - `cold`: an edge's cold start — optionally read a snapshot file, then replay
 *   the events after it from the SQLite store (validation as the projection's
 *   default: on) up to the head; then RSS; then one decision per user (every
 *   user's compiled policy set built) and RSS again.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { SqliteEventStore } from "@portcullis/event-store";
import type { RecordedEvent } from "@portcullis/events";
import { Projection } from "@portcullis/projection";

/** What the parent asks a child to do. */
export type ChildJob =
  | { mode: "snapshot"; db: string; to: number; out: string }
  | { mode: "cold"; db: string; snapshot?: string; validate: boolean };

/** Memory of this process: `process.memoryUsage` after a full GC, and the peak RSS (VmHWM). */
export interface MemorySample {
  rssMb: number;
  heapUsedMb: number;
  peakRssMb: number;
}

/** What a child reports. */
export interface ChildResult {
  events: number;
  position: number;
  /** Time inside the replay loop spent reading from the store (ms). */
  readMs: number;
  /** Time spent in `Projection.apply` (ms). */
  applyMs: number;
  /** Snapshot file read + JSON.parse + restore (ms), `cold` from a snapshot only. */
  restoreMs?: number;
  /** `snapshot` only: JSON text size and time to encode and write it. */
  snapshotBytes?: number;
  snapshotWriteMs?: number;
  /** `cold` only: from opening (snapshot file or store) to the projection at the head (ms). */
  readyMs?: number;
  /** `cold` only: CPU time (user + system, all threads) of the same span (ms); less sensitive to a busy machine. */
  readyCpuMs?: number;
  /** CPU time of the restore (ms), `cold` from a snapshot only. */
  restoreCpuMs?: number;
  /** `cold` only: ms since the process started, at ready (node and module loading included). */
  processReadyMs?: number;
  users?: number;
  /** `cold` only: building every user's policy set (one decision each), ms. */
  allSetsMs?: number;
  memReady?: MemorySample;
  memAllSets?: MemorySample;
}

const mb = (b: number) => Math.round(b / 1e5) / 10;

function memory(): MemorySample {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error("store-child: run with --expose-gc");
  gc();
  gc();
  const m = process.memoryUsage();
  const status = readFileSync("/proc/self/status", "utf8");
  const hwm = /VmHWM:\s+(\d+) kB/.exec(status);
  return {
    rssMb: mb(m.rss),
    heapUsedMb: mb(m.heapUsed),
    peakRssMb: hwm ? Math.round(Number(hwm[1]) / 102.4) / 10 : Number.NaN,
  };
}

/** Replay `store` from the projection's position to `to`, timing reads and applies apart. */
async function replayTimed(store: SqliteEventStore, p: Projection, to?: number) {
  const CHUNK = 1000;
  const buf: RecordedEvent[] = [];
  let applyMs = 0;
  let events = 0;
  const flush = () => {
    const t = performance.now();
    // As the feed's catch-up applies events (nothing listens yet): quiet.
    for (const e of buf) p.apply(e, { quiet: true });
    applyMs += performance.now() - t;
    events += buf.length;
    buf.length = 0;
  };
  const t0 = performance.now();
  for await (const e of store.readAll({ from: p.position + 1, ...(to !== undefined ? { to } : {}) })) {
    buf.push(e);
    if (buf.length === CHUNK) flush();
  }
  flush();
  const totalMs = performance.now() - t0;
  return { events, applyMs, readMs: totalMs - applyMs, totalMs };
}

async function run(job: ChildJob): Promise<ChildResult> {
  if (job.mode === "snapshot") {
    const store = SqliteEventStore.open(job.db);
    const p = new Projection({ validate: false });
    const r = await replayTimed(store, p, job.to);
    await store.close();
    const t = performance.now();
    const text = JSON.stringify(p.snapshot());
    writeFileSync(job.out, text);
    return {
      events: r.events,
      position: p.position,
      readMs: r.readMs,
      applyMs: r.applyMs,
      snapshotBytes: Buffer.byteLength(text),
      snapshotWriteMs: performance.now() - t,
    };
  }

  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const cpuMs = () => {
    const c = process.cpuUsage(cpu0);
    return (c.user + c.system) / 1000;
  };
  let p: Projection;
  let restoreMs: number | undefined;
  let restoreCpuMs: number | undefined;
  if (job.snapshot !== undefined) {
    p = Projection.fromSnapshot(JSON.parse(readFileSync(job.snapshot, "utf8")), { validate: job.validate });
    restoreMs = performance.now() - t0;
    restoreCpuMs = cpuMs();
  } else p = new Projection({ validate: job.validate });
  const store = SqliteEventStore.open(job.db);
  const r = await replayTimed(store, p);
  const readyMs = performance.now() - t0;
  const readyCpuMs = cpuMs();
  const processReadyMs = performance.now();
  await store.close();
  const memReady = memory();

  // One decision per user: every user's compiled policy set is built and kept.
  const t1 = performance.now();
  let users = 0;
  let allowed = 0;
  for (const a of p.state.accounts.values()) {
    const resource = `acs:mq:local:${a.accountId}:topic/mqtt-local/t12/x`;
    for (const u of a.users.values()) {
      users++;
      const d = p.authorize({ accountId: a.accountId, kind: "user", userId: u.userId }, "mq:PUB", resource);
      if (d.decision === "Allow") allowed++;
    }
  }
  const allSetsMs = performance.now() - t1;
  const memAllSets = memory();
  if (allowed === 0) throw new Error("store-child: no user was allowed anything (workload broken?)");
  return {
    events: r.events,
    position: p.position,
    readMs: r.readMs,
    applyMs: r.applyMs,
    ...(restoreMs !== undefined ? { restoreMs, restoreCpuMs } : {}),
    readyMs,
    readyCpuMs,
    processReadyMs,
    users,
    allSetsMs,
    memReady,
    memAllSets,
  };
}

const job = JSON.parse(process.argv[2] ?? "null") as ChildJob | null;
if (!job) {
  console.error("usage: store-child.ts '<ChildJob json>'");
  process.exit(2);
}
const result = await run(job);
console.log(`RESULT ${JSON.stringify(result)}`);
