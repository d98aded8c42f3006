import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DecisionRecord } from "@portcullis/feed";
import fc from "fast-check";
import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import {
  DecisionLog,
  type DecisionWriter,
  encodeDecisionRecord,
  MemoryDecisionStore,
  parseAllowLogging,
} from "./decision-log.ts";
import { SqliteDecisionStore, WorkerSqliteDecisionWriter } from "./sqlite-decision-store.ts";

const ACCT = "1111111111111111";

function rec(
  i: number,
  decision: DecisionRecord["decision"] = "ImplicitDeny",
  time?: string,
): DecisionRecord {
  return {
    time: time ?? new Date(Date.UTC(2025, 0, 1, 0, 0, i)).toISOString(),
    edgeId: "mqtt-1",
    protocol: "mqtt",
    principal: `${ACCT}/u${i % 3}`,
    action: "mq:PUB",
    resource: `acs:mq:local:${ACCT}:topic/mqtt-local/t/${i}`,
    decision,
    decidingStatements: [],
    position: i,
    clientId: `c${i}`,
  };
}

/** A writer whose writes wait until released. */
class GatedWriter implements DecisionWriter {
  readonly batches: DecisionRecord[][] = [];
  #release: (() => void)[] = [];
  write(batch: readonly DecisionRecord[]): Promise<void> {
    this.batches.push([...batch]);
    return new Promise((r) => this.#release.push(r));
  }
  releaseAll(): void {
    for (const r of this.#release.splice(0)) r();
  }
}

describe("DecisionLog", () => {
  it("logs denials always and allows per setting (none / all / sampled)", async () => {
    for (const [allows, expected] of [
      ["none", 2],
      ["all", 4],
    ] as const) {
      const store = new MemoryDecisionStore();
      const log = new DecisionLog({ writer: store, allows });
      log.sink(rec(1));
      log.sink(rec(2, "Allow"));
      log.sink(rec(3, "ExplicitDeny"));
      log.sink(rec(4, "Allow"));
      await log.flush();
      expect(store.records.length).toBe(expected);
      expect(store.records.filter((r) => r.decision !== "Allow").map((r) => r.position)).toEqual([1, 3]);
    }
    // Sampled: a deterministic random source keeps allows whose draw is below the rate.
    const draws = [0.1, 0.9, 0.3, 0.7];
    const store = new MemoryDecisionStore();
    const log = new DecisionLog({ writer: store, allows: { sampled: 0.5 }, random: () => draws.shift()! });
    for (let i = 1; i <= 4; i++) log.sink(rec(i, "Allow"));
    await log.flush();
    expect(store.records.map((r) => r.position)).toEqual([1, 3]);
    expect(log.stats()).toMatchObject({ accepted: 2, skipped: 2, dropped: 0, written: 2 });
  });

  it("gives edges a draw per allow, and takes the drawn allows without drawing again", async () => {
    expect(new DecisionLog({ writer: new MemoryDecisionStore() }).edgeOptions().logAllows).toBe(false);
    let calls = 0;
    const draws = [0.1, 0.9, 0.3, 0.7];
    const store = new MemoryDecisionStore();
    const log = new DecisionLog({
      writer: store,
      allows: { sampled: 0.5 },
      random: () => {
        calls++;
        return draws.shift()!;
      },
    });
    const { onDecision, logAllows } = log.edgeOptions();
    if (logAllows === false) throw new Error("a sampled log must give a draw");
    // As an edge does: draw, and build and hand over only the allows drawn.
    for (let i = 1; i <= 4; i++) if (logAllows()) onDecision(rec(i, "Allow"));
    onDecision(rec(5, "ExplicitDeny"));
    await log.flush();
    expect(store.records.map((r) => r.position)).toEqual([1, 3, 5]);
    expect(calls).toBe(4);
    expect(log.stats()).toMatchObject({ accepted: 3, skipped: 2, written: 3 });
    // The draw follows the setting in force.
    log.setAllows("all");
    expect([logAllows(), logAllows()]).toEqual([true, true]);
    log.setAllows("none");
    expect(logAllows()).toBe(false);
    expect(calls).toBe(4);
  });

  it("when the buffer is full it drops and counts, and never blocks or throws", async () => {
    const writer = new GatedWriter();
    const log = new DecisionLog({ writer, capacity: 10, batchSize: 4, flushIntervalMs: 1 });
    for (let i = 0; i < 4; i++) log.sink(rec(i));
    await new Promise((r) => setTimeout(r, 20)); // the first batch is now being written (and hangs)
    expect(writer.batches.length).toBe(1);
    const t = performance.now();
    for (let i = 4; i < 100; i++) log.sink(rec(i));
    const elapsed = performance.now() - t;
    expect(log.stats()).toMatchObject({ accepted: 10, dropped: 90, buffered: 10 });
    expect(log.dropped()).toBe(90);
    expect(elapsed).toBeLessThan(1_000); // returned at once although the writer never answered
    writer.releaseAll();
    const flushed = log.flush();
    // The flush writes the 6 waiting records in 2 batches; release each as it comes.
    const timer = setInterval(() => writer.releaseAll(), 1);
    await flushed;
    clearInterval(timer);
    expect(writer.batches.flat().map((r) => r.position)).toEqual([...Array(10).keys()]);
    expect(log.stats()).toMatchObject({ written: 10, buffered: 0 });
    // After close, records are dropped (counted), still without throwing.
    await log.close();
    log.sink(rec(200));
    expect(log.dropped()).toBe(91);
  });

  it("retries a failed batch in order, and reports the failure", async () => {
    let fail = 2;
    const written: number[] = [];
    const errors: unknown[] = [];
    const writer: DecisionWriter = {
      write(batch) {
        if (fail-- > 0) throw new Error("disk full");
        for (const r of batch) written.push(r.position);
      },
    };
    const log = new DecisionLog({ writer, batchSize: 3, flushIntervalMs: 1, onError: (e) => errors.push(e) });
    for (let i = 0; i < 7; i++) log.sink(rec(i));
    await expect(log.flush()).rejects.toThrow("disk full");
    await expect(log.flush()).rejects.toThrow("disk full");
    await log.flush();
    expect(written).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(errors.length).toBe(2);
    expect(log.stats()).toMatchObject({ writeErrors: 2, written: 7, dropped: 0 });
  });

  it("writes by itself after the flush interval and exposes metrics", async () => {
    const store = new MemoryDecisionStore();
    const log = new DecisionLog({ writer: store, flushIntervalMs: 5, capacity: 2 });
    const registry = new Registry();
    log.registerMetrics(registry, { edge: "mqtt-1" });
    log.sink(rec(1));
    log.sink(rec(2));
    log.sink(rec(3)); // dropped: capacity 2
    await new Promise((r) => setTimeout(r, 50));
    expect(store.records.length).toBe(2);
    const text = await registry.metrics();
    expect(text).toContain('portcullis_decision_log_records_total{edge="mqtt-1",outcome="dropped"} 1');
    expect(text).toContain('portcullis_decision_log_records_total{edge="mqtt-1",outcome="written"} 2');
    expect(text).toContain('portcullis_decision_log_buffered{edge="mqtt-1"} 0');
    await log.close();
  });

  it("rejects bad settings with a clear message", () => {
    expect(() => new DecisionLog({ writer: new MemoryDecisionStore(), allows: { sampled: 2 } })).toThrow(
      "allow sample rate must be in (0, 1]",
    );
    expect(() => new DecisionLog({ writer: new MemoryDecisionStore(), capacity: 0 })).toThrow(
      "capacity must be positive",
    );
    expect(parseAllowLogging("none")).toBe("none");
    expect(parseAllowLogging("ALL")).toBe("all");
    expect(parseAllowLogging("1%")).toEqual({ sampled: 0.01 });
    expect(parseAllowLogging("sampled:0.25")).toEqual({ sampled: 0.25 });
    expect(() => parseAllowLogging("some")).toThrow("is not `none`, `all` or a sample rate");
  });
});

describe("SqliteDecisionStore", () => {
  it("stores batches and streams them back by time range and account, in pages", async () => {
    const store = SqliteDecisionStore.open(":memory:");
    const log = new DecisionLog({ writer: store, allows: "all", batchSize: 700, closeWriter: false });
    const t0 = Date.UTC(2025, 0, 1);
    const all: DecisionRecord[] = [];
    for (let i = 0; i < 2_500; i++) {
      const r = rec(
        i,
        i % 2 ? "Allow" : "ImplicitDeny",
        new Date(t0 + Math.floor(i / 10) * 1000).toISOString(),
      );
      if (i % 5 === 0) r.principal = "2222222222222222/u1";
      all.push(r);
      log.sink(r);
    }
    await log.flush();
    expect(store.count()).toBe(2_500);
    const read = async (o: Parameters<SqliteDecisionStore["read"]>[0]) => {
      const out: DecisionRecord[] = [];
      for await (const x of store.read(o)) out.push(x.record);
      return out;
    };
    expect((await read({})).map((r) => r.position)).toEqual(all.map((r) => r.position));
    const from = new Date(t0 + 20_000).toISOString();
    const to = new Date(t0 + 150_000).toISOString();
    const want = all.filter((r) => r.time >= from && r.time <= to && !r.principal.startsWith("2222"));
    expect(await read({ from, to, accountId: ACCT })).toEqual(want);
    expect(want.length).toBe(1048);
    await log.close();
    store.close();
  });

  it("a missing file opened read-only is a clear error", () => {
    expect(() => SqliteDecisionStore.open("/nonexistent/decisions.db", { readonly: true })).toThrow(
      "cannot open the decision log `/nonexistent/decisions.db`",
    );
  });
});

describe("encodeDecisionRecord", () => {
  it("gives the same JSON value as JSON.stringify, with shared parts reused", () => {
    const text = fc.string({ unit: "grapheme", maxLength: 20 });
    const scalar = fc.oneof(text, fc.integer(), fc.boolean());
    const statement = fc.record({
      policy: text,
      policyType: fc.constantFrom("System", "Custom", "ConsoleGrant"),
      version: text,
      statement: fc.nat(),
      effect: fc.constantFrom("Allow", "Deny"),
    });
    const record = fc.record(
      {
        time: text,
        edgeId: text,
        protocol: fc.constantFrom("mqtt", "amqp", "admin"),
        principal: text,
        action: text,
        resource: text,
        context: fc.dictionary(text, fc.oneof(scalar, fc.array(scalar, { maxLength: 3 }))),
        decision: fc.constantFrom("Allow", "ExplicitDeny", "ImplicitDeny"),
        decidingStatements: fc.array(statement, { maxLength: 3 }),
        position: fc.nat(),
        clientId: text,
      },
      {
        requiredKeys: [
          "time",
          "edgeId",
          "protocol",
          "principal",
          "action",
          "resource",
          "decision",
          "decidingStatements",
          "position",
        ],
      },
    );
    fc.assert(
      fc.property(record, (r) => {
        const rec = r as DecisionRecord;
        expect(JSON.parse(encodeDecisionRecord(rec))).toEqual(JSON.parse(JSON.stringify(rec)));
        // Again, now from the per-object cache.
        expect(JSON.parse(encodeDecisionRecord(rec))).toEqual(JSON.parse(JSON.stringify(rec)));
      }),
      { numRuns: 300 },
    );
  });
});

describe("WorkerSqliteDecisionWriter", () => {
  it("writes batches from a worker thread into the same layout the reader reads", async () => {
    const dir = mkdtempSync(join(tmpdir(), "decisions-worker-"));
    try {
      const file = join(dir, "decisions.db");
      const writer = WorkerSqliteDecisionWriter.open(file);
      const log = new DecisionLog({ writer, allows: "all", batchSize: 100 });
      const all = [...Array(1_000).keys()].map((i) => rec(i, i % 4 ? "Allow" : "ExplicitDeny"));
      for (const r of all) log.sink(r);
      await log.close(); // flushes, then closes the writer thread
      expect(log.stats()).toMatchObject({ written: 1_000, writeErrors: 0 });
      await expect(writer.write([rec(1)])).rejects.toThrow("is closed");
      const reader = SqliteDecisionStore.open(file, { readonly: true });
      const got: DecisionRecord[] = [];
      for await (const x of reader.read()) got.push(x.record);
      reader.close();
      expect(got).toEqual(all);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
