/**
 * Event store and projection benchmark (issue 3, "Benchmark"): in one run,
 * durable append rate (single events and batches of 100) for SQLite and
 * JetStream; replay rate (events/s) of 1,000,000 events from SQLite and from
 * JetStream; projection apply rate; cold start time and RSS with 100,000 users
 * and 1,000,000 events, with and without a snapshot (each cold start in its own
 * child process, `store-child.ts`, so its RSS is its own).
 *
 * Baselines measured in the same run: single appends for batches; SQLite for
 * JetStream; for the SQLite replay, the same rows read with better-sqlite3
 * directly (rows only, + JSON.parse, + event validation), which shows what the
 * adapter adds; a cold start without snapshot for the one with. Targets are
 * printed as PASS/MISS, never asserted.
 *
 * The workload (`store-workload.ts`) is deterministic. JetStream runs on a
 * private nats-server (`@portcullis/testkit`), SQLite in a temp directory; both
 * are removed at the end. Run alone: `pnpm --filter @portcullis/bench run bench:store`.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  type EventStore,
  type ExpectedRevision,
  JetStreamEventStore,
  NO_STREAM,
  SqliteEventStore,
} from "@portcullis/event-store";
import { accountStream, CURRENT_SCHEMA_VERSION, type EventEnvelope, validateEvent } from "@portcullis/events";
import { SNAPSHOT_FORMAT } from "@portcullis/projection";
import { startNatsServer } from "@portcullis/testkit";
import Database from "better-sqlite3";
import { type Benchmark, fmtInt, fmtRatio, isMain, quantile, table, target } from "./harness.ts";
import type { ChildJob, ChildResult, MemorySample } from "./store-child.ts";
import { DEFAULT_WORKLOAD, storeWorkload } from "./store-workload.ts";

/** Appends per append-rate subject: whichever comes first, the budget or the count. */
const APPEND_BUDGET_MS = 2_500;
const APPEND_MAX = 2_000;
/** Events after the snapshot replayed by the cold start from a snapshot. */
const SNAPSHOT_TAIL = 1_000;
/** Events read per raw-SQLite baseline pass (a slice of the log: set-up and churn). */
const BASELINE_FROM = 650_001;
const BASELINE_COUNT = 200_000;
/** Runs of the slice and of each baseline (the fastest counts: the machine is shared). */
const BASELINE_ROUNDS = 2;
/** Cold starts from the snapshot, each in a fresh process (the median counts). */
const SNAPSHOT_STARTS = 3;

const perSec = (n: number, ms: number) => (n / ms) * 1000;
const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const us = (ms: number) => `${(ms * 1000).toFixed(0)} µs`;

interface AppendRate {
  label: string;
  batch: number;
  appends: number;
  events: number;
  ms: number;
  p50Ms: number;
  p99Ms: number;
}

/** Append `batch`-event appends of fresh users to one new stream, with expected revisions, for a time budget. */
async function appendRate(
  store: EventStore,
  label: string,
  batch: number,
  acct: string,
): Promise<AppendRate> {
  const stream = accountStream(acct);
  let expected: ExpectedRevision = NO_STREAM;
  let n = 0;
  const mk = (): EventEnvelope => {
    n++;
    return {
      id: `rate-${label}-${batch}-${n}`,
      type: "UserCreated",
      schemaVersion: CURRENT_SCHEMA_VERSION.UserCreated,
      accountId: acct,
      occurredAt: new Date().toISOString(),
      actor: { kind: "root", accountId: acct },
      data: { userId: `r${n}`, userName: `rate-user-${n}` },
    };
  };
  // Warm-up (connection, statement caches, JIT).
  for (let i = 0; i < 20; i++) {
    const r = await store.append(stream, Array.from({ length: batch }, mk), { expectedRevision: expected });
    expected = r.revision;
  }
  const lat: number[] = [];
  let events = 0;
  const t0 = performance.now();
  while (lat.length < APPEND_MAX && performance.now() - t0 < APPEND_BUDGET_MS) {
    const evs = Array.from({ length: batch }, mk);
    const a = performance.now();
    const r = await store.append(stream, evs, { expectedRevision: expected });
    lat.push(performance.now() - a);
    expected = r.revision;
    events += batch;
  }
  const ms = performance.now() - t0;
  const sorted = Float64Array.from(lat).sort();
  return {
    label,
    batch,
    appends: lat.length,
    events,
    ms,
    p50Ms: quantile(sorted, 0.5),
    p99Ms: quantile(sorted, 0.99),
  };
}

/** Load the whole workload into `store`, one append per workload append. */
async function load(store: EventStore): Promise<{ events: number; appends: number; ms: number }> {
  let events = 0;
  let appends = 0;
  const t0 = performance.now();
  for (const a of storeWorkload()) {
    await store.append(a.stream, a.events);
    events += a.events.length;
    appends++;
  }
  return { events, appends, ms: performance.now() - t0 };
}

/** Read `readAll(range)` to the end, counting events. */
async function replayRate(store: EventStore, range: { from?: number; to?: number } = {}) {
  let events = 0;
  let check = 0;
  const t0 = performance.now();
  for await (const e of store.readAll(range)) {
    events++;
    check += e.position;
  }
  const ms = performance.now() - t0;
  return { events, ms, check };
}

/**
 * The same rows read with better-sqlite3 directly, the way the adapter reads them (rows as
 * arrays, the parsed payload completed into the envelope in place): rows only, +
 * JSON.parse, + validateEvent. The adapter's own part is what it costs beyond the last.
 */
function rawSqliteBaselines(path: string, from: number, count: number) {
  const db = new Database(path, { readonly: true });
  const page = db
    .prepare(
      "SELECT position, stream, revision, id, type, schema_version, account_id, occurred_at, payload FROM events WHERE position >= ? AND position <= ? ORDER BY position LIMIT ?",
    )
    .raw(true);
  const to = from + count - 1;
  type Row = [number, string, number, string, string, number, string, string, string];
  const pass = (work: (row: Row) => number) => {
    let acc = 0;
    let n = 0;
    const t0 = performance.now();
    for (let next = from; next <= to; ) {
      const rows = page.all(next, to, 1000) as Row[];
      if (rows.length === 0) break;
      for (const row of rows) acc += work(row);
      n += rows.length;
      next += rows.length;
    }
    return { events: n, ms: performance.now() - t0, acc };
  };
  const envelope = (row: Row) => {
    const e = JSON.parse(row[8]) as Record<string, unknown>;
    e.id = row[3];
    e.type = row[4];
    e.schemaVersion = row[5];
    e.accountId = row[6];
    e.occurredAt = row[7];
    return e;
  };
  const rows = pass((r) => r[0] & 1);
  const parsed = pass((r) => (envelope(r).id as string).length);
  const validated = pass((r) => validateEvent(envelope(r)).id.length);
  db.close();
  return { rows, parsed, validated };
}

/** Run `store-child.ts` in a fresh node process; returns its result and the wall time from spawn to exit. */
function child(job: ChildJob): Promise<ChildResult & { wallMs: number }> {
  const script = fileURLToPath(new URL("./store-child.ts", import.meta.url));
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [...process.execArgv, "--expose-gc", script, JSON.stringify(job)], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    p.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    p.on("error", reject);
    p.on("exit", (code) => {
      const line = out.split("\n").find((l) => l.startsWith("RESULT "));
      if (code !== 0 || !line) {
        reject(new Error(`store-child ${job.mode} exited with ${code}: ${out.slice(-500)}`));
        return;
      }
      resolve({ ...(JSON.parse(line.slice(7)) as ChildResult), wallMs: performance.now() - t0 });
    });
  });
}

const memCells = (m: MemorySample | undefined) =>
  m ? [`${fmtInt(m.rssMb)} MB`, `${fmtInt(m.heapUsedMb)} MB`, `${fmtInt(m.peakRssMb)} MB`] : ["", "", ""];

async function run(): Promise<void> {
  const w = DEFAULT_WORKLOAD;
  console.log("# event store and projection benchmark");
  console.log(
    "times are wall clock; CPU columns are the process's user + system time (all its threads), less sensitive to other load",
  );
  console.log(
    `node ${process.version}, ${cpus()[0]?.model ?? "?"}, ${cpus().length} cores; load average ${loadavg()[0]!.toFixed(2)} at start (other processes skew every number)`,
  );
  console.log(
    `workload: ${fmtInt(w.accounts)} accounts × ${fmtInt(w.usersPerAccount)} users = ${fmtInt(w.accounts * w.usersPerAccount)} users, each with 5 policies (3 custom + 1 system direct, 1 custom through its group); ${fmtInt(w.events)} events (set-up, then admin sessions of 1–100 events); snapshot format ${SNAPSHOT_FORMAT}`,
  );
  const dir = mkdtempSync(join(tmpdir(), "portcullis-bench-store-"));
  const nats = await startNatsServer();
  try {
    // ---- durable append rate ---------------------------------------------------
    console.log("\n## durable append rate (one stream, expected revisions, UserCreated events)");
    const rateSqlite = SqliteEventStore.open(join(dir, "rate.db"));
    const rateJs = await JetStreamEventStore.connect({
      servers: nats.url,
      streamName: "RATE",
      subjectPrefix: "rate",
    });
    const rates: AppendRate[] = [];
    rates.push(await appendRate(rateSqlite, "sqlite", 1, "9000000000000001"));
    rates.push(await appendRate(rateSqlite, "sqlite", 100, "9000000000000002"));
    rates.push(await appendRate(rateJs, "jetstream", 1, "9000000000000003"));
    rates.push(await appendRate(rateJs, "jetstream", 100, "9000000000000004"));
    await rateSqlite.close();
    await rateJs.close();
    console.log(
      table(
        ["store", "events per append", "appends", "appends/s", "events/s", "p50 ms/append", "p99 ms/append"],
        rates.map((r) => [
          r.label,
          String(r.batch),
          fmtInt(r.appends),
          fmtInt(perSec(r.appends, r.ms)),
          fmtInt(perSec(r.events, r.ms)),
          r.p50Ms.toFixed(2),
          r.p99Ms.toFixed(2),
        ]),
      ),
    );
    const rate = (label: string, batch: number) => rates.find((r) => r.label === label && r.batch === batch)!;
    const ev = (r: AppendRate) => perSec(r.events, r.ms);
    console.log(
      `batches of 100 vs single: sqlite ${fmtRatio(ev(rate("sqlite", 100)) / ev(rate("sqlite", 1)))} events/s, jetstream ${fmtRatio(ev(rate("jetstream", 100)) / ev(rate("jetstream", 1)))}; jetstream vs sqlite: single ${fmtRatio(ev(rate("jetstream", 1)) / ev(rate("sqlite", 1)))}, batches ${fmtRatio(ev(rate("jetstream", 100)) / ev(rate("sqlite", 100)))}`,
    );
    console.log(
      "durability: sqlite commits each append with WAL + synchronous=FULL (fsync); nats-server 2.9 acknowledges once the message is in its file store, which it fsyncs on its own schedule (not per message).",
    );

    // ---- load 1M events ----------------------------------------------------------
    console.log(`\n## loading ${fmtInt(w.events)} events (the workload's appends of ≤ ${w.maxBatch} events)`);
    const dbPath = join(dir, "events.db");
    const sqlite = SqliteEventStore.open(dbPath);
    const loadSqlite = await load(sqlite);
    const js = await JetStreamEventStore.connect({
      servers: nats.url,
      streamName: "EVENTS",
      subjectPrefix: "bench",
    });
    const loadJs = await load(js);
    console.log(
      table(
        ["store", "events", "appends", "time", "events/s"],
        [
          [
            "sqlite",
            fmtInt(loadSqlite.events),
            fmtInt(loadSqlite.appends),
            s(loadSqlite.ms),
            fmtInt(perSec(loadSqlite.events, loadSqlite.ms)),
          ],
          [
            "jetstream",
            fmtInt(loadJs.events),
            fmtInt(loadJs.appends),
            s(loadJs.ms),
            fmtInt(perSec(loadJs.events, loadJs.ms)),
          ],
        ],
      ),
    );

    // ---- replay rate ----------------------------------------------------------------
    console.log(`\n## replay rate (readAll, every event validated by the adapter as it is read)`);
    const rs = await replayRate(sqlite);
    const rj = await replayRate(js);
    await js.close();
    // The slice and its baselines, in turn, BASELINE_ROUNDS times; the fastest run of each counts.
    const slice = { from: BASELINE_FROM, to: BASELINE_FROM + BASELINE_COUNT - 1 };
    type Pass = { events: number; ms: number };
    const best = (a: Pass, b: Pass) => (a.ms <= b.ms ? a : b);
    let rsSlice: Pass = { events: 0, ms: Number.POSITIVE_INFINITY };
    let raw = { rows: rsSlice, parsed: rsSlice, validated: rsSlice };
    for (let round = 0; round < BASELINE_ROUNDS; round++) {
      rsSlice = best(rsSlice, await replayRate(sqlite, slice));
      const r = rawSqliteBaselines(dbPath, BASELINE_FROM, BASELINE_COUNT);
      raw = {
        rows: best(raw.rows, r.rows),
        parsed: best(raw.parsed, r.parsed),
        validated: best(raw.validated, r.validated),
      };
    }
    await sqlite.close();
    console.log(
      table(
        ["subject", "events", "time", "events/s", "µs/event"],
        [
          [
            "sqlite readAll, whole log",
            fmtInt(rs.events),
            s(rs.ms),
            fmtInt(perSec(rs.events, rs.ms)),
            ((rs.ms * 1000) / rs.events).toFixed(2),
          ],
          [
            "jetstream readAll, whole log",
            fmtInt(rj.events),
            s(rj.ms),
            fmtInt(perSec(rj.events, rj.ms)),
            ((rj.ms * 1000) / rj.events).toFixed(2),
          ],
          [
            `sqlite readAll, positions ${fmtInt(slice.from)}–${fmtInt(slice.to)} (best of ${BASELINE_ROUNDS})`,
            fmtInt(rsSlice.events),
            s(rsSlice.ms),
            fmtInt(perSec(rsSlice.events, rsSlice.ms)),
            ((rsSlice.ms * 1000) / rsSlice.events).toFixed(2),
          ],
          ...(
            [
              [`  baseline: better-sqlite3 rows only (best of ${BASELINE_ROUNDS})`, raw.rows],
              ["  baseline: rows + JSON.parse", raw.parsed],
              ["  baseline: rows + JSON.parse + validateEvent", raw.validated],
            ] as const
          ).map(([label, r]) => [
            label,
            fmtInt(r.events),
            s(r.ms),
            fmtInt(perSec(r.events, r.ms)),
            ((r.ms * 1000) / r.events).toFixed(2),
          ]),
        ],
      ),
    );
    console.log(
      `jetstream vs sqlite replay: ${fmtRatio(perSec(rj.events, rj.ms) / perSec(rs.events, rs.ms))}; on the slice the adapter takes ${fmtRatio(rsSlice.ms / raw.validated.ms)} the time of rows + parse + validation, ${fmtRatio(rsSlice.ms / raw.rows.ms)} that of the rows alone`,
    );
    if (rs.events !== w.events || rj.events !== w.events || rs.check !== rj.check)
      console.log(`WARNING: replays disagree (sqlite ${rs.events}, jetstream ${rj.events})`);

    // ---- projection: snapshot, cold starts (children) ---------------------------------
    console.log(`\n## projection apply rate and cold start (each in its own node process; SQLite store)`);
    const snapPath = join(dir, "snapshot.json");
    const snapAt = w.events - SNAPSHOT_TAIL;
    const built = await child({ mode: "snapshot", db: dbPath, to: snapAt, out: snapPath });
    // The cold starts run the projection as the feed does (LiveProjection): `validate: false`,
    // since the store adapter has validated each event as it read it.
    const full = await child({ mode: "cold", db: dbPath, validate: false });
    const starts: (ChildResult & { wallMs: number })[] = [];
    for (let i = 0; i < SNAPSHOT_STARTS; i++)
      starts.push(await child({ mode: "cold", db: dbPath, snapshot: snapPath, validate: false }));
    starts.sort((a, b) => a.readyMs! - b.readyMs!);
    const fromSnap = starts[Math.floor(starts.length / 2)]!;
    console.log(
      table(
        ["projection.apply", "events", "apply time", "events/s", "µs/event", "store read time (same loop)"],
        [
          [
            "cold start (validate off, as the feed)",
            fmtInt(full.events),
            s(full.applyMs),
            fmtInt(perSec(full.events, full.applyMs)),
            us(full.applyMs / full.events),
            s(full.readMs),
          ],
          [
            "snapshot build (validate off)",
            fmtInt(built.events),
            s(built.applyMs),
            fmtInt(perSec(built.events, built.applyMs)),
            us(built.applyMs / built.events),
            s(built.readMs),
          ],
        ],
      ),
    );
    console.log(
      `snapshot at position ${fmtInt(built.position)}: ${(built.snapshotBytes! / 1e6).toFixed(1)} MB of JSON, encoded and written in ${s(built.snapshotWriteMs!)}`,
    );
    console.log(
      table(
        [
          "cold start",
          "events replayed",
          "ready",
          "ready, CPU",
          "of which restore",
          "restore, CPU",
          "process start → ready",
          "RSS at ready",
          "heap used",
          "peak RSS",
        ],
        [
          [
            "1M events, no snapshot",
            fmtInt(full.events),
            s(full.readyMs!),
            s(full.readyCpuMs!),
            "",
            "",
            s(full.processReadyMs!),
            ...memCells(full.memReady),
          ],
          [
            `snapshot + ${fmtInt(fromSnap.events)} events (median of ${SNAPSHOT_STARTS})`,
            fmtInt(fromSnap.events),
            s(fromSnap.readyMs!),
            s(fromSnap.readyCpuMs!),
            s(fromSnap.restoreMs!),
            s(fromSnap.restoreCpuMs!),
            s(fromSnap.processReadyMs!),
            ...memCells(fromSnap.memReady),
          ],
        ],
      ),
    );
    console.log(
      table(
        ["then every user's policy set built", "users", "time", "RSS", "heap used", "peak RSS"],
        [
          [
            "after the cold start without snapshot",
            fmtInt(full.users!),
            s(full.allSetsMs!),
            ...memCells(full.memAllSets),
          ],
          [
            "after the cold start from the snapshot",
            fmtInt(fromSnap.users!),
            s(fromSnap.allSetsMs!),
            ...memCells(fromSnap.memAllSets),
          ],
        ],
      ),
    );
    console.log(
      `from the snapshot, ${SNAPSHOT_STARTS} starts: ready ${starts.map((x) => s(x.readyMs!)).join(", ")}; of which restore ${starts.map((x) => s(x.restoreMs!)).join(", ")}`,
    );
    console.log(
      `snapshot vs full cold start: ${fmtRatio(full.readyMs! / fromSnap.readyMs!)} faster to ready`,
    );

    // ---- targets ---------------------------------------------------------------------
    console.log("\n## targets (printed, not asserted)");
    const sqliteReplay = perSec(rs.events, rs.ms);
    console.log(
      target("sqlite replay ≥ 200,000 events/s", sqliteReplay >= 200_000, `${fmtInt(sqliteReplay)} events/s`),
    );
    console.log(
      target(
        "1M-event cold start ≤ 5 s",
        full.readyMs! <= 5_000,
        `${s(full.readyMs!)}, CPU ${s(full.readyCpuMs!)} (process start → ready ${s(full.processReadyMs!)})`,
      ),
    );
    console.log(
      target(
        "cold start from a snapshot ≤ 1 s",
        fromSnap.readyMs! <= 1_000,
        `${s(fromSnap.readyMs!)} median of ${SNAPSHOT_STARTS}, best ${s(starts[0]!.readyMs!)}, CPU ${s(fromSnap.readyCpuMs!)} (snapshot at ${fmtInt(built.position)} + ${fmtInt(fromSnap.events)} events; process start → ready ${s(fromSnap.processReadyMs!)})`,
      ),
    );
    const rss = Math.max(full.memAllSets!.rssMb, full.memAllSets!.peakRssMb);
    console.log(
      target(
        "100k users with 5 policies each ≤ 1 GB RSS",
        rss <= 1024,
        `peak RSS ${fmtInt(full.memAllSets!.peakRssMb)} MB, RSS ${fmtInt(full.memAllSets!.rssMb)} MB with every policy set built (from a snapshot: peak ${fmtInt(fromSnap.memAllSets!.peakRssMb)} MB)`,
      ),
    );
    console.log(`load average ${loadavg()[0]!.toFixed(2)} at the end`);
  } finally {
    await nats.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The store benchmark, as registered in run.ts. */
export const storeBenchmark: Benchmark = {
  name: "store",
  description:
    "event stores (append, replay) and the projection (apply, cold start, RSS) over 100k users / 1M events",
  run,
};

if (isMain(import.meta.url)) await storeBenchmark.run();
