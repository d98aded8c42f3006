/**
 * Test helper (imports vitest; tests only). Given/when/then for the decider (STYLE.md): `given(events).when(command).then(events)`.
 * The given events are recorded into a real Projection and admin index, exactly as
 * the admin API sees them, so the tests exercise the same state the server decides on.
 */
import { accountStream, CURRENT_SCHEMA_VERSION, newEvent, type RecordedEvent } from "@portcullis/events";
import { type PrincipalRef, Projection } from "@portcullis/projection";
import { expect } from "vitest";
import type { Command, DecideContext, Limits, NewEvent } from "./commands.ts";
import { decide } from "./decide.ts";
import { type CommandRejected, isCommandRejected } from "./errors.ts";
import { type DecideState, evolveIndex, initialIndex } from "./state.ts";

/** The account the given/when/then helpers use by default. */
export const ACCT = "1234567890123456";

/** Record events (position and revision assigned in order) into a fresh decide state. */
export function stateOf(events: readonly NewEvent[], accountId = ACCT): DecideState {
  const projection = new Projection();
  const index = initialIndex();
  events.forEach((e, i) => {
    const env = newEvent(
      e.type,
      CURRENT_SCHEMA_VERSION[e.type],
      accountId,
      { kind: "system", name: "test" },
      e.data,
    );
    const rec: RecordedEvent = { ...env, stream: accountStream(accountId), revision: i, position: i + 1 };
    projection.apply(rec);
    evolveIndex(index, rec);
  });
  return { model: projection.state, index };
}

/** The outcome of `when`: check it with `then` or `thenRejects`. */
export interface When {
  /** Expect exactly these events (type and data). */
  then(expected: readonly NewEvent[]): void;
  /** Expect a rejection with this status and code; returns it for more checks. */
  thenRejects(status: number, code: string): CommandRejected;
  /** The emitted events (for custom assertions). */
  readonly events: NewEvent[];
}

/** Start a given/when/then case from these events. */
export function given(...events: NewEvent[]) {
  return {
    when(
      command: Command,
      opts: { caller?: PrincipalRef; limits?: Partial<Limits>; accountId?: string } = {},
    ): When {
      const state = stateOf(events);
      const ctx: DecideContext = {
        accountId: opts.accountId ?? ACCT,
        caller: opts.caller ?? { accountId: ACCT, kind: "root" },
        ...(opts.limits ? { limits: opts.limits } : {}),
      };
      let result: NewEvent[] | undefined;
      let error: unknown;
      try {
        result = decide(command, state, ctx);
      } catch (e) {
        error = e;
      }
      return {
        get events() {
          if (error) throw error;
          return result!;
        },
        // biome-ignore lint/suspicious/noThenProperty: given/when/then is STYLE.md's vocabulary; never awaited
        then(expected) {
          if (error) throw error;
          expect(result).toEqual(expected);
        },
        thenRejects(status, code) {
          if (!error)
            throw new Error(`expected a rejection ${status} ${code}, got ${JSON.stringify(result)}`);
          if (!isCommandRejected(error)) throw error;
          if (error.status !== status || error.code !== code)
            throw new Error(
              `expected ${status} ${code}, got ${error.status} ${error.code}: ${error.message}`,
            );
          return error;
        },
      };
    },
  };
}
