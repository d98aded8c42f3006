/** @portcullis/feed — the live projection an edge follows, credentials, and edge position reports (SPEC §6). */

export { clockContext, extendContext, nowIso, recordContext } from "./context.ts";
export type { Credential } from "./credentials.ts";
export { CredentialResolver } from "./credentials.ts";
export type { DecisionRecord, DecisionSink } from "./decision-record.ts";
export type { AppliedListener, FeedStatus, LiveProjectionOptions } from "./live-projection.ts";
export { FeedError, LiveProjection } from "./live-projection.ts";
export type { EdgeReport, NatsPositionOptions, PositionBoard, WaitResult } from "./positions.ts";
export { InProcessPositionBoard, NatsPositionBoard, publishPositions } from "./positions.ts";
