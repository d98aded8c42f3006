/**
 * The event envelope (SPEC §5): `{ id, type, schemaVersion, accountId,
 * occurredAt, actor, reason?, data }`. The store adds `stream`, `revision`
 * (per stream, from 0) and `position` (global order, from 1).
 */
import { randomUUID } from "node:crypto";

/** Who caused an event. */
export type Actor =
  | { kind: "root"; accountId: string; accessKeyId?: string }
  | { kind: "user"; accountId: string; userId: string; userName: string; accessKeyId?: string }
  | { kind: "system"; name: string };

/** An event as written by a producer, before the store records it. */
export interface EventEnvelope<T extends string = string, D = unknown> {
  id: string;
  type: T;
  schemaVersion: number;
  accountId: string;
  /** ISO 8601 time the change was decided. */
  occurredAt: string;
  actor: Actor;
  reason?: string;
  data: D;
}

/** An event as read back from a store. */
export interface RecordedEvent<T extends string = string, D = unknown> extends EventEnvelope<T, D> {
  stream: string;
  /** 0-based index of the event in its stream. */
  revision: number;
  /** 1-based global position, strictly increasing, gapless per store. */
  position: number;
}

/** The stream of one account: the consistency boundary (names and limits are per account). */
export function accountStream(accountId: string): string {
  return `account-${accountId}`;
}

/** Build an envelope with a fresh id and the current time. */
export function newEvent<T extends string, D>(
  type: T,
  schemaVersion: number,
  accountId: string,
  actor: Actor,
  data: D,
  opts: { reason?: string; occurredAt?: Date; id?: string } = {},
): EventEnvelope<T, D> {
  return {
    id: opts.id ?? randomUUID(),
    type,
    schemaVersion,
    accountId,
    occurredAt: (opts.occurredAt ?? new Date()).toISOString(),
    actor,
    ...(opts.reason !== undefined ? { reason: opts.reason } : {}),
    data,
  };
}
