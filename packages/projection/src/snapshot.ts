/**
 * Snapshots: the state at a position as plain JSON, so an edge starts from a
 * snapshot plus the events after it (SPEC §6). Maps and Sets become arrays.
 */
import type { State } from "./state.ts";

/** Snapshot format version; bump when the state's shape changes. */
export const SNAPSHOT_FORMAT = 1;

/** A serialised state. */
export interface Snapshot {
  format: number;
  position: number;
  /** The latest `occurredAt` of the events in it (State.maxOccurredAt); absent when none or unknown. */
  maxOccurredAt?: string;
  state: unknown;
}

function toJson(v: unknown): unknown {
  if (v instanceof Map) return { $map: [...v].map(([k, x]) => [k, toJson(x)]) };
  if (v instanceof Set) return { $set: [...v].map(toJson) };
  if (Array.isArray(v)) return v.map(toJson);
  if (v && typeof v === "object") {
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) o[k] = toJson(x);
    return o;
  }
  return v;
}

function fromJson(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(fromJson);
  if (v && typeof v === "object") {
    const o = v as Record<string, unknown>;
    if (Array.isArray(o.$map))
      return new Map((o.$map as [unknown, unknown][]).map(([k, x]) => [k, fromJson(x)]));
    if (Array.isArray(o.$set)) return new Set((o.$set as unknown[]).map(fromJson));
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(o)) out[k] = fromJson(x);
    return out;
  }
  return v;
}

/** Serialise a state (a deep copy: later changes to the state do not reach it). */
export function snapshotState(state: State): Snapshot {
  return {
    format: SNAPSHOT_FORMAT,
    position: state.position,
    ...(state.maxOccurredAt !== undefined ? { maxOccurredAt: state.maxOccurredAt } : {}),
    state: toJson(state),
  };
}

/** Rebuild a state from a snapshot. */
export function restoreState(s: Snapshot): State {
  if (s.format !== SNAPSHOT_FORMAT) throw new Error(`snapshot format ${s.format} is not ${SNAPSHOT_FORMAT}`);
  const state = fromJson(s.state) as State;
  if (state.position !== s.position) throw new Error("snapshot position does not match its state");
  return state;
}
