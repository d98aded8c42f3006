/**
 * Crash tests of the JetStream event store: writers killed with SIGKILL
 * mid-append, and the nats-server itself killed with SIGKILL while appending.
 * After each crash the store must hold whole appends only, with gapless
 * positions and revisions, and a consumer resuming from a saved position must
 * see every event exactly once.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { accountStream, newEvent, type RecordedEvent } from "@portcullis/events";
import { startNatsServer } from "@portcullis/testkit";
import { describe, expect, it } from "vitest";
import { JetStreamEventStore } from "./adapters/jetstream.ts";
import { isExpectedRevisionConflict, StoreUnavailableError } from "./errors.ts";
import type { Subscription } from "./port.ts";

const here = dirname(fileURLToPath(import.meta.url));
const CHILD = join(here, "..", "test", "jetstream-crash-child.ts");
const TSX = createRequire(import.meta.url).resolve("tsx");

/** What a writer said about one append. */
interface Line {
  kind: "intent" | "ack" | "conflict";
  stream: string;
  ids: string[];
  firstPosition?: number;
  position?: number;
  revision?: number;
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

/** Read a subscription until `until(lastEvent)` holds or `ms` pass; then close it. */
async function drain(
  sub: Subscription,
  until: (events: RecordedEvent[]) => boolean,
  ms: number,
): Promise<RecordedEvent[]> {
  const got: RecordedEvent[] = [];
  const it = sub[Symbol.asyncIterator]();
  const deadline = Date.now() + ms;
  try {
    while (!until(got)) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`subscription stalled after ${got.length} events`);
      let timer: NodeJS.Timeout | undefined;
      const r = await Promise.race([
        it.next(),
        new Promise<"timeout">((res) => {
          timer = setTimeout(() => res("timeout"), left);
        }),
      ]);
      clearTimeout(timer);
      if (r === "timeout") throw new Error(`subscription stalled after ${got.length} events`);
      if (r.done) break;
      got.push(r.value);
    }
  } finally {
    await sub.close();
  }
  return got;
}

/**
 * Check the store against what the writers said: positions 1..head gapless,
 * revisions gapless per stream, every acknowledged append present whole at
 * its reported positions, every other intent whole or absent, nothing else.
 */
function checkConsistent(all: RecordedEvent[], lines: Line[]): { acked: number; unacked: number } {
  expect(all.map((e) => e.position)).toEqual(all.map((_, i) => i + 1));
  const byStream = new Map<string, number[]>();
  for (const e of all) byStream.set(e.stream, [...(byStream.get(e.stream) ?? []), e.revision]);
  for (const revs of byStream.values()) expect(revs).toEqual(revs.map((_, i) => i));

  const byId = new Map(all.map((e) => [e.id, e]));
  expect(byId.size).toBe(all.length); // no event twice
  const intents = new Map<string, Line>();
  for (const l of lines) if (l.kind === "intent") intents.set(l.ids[0]!, l);
  const acks = new Map(lines.filter((l) => l.kind === "ack").map((l) => [l.ids[0]!, l]));
  const conflicts = new Set(lines.filter((l) => l.kind === "conflict").map((l) => l.ids[0]!));

  let acked = 0;
  let unacked = 0;
  const explained = new Set<string>();
  for (const [first, intent] of intents) {
    const found = intent.ids.map((id) => byId.get(id));
    const ack = acks.get(first);
    if (ack) {
      acked++;
      expect(found.every((e) => e !== undefined)).toBe(true);
      expect(found.map((e) => e!.position)).toEqual(intent.ids.map((_, i) => ack.firstPosition! + i));
      expect(ack.position).toBe(ack.firstPosition! + intent.ids.length - 1);
      expect(found.at(-1)!.revision).toBe(ack.revision);
    } else if (conflicts.has(first)) {
      expect(found.every((e) => e === undefined)).toBe(true);
    } else {
      // Unacknowledged (killed in flight): whole or absent, never partial.
      const present = found.filter((e) => e !== undefined);
      expect([0, intent.ids.length]).toContain(present.length);
      if (present.length > 0) unacked++;
    }
    for (const e of found) {
      if (e === undefined) continue;
      explained.add(e.id);
      expect(e.stream).toBe(intent.stream);
    }
    // A whole append has consecutive positions and revisions.
    if (found[0] !== undefined) {
      expect(found.map((e) => e!.position)).toEqual(found.map((_, i) => found[0]!.position + i));
      expect(found.map((e) => e!.revision)).toEqual(found.map((_, i) => found[0]!.revision + i));
    }
  }
  expect(all.filter((e) => !explained.has(e.id))).toEqual([]);
  return { acked, unacked };
}

/** Start a writer child; its stdout lines are parsed into `lines`. */
function startWriter(
  url: string,
  streamName: string,
  prefix: string,
  id: number,
  lines: Line[],
): { child: ChildProcess; ready: Promise<void>; stderr: () => string } {
  const child = spawn(process.execPath, ["--import", TSX, CHILD, url, streamName, prefix, String(id)], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let err = "";
  child.stderr?.setEncoding("utf8").on("data", (c: string) => {
    err = (err + c).slice(-4_000);
  });
  let resolveReady: () => void = () => {};
  const ready = new Promise<void>((resolve, reject) => {
    resolveReady = resolve;
    child.once("exit", (code, signal) =>
      reject(new Error(`writer ${id} exited (${signal ?? code}) before ready: ${err}`)),
    );
  });
  ready.catch(() => {});
  createInterface({ input: child.stdout! }).on("line", (line) => {
    if (line === "ready") return resolveReady();
    const space = line.indexOf(" ");
    lines.push({ kind: line.slice(0, space) as Line["kind"], ...JSON.parse(line.slice(space + 1)) });
  });
  return { child, ready, stderr: () => err };
}

describe("JetStreamEventStore crash safety", () => {
  it("writers killed with SIGKILL leave whole appends; a resumed consumer sees every event once", async () => {
    await using server = await startNatsServer();
    const opts = { servers: server.url, streamName: "CRASH", subjectPrefix: "crash" };
    const store = await JetStreamEventStore.connect(opts);
    try {
      const lines: Line[] = [];
      const writers = [1, 2].map((id) =>
        startWriter(server.url, opts.streamName, opts.subjectPrefix, id, lines),
      );
      await Promise.all(writers.map((w) => w.ready));

      // A consumer applies events, saves its position, and stops mid-run.
      const firstRun = await drain(store.subscribe(), (got) => got.length >= 50, 20_000);
      const saved = firstRun.at(-1)!.position;

      await new Promise((r) => setTimeout(r, 500));
      for (const w of writers) {
        const exited = once(w.child, "exit");
        w.child.kill("SIGKILL");
        const [code, signal] = await exited;
        expect({ code, signal, stderr: w.stderr() }).toMatchObject({ code: null, signal: "SIGKILL" });
      }
      // Let readline flush the last lines of the dead writers.
      await new Promise((r) => setTimeout(r, 50));

      const head = await store.head();
      const resumed = await drain(
        store.subscribe({ from: saved + 1 }),
        (got) => (got.at(-1)?.position ?? saved) >= head,
        20_000,
      );
      const seen = [...firstRun, ...resumed];
      // Exactly once, in order, gapless, and the same as a fresh read.
      expect(seen.map((e) => e.position)).toEqual(Array.from({ length: head }, (_, i) => i + 1));
      const all = await collect(store.readAll());
      expect(seen).toEqual(all);
      const { acked } = checkConsistent(all, lines);
      expect(acked).toBeGreaterThan(20);
      expect(lines.some((l) => l.kind === "conflict")).toBe(true); // the writers did race

      // The store keeps working after the crash.
      const s = accountStream("0000000000000001");
      const rev = await store.streamRevision(s);
      const ev = newEvent(
        "UserDisabled",
        1,
        "0000000000000001",
        { kind: "system", name: "t" },
        { userId: "x" },
      );
      expect(await store.append(s, [ev], { expectedRevision: rev })).toMatchObject({
        firstPosition: head + 1,
        revision: rev + 1,
      });
    } finally {
      await store.close();
    }
  });

  it("nats-server killed with SIGKILL while appending: consistent after restart, appends retried whole", async () => {
    await using server = await startNatsServer();
    const opts = {
      servers: server.url,
      streamName: "CRASH2",
      subjectPrefix: "crash2",
      requestTimeoutMs: 1_000,
    };
    const store = await JetStreamEventStore.connect(opts);
    const reader = await JetStreamEventStore.connect(opts);
    try {
      const lines: Line[] = [];
      let unavailable = 0;
      let stop = false;
      let afterRestart = 0;
      let restarted = false;
      // Subscribed through the crash: must resume by itself after the restart.
      const live = reader.subscribe();
      const liveEvents: RecordedEvent[] = [];
      const liveDone = (async () => {
        for await (const e of live) liveEvents.push(e);
      })();

      const writer = async (w: number) => {
        const accountId = String(w).padStart(16, "0");
        const stream = accountStream(accountId);
        for (let i = 0; !stop; i++) {
          const events = Array.from({ length: 1 + (i % 3) }, (_, k) =>
            newEvent(
              "UserCreated",
              1,
              accountId,
              { kind: "root", accountId },
              { userId: `${w}-${i}-${k}`, userName: "n" },
            ),
          );
          const ids = events.map((e) => e.id);
          lines.push({ kind: "intent", stream, ids });
          // Retry the same events until the store answers: de-duplication makes it safe.
          for (;;) {
            try {
              const expectedRevision = i % 2 === 0 ? await store.streamRevision(stream) : undefined;
              const r = await store.append(stream, events, { expectedRevision });
              lines.push({ kind: "ack", stream, ids, ...r });
              if (restarted) afterRestart++;
              break;
            } catch (err) {
              if (isExpectedRevisionConflict(err)) {
                lines.push({ kind: "conflict", stream, ids });
                break;
              }
              if (!(err instanceof StoreUnavailableError)) throw err;
              unavailable++;
              if (stop) break;
              await new Promise((r) => setTimeout(r, 50));
            }
          }
        }
      };
      const writers = [1, 2, 3].map(writer);

      await new Promise((r) => setTimeout(r, 400));
      await server.kill9();
      await new Promise((r) => setTimeout(r, 300));
      await server.restart();
      restarted = true;
      const deadline = Date.now() + 20_000;
      while (afterRestart < 30 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      stop = true;
      await Promise.all(writers);

      expect(unavailable).toBeGreaterThan(0); // the crash was felt
      expect(afterRestart).toBeGreaterThanOrEqual(30); // and recovered from
      const all = await collect(store.readAll());
      const { acked } = checkConsistent(all, lines);
      // Every intent was retried until acknowledged or refused: none is left in doubt.
      const conflicts = lines.filter((l) => l.kind === "conflict").length;
      expect(acked + conflicts).toBe(lines.filter((l) => l.kind === "intent").length);

      // The live subscription went through the crash without gaps or duplicates.
      const liveDeadline = Date.now() + 20_000;
      while (liveEvents.length < all.length && Date.now() < liveDeadline) {
        await new Promise((r) => setTimeout(r, 50));
      }
      await live.close();
      await liveDone;
      expect(liveEvents).toEqual(all);
    } finally {
      await reader.close();
      await store.close();
    }
  });
});
