import { MemoryEventStore } from "@portcullis/event-store";
import {
  accessKeyAad,
  accountStream,
  CURRENT_SCHEMA_VERSION,
  type EventEnvelope,
  type EventType,
  newEvent,
  type RecordedEvent,
  SecretBox,
} from "@portcullis/events";
import { afterEach, describe, expect, it } from "vitest";
import { CredentialResolver, InProcessPositionBoard, LiveProjection } from "./mod.ts";

const ACCT = "1234567890123456";
const actor = { kind: "root" as const, accountId: ACCT };
const ev = (type: EventType, data: unknown): EventEnvelope =>
  newEvent(type, CURRENT_SCHEMA_VERSION[type], ACCT, actor, data);
const stream = accountStream(ACCT);
const PUB_POLICY = {
  Version: "1",
  Statement: [{ Effect: "Allow", Action: "mq:PUB", Resource: `acs:mq:*:${ACCT}:topic/mqtt-local/a` }],
};
const alice = { accountId: ACCT, kind: "user" as const, userId: "u1" };
const topicA = `acs:mq:local:${ACCT}:topic/mqtt-local/a`;

const open: LiveProjection[] = [];
afterEach(async () => {
  for (const f of open.splice(0)) await f.close();
});
async function follow(store: MemoryEventStore, opts = {}): Promise<LiveProjection> {
  const f = await LiveProjection.start(store, opts);
  open.push(f);
  return f;
}

describe("LiveProjection", () => {
  it("catches up to the head before start resolves, then applies live appends in order", async () => {
    const store = new MemoryEventStore();
    await store.append(stream, [ev("AccountCreated", { accountId: ACCT, alias: "acme" })]);
    await store.append(stream, [
      ev("UserCreated", { userId: "u1", userName: "alice" }),
      ev("PolicyCreated", { policyName: "pub", versionId: "v1", document: PUB_POLICY }),
    ]);
    const feed = await follow(store);
    expect(feed.position).toBe(3);
    expect(feed.projection.authorize(alice, "mq:PUB", topicA).decision).toBe("ImplicitDeny");

    const seen: Array<{ position: number; principals: string[] }> = [];
    feed.onApplied((e: RecordedEvent, a) =>
      seen.push({ position: e.position, principals: [...a.principals] }),
    );
    const r = await store.append(stream, [
      ev("PolicyAttached", {
        policyName: "pub",
        policyType: "Custom",
        target: { kind: "user", userId: "u1" },
      }),
    ]);
    expect(await feed.waitForPosition(r.position, 2_000)).toBe(true);
    expect(seen).toEqual([{ position: 4, principals: [`${ACCT}/u1`] }]);
    expect(feed.projection.authorize(alice, "mq:PUB", topicA).decision).toBe("Allow");
  });

  it("waitForPosition times out with false for a position never reached", async () => {
    const feed = await follow(new MemoryEventStore());
    expect(await feed.waitForPosition(5, 50)).toBe(false);
  });

  it("a listener that throws does not stop the feed or the other listeners", async () => {
    const store = new MemoryEventStore();
    const errors: string[] = [];
    const feed = await follow(store, { onError: (_e: unknown, where: string) => errors.push(where) });
    const got: number[] = [];
    feed.onApplied(() => {
      throw new Error("boom");
    });
    feed.onApplied((e) => got.push(e.position));
    await store.append(stream, [ev("AccountCreated", { accountId: ACCT, alias: "acme" })]);
    const r = await store.append(stream, [ev("UserCreated", { userId: "u1", userName: "alice" })]);
    expect(await feed.waitForPosition(r.position, 2_000)).toBe(true);
    expect(got).toEqual([1, 2]);
    expect(errors).toEqual(["listener", "listener"]);
  });

  it("starts from a snapshot and applies only the events after it", async () => {
    const store = new MemoryEventStore();
    await store.append(stream, [
      ev("AccountCreated", { accountId: ACCT, alias: "acme" }),
      ev("UserCreated", { userId: "u1", userName: "alice" }),
    ]);
    const first = await follow(store);
    const snapshot = first.projection.snapshot();
    await store.append(stream, [ev("UserCreated", { userId: "u2", userName: "bob" })]);
    const applied: number[] = [];
    const second = await follow(store, { snapshot });
    second.onApplied((e) => applied.push(e.position));
    expect(second.position).toBe(3);
    expect(second.projection.userByName(ACCT, "bob")).toBeDefined();
    expect(second.projection.userByName(ACCT, "alice")).toBeDefined();
    await store.append(stream, [ev("UserDeleted", { userId: "u2" })]);
    expect(await second.waitForPosition(4, 2_000)).toBe(true);
    expect(applied).toEqual([4]);
  });

  it("is fresh while it follows, and stale and fail-closed once closed", async () => {
    const feed = await LiveProjection.start(new MemoryEventStore(), { probeIntervalMs: 20 });
    expect(feed.status()).toMatchObject({ stale: false, failClosed: false, connected: true, lag: 0 });
    await feed.close();
    expect(feed.status()).toMatchObject({ stale: true, failClosed: true });
  });
});

describe("CredentialResolver", () => {
  it("opens a key's sealed secret, follows its status, and refuses a secret sealed for another key", async () => {
    const { box } = SecretBox.generate();
    const store = new MemoryEventStore();
    await store.append(stream, [
      ev("AccountCreated", { accountId: ACCT, alias: "acme" }),
      ev("UserCreated", { userId: "u1", userName: "alice" }),
      ev("AccessKeyCreated", {
        accessKeyId: "LTAIalice",
        owner: { kind: "user", userId: "u1" },
        secret: box.seal("s3cret", accessKeyAad("LTAIalice")),
      }),
      ev("AccessKeyCreated", {
        accessKeyId: "LTAIcopied",
        owner: { kind: "user", userId: "u1" },
        // a ciphertext sealed for another key id must not open under this one
        secret: box.seal("other", accessKeyAad("LTAIalice")),
      }),
    ]);
    const feed = await follow(store);
    const creds = new CredentialResolver(feed.projection, box);
    expect(creds.resolve("LTAIalice")).toMatchObject({
      principal: alice,
      userName: "alice",
      secret: "s3cret",
      usable: true,
    });
    expect(creds.resolve("LTAIcopied")).toBeUndefined();
    expect(creds.resolve("LTAInone")).toBeUndefined();

    const r = await store.append(stream, [
      ev("AccessKeyStatusChanged", { accessKeyId: "LTAIalice", status: "Inactive" }),
    ]);
    await feed.waitForPosition(r.position, 2_000);
    expect(creds.resolve("LTAIalice")?.usable).toBe(false);
    const other = new CredentialResolver(feed.projection, SecretBox.generate().box);
    expect(other.resolve("LTAIalice")).toBeUndefined();
  });
});

describe("InProcessPositionBoard", () => {
  it("waits until every attached edge applied a position and names the ones that lag", async () => {
    const store = new MemoryEventStore();
    const a = await follow(store);
    const board = new InProcessPositionBoard();
    board.attach("mqtt-1", "mqtt", a);
    const r = await store.append(stream, [ev("AccountCreated", { accountId: ACCT, alias: "acme" })]);
    const ok = await board.waitForAll(r.position, 2_000);
    expect(ok).toMatchObject({ ok: true, position: 1, lagging: [] });
    expect(ok.edges.map((e) => [e.edgeId, e.position])).toEqual([["mqtt-1", 1]]);

    const late = await board.waitForAll(r.position + 1, 60);
    expect(late.ok).toBe(false);
    expect(late.lagging.map((e) => e.edgeId)).toEqual(["mqtt-1"]);
  });

  it("a detached edge is no longer waited for", async () => {
    const store = new MemoryEventStore();
    const a = await follow(store);
    const board = new InProcessPositionBoard();
    const detach = board.attach("amqp-1", "amqp", a);
    detach();
    expect(board.edges()).toEqual([]);
    expect((await board.waitForAll(10, 50)).ok).toBe(true);
  });
});
