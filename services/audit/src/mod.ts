/**
 * @portcullis/audit — the decision log and time-travel queries over the
 * event log (SPEC §8): `state`, `explain`, `whoCan`, `diff`, `history`,
 * `verify`, and the HTTP routes that serve them (`auditRoutes`).
 */

export type {
  AllowedPrincipal,
  At,
  AtSpec,
  AuditorOptions,
  DiffResult,
  EventView,
  ExplainResult,
  HistoryResult,
  Mismatch,
  PermissionChange,
  Point,
  PrincipalDiff,
  PrincipalView,
  VerifyResult,
  WhoCanResult,
} from "./auditor.ts";
export {
  Auditor,
  AuditQueryError,
  eventView,
  parseAt,
  principalOfKey,
  resolvePrincipal,
} from "./auditor.ts";
export type { AuditDataDir, OpenAuditDataDirOptions } from "./data-dir.ts";
export { DATA_DIR_FILES, DEFAULT_SNAPSHOT_EVERY, openAuditDataDir } from "./data-dir.ts";
export type {
  AllowLogging,
  DecisionLogOptions,
  DecisionLogStats,
  DecisionReader,
  DecisionReadOptions,
  DecisionWriter,
  LoggedDecision,
} from "./decision-log.ts";
export { DecisionLog, encodeDecisionRecord, MemoryDecisionStore, parseAllowLogging } from "./decision-log.ts";
export type { AuditAction, AuditAuthorize, AuditCaller, AuditRoutesOptions } from "./http.ts";
export { AUDIT_ACTIONS, auditResourceArn, auditRoutes, timeOfAt } from "./http.ts";
export type { JetStreamDecisionStoreOptions } from "./jetstream-decision-store.ts";
export { JetStreamDecisionStore, JetStreamDecisionStoreError } from "./jetstream-decision-store.ts";
export type { Probe } from "./probes.ts";
export { namedProbes } from "./probes.ts";
export type { LogSource, SnapshotMeta, SnapshotStore, UpdateSnapshotsOptions } from "./snapshots.ts";
export { MemorySnapshotStore, Snapshots, SqliteSnapshotStore } from "./snapshots.ts";
export type { SqliteDecisionStoreOptions } from "./sqlite-decision-store.ts";
export {
  DecisionStoreError,
  SqliteDecisionStore,
  WorkerSqliteDecisionWriter,
} from "./sqlite-decision-store.ts";
export type {
  AccessKeyView,
  AccountView,
  AttachmentView,
  ConsoleGrantView,
  GroupView,
  PolicyRefView,
  PolicyView,
  StateView,
  UserView,
} from "./state-view.ts";
export { stateView } from "./state-view.ts";
