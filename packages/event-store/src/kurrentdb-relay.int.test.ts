/**
 * KurrentNatsRelay against a stand-in source (no KurrentDB server runs here):
 * the source yields whole appends like KurrentDbEventStore.subscribeAppends;
 * the target is a real JetStream event store on a private nats-server.
 */
import { newEvent, type RecordedEvent } from "@portcullis/events";
import { type NatsServer, startNatsServer } from "@portcullis/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { JetStreamEventStore } from "./adapters/jetstream.ts";
import { type AppendFeed, KurrentNatsRelay } from "./adapters/kurrentdb.ts";
import { EventStoreError } from "./errors.ts";

/** An in-memory source of whole appends with gapless positions, live like `$all`. */
class FakeFeed implements AppendFeed {
  readonly appends: RecordedEvent[][] = [];
  readonly #revisions = new Map<string, number>();
  #wake: (() => void) | undefined;

  /** Record an append of `n` events to `stream`. */
  append(stream: string, n: number): RecordedEvent[] {
    const head = this.appends.at(-1)?.at(-1)?.position ?? 0;
    const rev = this.#revisions.get(stream) ?? -1;
    const accountId = "0000000000000042";
    const group = Array.from({ length: n }, (_, i) => ({
      ...newEvent(
        "GroupCreated",
        1,
        accountId,
        { kind: "root", accountId },
        { groupId: `g${head + i}`, groupName: "n" },
      ),
      stream,
      revision: rev + 1 + i,
      position: head + 1 + i,
    }));
    this.#revisions.set(stream, rev + n);
    this.appends.push(group);
    this.#wake?.();
    return group;
  }

  get events(): RecordedEvent[] {
    return this.appends.flat();
  }

  subscribeAppends(opts: { from?: number }): AsyncIterable<RecordedEvent[]> & { close(): Promise<void> } {
    const from = opts.from ?? 1;
    let closed = false;
    const self = this;
    const it = (async function* () {
      let i = 0;
      while (!closed) {
        const group = self.appends[i];
        if (group === undefined) {
          await new Promise<void>((r) => {
            self.#wake = r;
          });
          continue;
        }
        i++;
        const part = group.filter((e) => e.position >= from);
        if (part.length > 0) yield part;
      }
    })();
    return {
      [Symbol.asyncIterator]: () => it,
      close: async () => {
        closed = true;
        this.#wake?.();
        await it.return(undefined);
      },
    };
  }
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

async function until(cond: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}

let server: NatsServer;
let n = 0;
async function mirror(): Promise<JetStreamEventStore> {
  n++;
  return JetStreamEventStore.connect({
    servers: server.url,
    streamName: `FEED${n}`,
    subjectPrefix: `feed${n}`,
    requestTimeoutMs: 1_000,
  });
}

beforeAll(async () => {
  server = await startNatsServer();
});
afterAll(async () => {
  await server?.stop();
});

describe("KurrentNatsRelay", () => {
  it("republishes stored then live appends whole, at the source's positions", async () => {
    const source = new FakeFeed();
    source.append("account-a", 3);
    source.append("account-b", 1);
    const target = await mirror();
    const relay = KurrentNatsRelay.start({ source, target });
    try {
      // An edge follows the NATS feed live.
      const edge = target.subscribe();
      const seen: RecordedEvent[] = [];
      const following = (async () => {
        for await (const e of edge) seen.push(e);
      })();
      await until(() => relay.relayedPosition === 4);
      source.append("account-a", 2);
      source.append("account-c", 4);
      await until(() => seen.length === 10);
      await edge.close();
      await following;
      expect(seen).toEqual(source.events);
      expect(await target.head()).toBe(10);
    } finally {
      await relay.stop();
      await target.close();
    }
  });

  it("resumes after a restart without skipping or repeating an append", async () => {
    const source = new FakeFeed();
    const target = await mirror();
    try {
      for (let i = 0; i < 5; i++) source.append(`s${i % 2}`, 1 + (i % 3));
      const first = KurrentNatsRelay.start({ source, target });
      await until(() => first.relayedPosition === source.events.length);
      await first.stop();
      for (let i = 0; i < 5; i++) source.append(`s${i % 3}`, 1 + (i % 2));
      const second = KurrentNatsRelay.start({ source, target });
      await until(() => second.relayedPosition === source.events.length);
      await second.stop();
      expect(await collect(target.readAll())).toEqual(source.events);
    } finally {
      await target.close();
    }
  });

  it("rides out a nats-server crash, retrying until the mirror has everything", async () => {
    const source = new FakeFeed();
    const target = await mirror();
    const errors: unknown[] = [];
    const relay = KurrentNatsRelay.start({
      source,
      target,
      retryDelayMs: 100,
      onError: (e) => errors.push(e),
    });
    try {
      source.append("s", 2);
      await until(() => relay.relayedPosition === 2);
      await server.kill9();
      source.append("s", 3);
      source.append("t", 1);
      await new Promise((r) => setTimeout(r, 1_500));
      await server.restart();
      await until(() => relay.relayedPosition === 6);
      expect(errors.length).toBeGreaterThan(0);
      expect(await collect(target.readAll())).toEqual(source.events);
    } finally {
      await relay.stop();
      await target.close();
    }
  });

  it("stops with an error when the mirror diverged from the source", async () => {
    const source = new FakeFeed();
    const target = await mirror();
    try {
      source.append("s", 1);
      source.append("s", 1);
      // Something else wrote to the mirror: it no longer matches the source.
      const accountId = "0000000000000042";
      await target.append("other", [
        newEvent("GroupDeleted", 1, accountId, { kind: "root", accountId }, { groupId: "x" }),
      ]);
      const relay = KurrentNatsRelay.start({ source, target });
      await expect(relay.done).rejects.toBeInstanceOf(EventStoreError);
      await expect(relay.done).rejects.toThrow(/diverged|mirror put positions/);
    } finally {
      await target.close();
    }
  });
});
