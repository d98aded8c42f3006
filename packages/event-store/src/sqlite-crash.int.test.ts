/**
 * Crash safety of the SQLite adapter: a child process appends batches as fast
 * as it can and is killed with SIGKILL mid-stream, three times on one file.
 * After each crash the log must be whole: positions 1..head without a gap,
 * revisions gapless per stream, and every batch found complete (all-or-nothing
 * appends). A subscription in this process, fed only by polling the file,
 * must have seen exactly the committed events, in order.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { RecordedEvent } from "@portcullis/events";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SqliteEventStore } from "./adapters/sqlite.ts";

const packageDir = dirname(dirname(fileURLToPath(import.meta.url)));
const childFile = join(packageDir, "test", "crash-child.ts");
const REASON = /^crash (\S+) batch (\d+) event (\d+)\/(\d+)$/;

/** Start the appender child; resolves once it has committed its first batch. */
async function startChild(db: string, run: string): Promise<ChildProcess> {
  // `--import tsx` resolves from the package directory up to the root devDependency.
  const child = spawn(process.execPath, ["--import", "tsx", childFile, db, run], {
    cwd: packageDir,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr!.on("data", (b: Buffer) => {
    stderr += b.toString();
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`crash child did not start: ${stderr}`)), 20_000);
    child.stdout!.on("data", (b: Buffer) => {
      if (b.toString().includes("ready")) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`crash child exited with ${code} before it was ready: ${stderr}`));
    });
  });
  return child;
}

/** Check the whole log; returns the batches per run label. */
function checkLog(events: readonly RecordedEvent[]): Map<string, number> {
  const revisions = new Map<string, number>();
  const batches = new Map<string, number>();
  let open: { key: string; size: number; seen: number } | undefined;
  events.forEach((e, i) => {
    expect(e.position, "positions are 1..head without a gap").toBe(i + 1);
    const nextRevision = (revisions.get(e.stream) ?? -1) + 1;
    expect(e.revision, `revisions of \`${e.stream}\` are gapless`).toBe(nextRevision);
    revisions.set(e.stream, nextRevision);

    const m = REASON.exec(e.reason ?? "");
    expect(m, `event ${e.position} carries its batch marker`).not.toBeNull();
    const [, run, batch, index, size] = m!;
    const key = `${run}/${batch}`;
    if (Number(index) === 0) {
      expect(open, `batch before ${key} is whole`).toBeUndefined();
      open = { key, size: Number(size), seen: 0 };
      batches.set(run!, (batches.get(run!) ?? 0) + 1);
    }
    // INVARIANT checked here: a batch's events are consecutive and complete.
    expect(open?.key, `event ${e.position} continues its batch`).toBe(key);
    expect(Number(index)).toBe(open!.seen);
    open!.seen++;
    if (open!.seen === open!.size) open = undefined;
  });
  expect(open, "the last batch is whole").toBeUndefined();
  return batches;
}

describe("sqlite adapter under kill -9", () => {
  let dir: string;
  let file: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "portcullis-crash-"));
    file = join(dir, "events.db");
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("keeps every append whole and every position gapless across 3 crashes of a writer", async () => {
    let head = 0;
    for (const run of ["r1", "r2", "r3"]) {
      const watcher = SqliteEventStore.open(file, { pollIntervalMs: 20 });
      const seen: RecordedEvent[] = [];
      const sub = watcher.subscribe({ from: head + 1 });
      const watching = (async () => {
        for await (const e of sub) seen.push(e);
      })();

      const child = await startChild(file, run);
      const exited = once(child, "exit");
      await new Promise((resolve) => setTimeout(resolve, 300 + Math.random() * 500));
      child.kill("SIGKILL");
      const [code, signal] = await exited;
      expect({ code, signal }).toEqual({ code: null, signal: "SIGKILL" });

      // Reopen after the crash: recovery of the WAL, then check everything.
      const store = SqliteEventStore.open(file);
      const events: RecordedEvent[] = [];
      for await (const e of store.readAll()) events.push(e);
      const batches = checkLog(events);
      expect(batches.get(run), `run ${run} committed batches`).toBeGreaterThan(0);
      const newHead = await store.head();
      expect(newHead).toBe(events.length);
      expect(newHead).toBeGreaterThan(head);

      // The watcher saw, by polling alone, exactly the events committed by the child.
      const deadline = Date.now() + 10_000;
      while (seen.length < newHead - head && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await sub.close();
      await watching;
      expect(seen.map((e) => e.position)).toEqual(events.slice(head).map((e) => e.position));
      expect(seen).toEqual(events.slice(head));

      const raw = new Database(file, { readonly: true });
      try {
        expect(raw.pragma("integrity_check", { simple: true })).toBe("ok");
      } finally {
        raw.close();
      }
      await store.close();
      await watcher.close();
      head = newHead;
    }
  });
});
