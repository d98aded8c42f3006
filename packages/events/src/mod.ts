/** @portcullis/events — the event catalog of SPEC §5. */

export type { EventData, EventType } from "./catalog.ts";
export { CURRENT_SCHEMA_VERSION, EVENT_SCHEMAS, EVENT_TYPES, isEventType } from "./catalog.ts";
export type { Actor, EventEnvelope, RecordedEvent } from "./envelope.ts";
export { accountStream, newEvent } from "./envelope.ts";
export type { SealedSecret } from "./secrets.ts";
export { accessKeyAad, parseMasterKey, SecretBox, SecretError, safeEqual } from "./secrets.ts";
export { upcast } from "./upcast.ts";
export type { DomainEvent } from "./validate.ts";
export { EventValidationError, validateEvent } from "./validate.ts";
