/**
 * SQLite adapter on a real file: the layout and pragmas it promises, appends by
 * another connection seen through polling, lock waits, layout versions, and old
 * rows upcast on read.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { newEvent, type RecordedEvent } from "@portcullis/events";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { SqliteEventStore } from "./adapters/sqlite.ts";
import { EventStoreError, StoreUnavailableError } from "./errors.ts";

const acct = "1234567890123456";
const root = { kind: "root", accountId: acct } as const;
const user = (n: number | string) =>
  newEvent("UserCreated", 1, acct, root, { userId: `u-${n}`, userName: `n-${n}` });

describe("sqlite adapter on a file", () => {
  let dir: string;
  let file: string;
  const toClose: { close(): unknown }[] = [];

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "portcullis-sqlite-int-"));
    file = join(dir, "events.db");
  });

  afterEach(async () => {
    for (const x of toClose.splice(0).reverse()) await x.close();
    await rm(dir, { recursive: true, force: true });
  });

  const open = (opts?: Parameters<typeof SqliteEventStore.open>[1]) => {
    const s = SqliteEventStore.open(file, opts);
    toClose.push(s);
    return s;
  };
  const raw = (readonly = false) => {
    const db = new Database(file, { readonly });
    toClose.push(db);
    return db;
  };

  it("uses WAL and the documented table (open() itself checks synchronous=FULL)", async () => {
    const store = open();
    await store.append("account-x", [user(1)]);
    const db = raw();
    expect(db.pragma("journal_mode", { simple: true })).toBe("wal");
    expect(db.pragma("user_version", { simple: true })).toBe(1);
    const columns = (db.pragma("table_info(events)") as { name: string }[]).map((c) => c.name);
    expect(columns).toEqual([
      "position",
      "stream",
      "revision",
      "id",
      "type",
      "schema_version",
      "account_id",
      "occurred_at",
      "payload",
    ]);
    const row = db.prepare("SELECT * FROM events").get() as Record<string, unknown>;
    expect(row).toMatchObject({ position: 1, stream: "account-x", revision: 0, type: "UserCreated" });
    expect(JSON.parse(row.payload as string)).toEqual({
      actor: root,
      data: { userId: "u-1", userName: "n-1" },
    });
  });

  it("a subscription sees appends made through another connection, by polling", async () => {
    const reader = open({ pollIntervalMs: 10 });
    const writer = open();
    const sub = reader.subscribe();
    toClose.push(sub);
    const iter = sub[Symbol.asyncIterator]();
    const got: RecordedEvent[] = [];
    const pending = (async () => {
      while (got.length < 5) {
        const r = await iter.next();
        if (r.done) break;
        got.push(r.value);
      }
    })();
    for (let i = 0; i < 5; i++) {
      await writer.append("account-x", [user(i)]);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await pending;
    expect(got.map((e) => e.position)).toEqual([1, 2, 3, 4, 5]);
  });

  it("an append waiting for another connection's write lock fails as StoreUnavailableError", async () => {
    const store = open({ busyTimeoutMs: 50 });
    const db = raw();
    db.exec("BEGIN IMMEDIATE");
    const err = await store.append("account-x", [user(1)]).then(
      () => undefined,
      (e: unknown) => e,
    );
    db.exec("ROLLBACK");
    expect(err).toBeInstanceOf(StoreUnavailableError);
    expect(String((err as Error).message)).toMatch(/SQLITE_BUSY/);
    expect(await store.append("account-x", [user(1)])).toEqual({
      firstPosition: 1,
      position: 1,
      revision: 0,
    });
  });

  it("refuses a file of a newer layout", () => {
    const db = new Database(file);
    db.pragma("user_version = 2");
    db.close();
    expect(() => SqliteEventStore.open(file)).toThrow(/layout version 2, newer than this build knows/);
    expect(() => SqliteEventStore.open(file)).toThrow(EventStoreError);
  });

  it("reads rows written at an older schema version upcast, and fails loudly on a corrupt row", async () => {
    const store = open();
    await store.append("account-x", [user(1)]);
    const db = raw();
    const insert = db.prepare(
      `INSERT INTO events (position, stream, revision, id, type, schema_version, account_id, occurred_at, payload)
       VALUES (?, 'account-x', ?, ?, ?, ?, ?, '2020-01-01T00:00:00.000Z', ?)`,
    );
    insert.run(
      2,
      1,
      "old-1",
      "ConsoleGrantAdded",
      1,
      acct,
      JSON.stringify({ actor: root, data: { userId: "u", instanceId: "i", topic: "t", perm: "PUB" } }),
    );
    const read = [];
    for await (const e of store.readStream("account-x")) read.push(e);
    expect(read[1]).toMatchObject({ id: "old-1", schemaVersion: 2, data: { perms: ["PUB"] }, revision: 1 });

    insert.run(3, 2, "bad-1", "UserCreated", 1, acct, JSON.stringify({ actor: root, data: {} }));
    const all = store.readAll({ from: 3 })[Symbol.asyncIterator]();
    await expect(all.next()).rejects.toThrow(/event at position 3 does not validate/);
    // Payloads that are not a JSON object: a clear error naming the position, never a TypeError.
    for (const [pos, payload, why] of [
      [4, "null", /position 4 is not a JSON object/],
      [5, "[1,2]", /position 5 is not a JSON object/],
      [6, "{oops", /position 6 is not JSON/],
    ] as const) {
      insert.run(pos, pos - 1, `bad-${pos}`, "UserCreated", 1, acct, payload);
      const it = store.readAll({ from: pos })[Symbol.asyncIterator]();
      await expect(it.next()).rejects.toThrow(why);
      await expect(store.readAll({ from: pos })[Symbol.asyncIterator]().next()).rejects.toThrow(
        EventStoreError,
      );
    }
  });

  it("works on :memory: too", async () => {
    const store = SqliteEventStore.open(":memory:");
    toClose.push(store);
    expect(await store.append("s", [user(1), user(2)])).toEqual({
      firstPosition: 1,
      position: 2,
      revision: 1,
    });
    expect(store.path).toBe(":memory:");
  });
});
