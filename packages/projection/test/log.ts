/**
 * Test helpers that play the event store's part for the projection tests:
 * typed envelope builders, a recorder that assigns `stream`, `revision` and
 * `position` as a store would (SPEC §5), and an in-memory `EventSource` for
 * `replay` with the store port's `readAll` semantics (SPEC §6).
 */
import {
  type Actor,
  accountStream,
  CURRENT_SCHEMA_VERSION,
  type EventData,
  type EventEnvelope,
  type EventType,
  newEvent,
  type RecordedEvent,
  type SealedSecret,
} from "@portcullis/events";
import type { EventSource } from "../src/mod.ts";

/** The account most examples live in. */
export const ACCT = "1111111111111111";
/** A second account, for cross-account examples. */
export const OTHER = "2222222222222222";
/** An account id no event ever names. */
export const NOWHERE = "9999999999999999";
/** The time of the first example event (2025-01-01T00:00:00Z). */
export const T0 = Date.UTC(2025, 0, 1);

/** A well-formed sealed secret (never opened by the projection; shape only). */
export const FAKE_SECRET: SealedSecret = Object.freeze({
  alg: "AES-256-GCM",
  keyId: "0badc0de",
  iv: "aXZpdml2aXZpdml2",
  tag: "dGFndGFndGFndGFn",
  ciphertext: "Y2lwaGVydGV4dA==",
});

/** Options of `ev`. */
export interface EvOptions {
  /** Account of the event (default ACCT). */
  account?: string;
  /** `occurredAt` (default T0). */
  at?: Date | number;
  /** Actor (default the account's root). */
  actor?: Actor;
  /** Envelope id (default a fresh UUID). */
  id?: string;
}

/** An envelope of `type` at its current schema version, written by the account's root unless told otherwise. */
export function ev<T extends EventType>(
  type: T,
  data: EventData<T>,
  opts: EvOptions = {},
): EventEnvelope<T, EventData<T>> {
  const account = opts.account ?? ACCT;
  const at = opts.at ?? T0;
  return newEvent(
    type,
    CURRENT_SCHEMA_VERSION[type],
    account,
    opts.actor ?? { kind: "root", accountId: account },
    data,
    {
      occurredAt: at instanceof Date ? at : new Date(at),
      ...(opts.id !== undefined ? { id: opts.id } : {}),
    },
  );
}

/**
 * Records envelopes as a store would: positions 1, 2, 3… (gapless, global),
 * `stream` = the account's stream, `revision` 0, 1, 2… per stream.
 */
export class Recorder {
  readonly events: RecordedEvent[] = [];
  private readonly revisions = new Map<string, number>();

  /** The position the next recorded event gets. */
  get nextPosition(): number {
    return this.events.length + 1;
  }

  /** Record one envelope and return it as read back from a store. */
  record(e: EventEnvelope): RecordedEvent {
    const stream = accountStream(e.accountId);
    const revision = (this.revisions.get(stream) ?? -1) + 1;
    this.revisions.set(stream, revision);
    const r: RecordedEvent = { ...e, stream, revision, position: this.events.length + 1 };
    this.events.push(r);
    return r;
  }

  /** Record several envelopes in order. */
  recordAll(es: readonly EventEnvelope[]): RecordedEvent[] {
    return es.map((e) => this.record(e));
  }
}

/** Record `es` from position 1 (a fresh store holding exactly these events). */
export function recorded(es: readonly EventEnvelope[]): RecordedEvent[] {
  return new Recorder().recordAll(es);
}

/**
 * An in-memory `EventSource` over recorded events (in position order), with
 * the store port's semantics: `from`/`to` are inclusive positions, and reading
 * stops before the first event whose `occurredAt` is after `untilTime`.
 */
export class MemorySource implements EventSource {
  /** Events handed out by `readAll` so far (to check that a replay from a snapshot reads only the tail). */
  delivered = 0;
  constructor(readonly events: readonly RecordedEvent[]) {}

  async *readAll(
    opts: { from?: number; to?: number; untilTime?: Date | string } = {},
  ): AsyncIterable<RecordedEvent> {
    const from = opts.from ?? 1;
    const to = opts.to ?? Number.POSITIVE_INFINITY;
    const until = opts.untilTime === undefined ? undefined : new Date(opts.untilTime).getTime();
    for (const e of this.events) {
      if (e.position < from) continue;
      if (e.position > to) return;
      if (until !== undefined && new Date(e.occurredAt).getTime() > until) return;
      this.delivered++;
      yield e;
    }
  }
}
