/** @portcullis/projection — the in-memory projection of the event log (SPEC §2, §6). */

export type { Affected, EvolveOptions } from "./evolve.ts";
export { evolve, noneAffected, usersWithPolicy } from "./evolve.ts";
export type { ProjectionOptions, ResolvedKey } from "./projection.ts";
export { type ApplyOptions, Projection } from "./projection.ts";
export type { EventSource, ReplayTarget } from "./replay.ts";
export { replay } from "./replay.ts";
export type { Snapshot } from "./snapshot.ts";
export { restoreState, SNAPSHOT_FORMAT, snapshotState, USER_FIELDS } from "./snapshot.ts";
export type {
  AccessKey,
  Account,
  CustomPolicy,
  Group,
  GroupIdEntry,
  PolicyVersion,
  PrincipalRef,
  State,
  User,
} from "./state.ts";
export { initialState, principalKey } from "./state.ts";
