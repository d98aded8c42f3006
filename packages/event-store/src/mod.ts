/** @portcullis/event-store — the event store port and its adapters (SPEC §6). */

export { EventIdConflictError } from "./adapter-kit.ts";
export type { JetStreamEventStoreOptions } from "./adapters/jetstream.ts";
export { JetStreamEventStore } from "./adapters/jetstream.ts";
export type { KurrentDbEventStoreOptions, KurrentNatsRelayOptions } from "./adapters/kurrentdb.ts";
export { KurrentDbEventStore, KurrentNatsRelay } from "./adapters/kurrentdb.ts";
export { MemoryEventStore } from "./adapters/memory.ts";
export type { SqliteEventStoreOptions } from "./adapters/sqlite.ts";
export { SqliteEventStore } from "./adapters/sqlite.ts";
export {
  EventStoreError,
  ExpectedRevisionConflictError,
  InvalidEventError,
  isExpectedRevisionConflict,
  StoreUnavailableError,
} from "./errors.ts";
export type { ExpectedRevision } from "./expected-revision.ts";
export { ANY, NO_STREAM, revisionMatches, STREAM_EXISTS } from "./expected-revision.ts";
export type {
  AppendOptions,
  AppendResult,
  EventStore,
  ReadAllOptions,
  SubscribeOptions,
  Subscription,
} from "./port.ts";
