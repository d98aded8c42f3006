/**
 * Every event-store adapter, with how to make a test fixture of it. The contract
 * suite runs for each entry (contract.int.test.ts), and a test fails when a file
 * under src/adapters/ has no entry here — wiring an adapter in is mandatory.
 *
 * Adding an adapter: write its fixture factory (anywhere but src/adapters/) and
 * add ONE line to `ADAPTERS`, e.g.
 *   `{ name: "kurrentdb", requires: "KURRENTDB_URL", create: kurrentDbFixture },`
 */

import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startNatsServer } from "@portcullis/testkit";
import { JetStreamEventStore } from "./adapters/jetstream.ts";
import { KurrentDbEventStore } from "./adapters/kurrentdb.ts";
import { MemoryEventStore } from "./adapters/memory.ts";
import { SqliteEventStore } from "./adapters/sqlite.ts";
import type { EventStoreFixture } from "./contract.ts";

/** One adapter as the contract suite sees it. */
export interface AdapterRegistration {
  /** Adapter name: the base name of its file under src/adapters/ and its store's `adapter`. */
  readonly name: string;
  /** An environment variable the fixture needs; when unset, the suite is skipped and says so. */
  readonly requires?: string;
  /** A fresh, empty store of this adapter (one per test). */
  create(): Promise<EventStoreFixture>;
}

/** A memory store; nothing outlives it, so no `reopen`. */
export async function memoryFixture(): Promise<EventStoreFixture> {
  const store = new MemoryEventStore();
  return { store, cleanup: () => store.close() };
}

/** A SQLite store in a fresh temp directory; `reopen` opens the same file again; cleanup removes it. */
export async function sqliteFixture(): Promise<EventStoreFixture> {
  const dir = await mkdtemp(join(tmpdir(), "portcullis-sqlite-"));
  const file = join(dir, "events.db");
  const store = SqliteEventStore.open(file);
  return {
    store,
    reopen: async () => SqliteEventStore.open(file),
    cleanup: async () => {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A JetStream store on a private nats-server (testkit); `reopen` connects again; cleanup stops the server. */
export async function jetstreamFixture(): Promise<EventStoreFixture> {
  const server = await startNatsServer();
  const opts = { servers: server.url, streamName: "CONTRACT", subjectPrefix: "contract" };
  try {
    const store = await JetStreamEventStore.connect(opts);
    return {
      store,
      reopen: async () => JetStreamEventStore.connect(opts),
      cleanup: async () => {
        await store.close();
        await server.stop();
      },
    };
  } catch (err) {
    await server.stop();
    throw err;
  }
}

/** A KurrentDB store on KURRENTDB_URL under a fresh stream prefix (its data is left on the server). */
export async function kurrentDbFixture(): Promise<EventStoreFixture> {
  const opts = { connectionString: process.env.KURRENTDB_URL ?? "", streamPrefix: `pc-${randomUUID()}-` };
  const store = await KurrentDbEventStore.connect(opts);
  return { store, reopen: async () => KurrentDbEventStore.connect(opts), cleanup: () => store.close() };
}

/** Every adapter; one line each (see the file comment). */
export const ADAPTERS: readonly AdapterRegistration[] = [
  { name: "memory", create: memoryFixture },
  { name: "sqlite", create: sqliteFixture },
  { name: "jetstream", create: jetstreamFixture },
  { name: "kurrentdb", requires: "KURRENTDB_URL", create: kurrentDbFixture },
];
