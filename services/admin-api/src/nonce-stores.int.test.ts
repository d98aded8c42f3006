/**
 * The shared nonce stores: two handles (two processes' worth: two SQLite
 * connections to one file, two NATS connections to one server) accept a nonce
 * once between them. JetStream runs on a private nats-server.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { type NatsServer, startNatsServer } from "@portcullis/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { JetStreamNonceStore, SqliteNonceStore } from "./nonce-stores.ts";

const NOW = Date.UTC(2026, 11, 1, 12);

describe("SqliteNonceStore", () => {
  const dir = mkdtempSync(join(tmpdir(), "nonces-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("accepts a nonce once across handles on one file, again only after its window", () => {
    const a = SqliteNonceStore.open(join(dir, "nonces.db"));
    const b = SqliteNonceStore.open(join(dir, "nonces.db"));
    expect(a.check("LTAIkey", "nonce-0000000001", NOW + 300_000, NOW)).toBe("ok");
    expect(b.check("LTAIkey", "nonce-0000000001", NOW + 300_000, NOW + 1)).toBe("replayed");
    expect(a.check("LTAIkey", "nonce-0000000001", NOW + 300_000, NOW + 2)).toBe("replayed");
    // The same nonce of another AccessKey is another nonce.
    expect(b.check("LTAIother", "nonce-0000000001", NOW + 300_000, NOW + 3)).toBe("ok");
    // Past its window the timestamp check refuses the request anyway; the row may be reused.
    expect(b.check("LTAIkey", "nonce-0000000001", NOW + 900_000, NOW + 300_001)).toBe("ok");
    a.close();
    b.close();
  });

  it("refuses when full rather than forget a live nonce", () => {
    const c = SqliteNonceStore.open(join(dir, "full.db"), { maxEntries: 2 });
    expect(c.check("k", "n1-aaaaaaaaaaaaaa", NOW + 10_000, NOW)).toBe("ok");
    expect(c.check("k", "n2-aaaaaaaaaaaaaa", NOW + 10_000, NOW + 1)).toBe("ok");
    expect(c.check("k", "n3-aaaaaaaaaaaaaa", NOW + 10_000, NOW + 2_000)).toBe("full");
    expect(c.check("k", "n3-aaaaaaaaaaaaaa", NOW + 30_000, NOW + 20_000)).toBe("ok");
    c.close();
  });
});

describe("JetStreamNonceStore", () => {
  let server: NatsServer;
  const conns: NatsConnection[] = [];
  beforeAll(async () => {
    server = await startNatsServer();
  });
  afterAll(async () => {
    for (const c of conns) await c.close();
    await server?.stop();
  });

  it("accepts a nonce once across connections, whoever asks first", async () => {
    const [na, nb] = [await connect({ servers: server.url }), await connect({ servers: server.url })];
    conns.push(na, nb);
    const [a, b] = await Promise.all([
      JetStreamNonceStore.open({ connection: na }),
      JetStreamNonceStore.open({ connection: nb }),
    ]);
    // Both at once: exactly one wins.
    const race = await Promise.all([
      a.check("LTAIkey", "race-000000000001"),
      b.check("LTAIkey", "race-000000000001"),
    ]);
    expect(race.sort()).toEqual(["ok", "replayed"]);
    expect(await a.check("LTAIkey", "race-000000000001")).toBe("replayed");
    expect(await b.check("LTAIother", "race-000000000001")).toBe("ok");
    expect(await b.check("LTAIkey", "race-000000000002")).toBe("ok");
  });

  it("forgets nonces after its window (the stream's max_age)", async () => {
    const nc = await connect({ servers: server.url });
    conns.push(nc);
    const s = await JetStreamNonceStore.open({
      connection: nc,
      streamName: "SHORT",
      subjectPrefix: "short",
      windowMs: 1_000,
    });
    expect(await s.check("LTAIkey", "short-00000000001")).toBe("ok");
    expect(await s.check("LTAIkey", "short-00000000001")).toBe("replayed");
    await new Promise((r) => setTimeout(r, 1_500));
    expect(await s.check("LTAIkey", "short-00000000001")).toBe("ok");
  });
});
