/**
 * Behaviour the memory and sqlite adapters share beyond the contract suite:
 * refusal of reused event ids, and closing the store. The sqlite store runs on
 * `:memory:` here; file-level behaviour is in sqlite.int.test.ts.
 */
import { newEvent } from "@portcullis/events";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { EventIdConflictError } from "./adapter-kit.ts";
import { MemoryEventStore } from "./adapters/memory.ts";
import { SqliteEventStore } from "./adapters/sqlite.ts";
import { EventStoreError, InvalidEventError } from "./errors.ts";
import type { EventStore } from "./port.ts";

const acct = "1234567890123456";
const root = { kind: "root", accountId: acct } as const;
const user = (n: number) => newEvent("UserCreated", 1, acct, root, { userId: `u-${n}`, userName: `n-${n}` });

const makers: [string, () => EventStore][] = [
  ["memory", () => new MemoryEventStore()],
  ["sqlite", () => SqliteEventStore.open(":memory:")],
];

for (const [name, make] of makers) {
  describe(`${name} adapter`, () => {
    let store: EventStore;
    beforeEach(() => {
      store = make();
    });
    afterEach(async () => {
      await store.close();
    });

    it("refuses a recorded id reused with other content, in another stream, or in part", async () => {
      const [a, b] = [user(1), user(2)];
      await store.append("s", [a, b]);
      const attempts = [
        () => store.append("s", [{ ...a, reason: "changed" }, b]),
        () => store.append("t", [a, b]),
        () => store.append("s", [b, user(3)]),
        () => store.append("s", [b, a]),
      ];
      for (const attempt of attempts) {
        const err = await attempt().then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(EventIdConflictError);
        expect(err).toMatchObject({ code: "EXPECTED_REVISION_CONFLICT", recorded: { stream: "s" } });
      }
      expect(await store.head()).toBe(2);
    });

    it("refuses the same id twice in one append", async () => {
      const a = user(1);
      await expect(store.append("s", [a, a])).rejects.toBeInstanceOf(InvalidEventError);
      expect(await store.head()).toBe(0);
    });

    it("close() ends its subscriptions and refuses later calls", async () => {
      await store.append("s", [user(1)]);
      const sub = store.subscribe();
      const iter = sub[Symbol.asyncIterator]();
      expect((await iter.next()).done).toBe(false);
      const waiting = iter.next();
      await store.close();
      expect((await waiting).done).toBe(true);
      await expect(store.head()).rejects.toBeInstanceOf(EventStoreError);
      await expect(store.append("s", [user(2)])).rejects.toBeInstanceOf(EventStoreError);
      expect(() => store.subscribe()).toThrow(EventStoreError);
      await store.close(); // idempotent
    });

    it("a subscription is iterated once", async () => {
      const sub = store.subscribe();
      sub[Symbol.asyncIterator]();
      const first = sub[Symbol.asyncIterator]();
      const second = sub[Symbol.asyncIterator]();
      const pending = first.next();
      await expect(second.next()).rejects.toThrow(/iterated once/);
      await sub.close();
      expect((await pending).done).toBe(true);
    });
  });
}
