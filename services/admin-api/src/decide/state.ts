/**
 * The decider's state: the projected model (the same `State` the edges
 * authorize against) plus a small admin index the model does not keep — each
 * account stream's revision (the expectedRevision of the next append) and the
 * highest policy version number ever created (version ids are never reused,
 * so `v6` names one document in the whole history of a policy).
 *
 * INVARIANT: `evolveIndex` is applied to exactly the events the model applied,
 * in the same order, so model and index always describe the same position.
 */
import type { RecordedEvent } from "@portcullis/events";
import type { State } from "@portcullis/projection";

/** What the decider needs beyond the projected model. */
export interface AdminIndex {
  /** Stream → last revision (-1 = no such stream). */
  revisions: Map<string, number>;
  /** `<acct>\u0000<policyName>` → highest version number created since the policy was created. */
  versionHighWater: Map<string, number>;
  /** Position of the last event applied. */
  position: number;
}

/** Everything `decide` reads. */
export interface DecideState {
  model: State;
  index: AdminIndex;
}

/** The empty index. */
export function initialIndex(): AdminIndex {
  return { revisions: new Map(), versionHighWater: new Map(), position: 0 };
}

const versionNumber = (v: string) => Number.parseInt(v.slice(1), 10) || 0;

/** Key of a policy in {@link AdminIndex.versionHighWater}. */
export const policyKey = (accountId: string, policyName: string) => `${accountId}\u0000${policyName}`;

/** Apply one recorded event to the index, in place. Ignores events at or below its position. */
export function evolveIndex(index: AdminIndex, e: RecordedEvent): void {
  if (e.position <= index.position) return;
  index.position = e.position;
  index.revisions.set(e.stream, e.revision);
  const d = e.data as { policyName?: string; versionId?: string };
  switch (e.type) {
    case "PolicyCreated":
    case "PolicyVersionCreated": {
      const k = policyKey(e.accountId, d.policyName!);
      index.versionHighWater.set(
        k,
        Math.max(index.versionHighWater.get(k) ?? 0, versionNumber(d.versionId!)),
      );
      break;
    }
    case "PolicyDeleted":
      index.versionHighWater.delete(policyKey(e.accountId, d.policyName!));
      break;
  }
}
