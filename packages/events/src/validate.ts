/**
 * Validation at the boundary: every event written or read is checked against
 * its schema (after upcasting), so nothing malformed enters a store or a
 * projection. Errors say which event, which field and why.
 */
import { z } from "zod";
import {
  CURRENT_SCHEMA_VERSION,
  EVENT_SCHEMAS,
  type EventData,
  type EventType,
  isEventType,
} from "./catalog.ts";
import type { EventEnvelope } from "./envelope.ts";
import { upcast } from "./upcast.ts";

/** A malformed event; `issues` carry field paths such as `data.target.userId`. */
export class EventValidationError extends Error {
  override name = "EventValidationError";
  readonly code = "EVENT_INVALID";
  constructor(
    readonly eventType: string,
    readonly issues: readonly { path: string; message: string }[],
  ) {
    super(`invalid ${eventType} event: ${issues.map((i) => `${i.path}: ${i.message}`).join("; ")}`);
  }
}

/** A validated event of the catalog at its current schema version. */
export type DomainEvent = { [T in EventType]: EventEnvelope<T, EventData<T>> }[EventType];

const actor = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("root"), accountId: z.string(), accessKeyId: z.string().optional() }),
  z.object({
    kind: z.literal("user"),
    accountId: z.string(),
    userId: z.string(),
    userName: z.string(),
    accessKeyId: z.string().optional(),
  }),
  z.object({ kind: z.literal("system"), name: z.string() }),
]);

const envelope = z.object({
  id: z.string().min(1).max(64),
  type: z.string(),
  schemaVersion: z.number().int().positive(),
  accountId: z.string().regex(/^\d{16}$/, "account id must be 16 digits"),
  occurredAt: z.iso.datetime({ offset: true }),
  actor,
  reason: z.string().max(1024).optional(),
  data: z.unknown(),
});

const pathOf = (p: readonly PropertyKey[]) => p.map(String).join(".") || "$";

/**
 * Validate an envelope (upcasting older schema versions) and return it at the
 * current schema version. Throws EventValidationError with every problem.
 */
export function validateEvent(e: unknown): DomainEvent {
  const env = envelope.safeParse(e);
  const type = (e as { type?: unknown } | null)?.type;
  const typeName = typeof type === "string" ? type : "unknown";
  if (!env.success)
    throw new EventValidationError(
      typeName,
      env.error.issues.map((i) => ({ path: pathOf(i.path), message: i.message })),
    );
  if (!isEventType(env.data.type)) {
    throw new EventValidationError(typeName, [
      { path: "type", message: `unknown event type \`${env.data.type}\`` },
    ]);
  }
  let data: unknown;
  try {
    data = upcast(env.data.type, env.data.schemaVersion, env.data.data);
  } catch (err) {
    throw new EventValidationError(typeName, [{ path: "schemaVersion", message: (err as Error).message }]);
  }
  const parsed = EVENT_SCHEMAS[env.data.type].safeParse(data);
  if (!parsed.success) {
    throw new EventValidationError(
      typeName,
      parsed.error.issues.map((i) => ({
        path: `data.${pathOf(i.path)}`.replace(/\.\$$/, ""),
        message: i.message,
      })),
    );
  }
  // zod's output is a new object: bring it to the current version in place (a copy per event
  // is measurable in a replay of a million).
  const out = env.data as Record<string, unknown>;
  out.schemaVersion = CURRENT_SCHEMA_VERSION[env.data.type];
  out.data = parsed.data;
  return out as unknown as DomainEvent;
}
