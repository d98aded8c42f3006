/**
 * Upcasting: events are immutable, so an event written with an older schema
 * version is converted to the current one when read. Each upcaster lifts data
 * from version n to n+1; `upcast` chains them.
 */
import { CURRENT_SCHEMA_VERSION, type EventType } from "./catalog.ts";

type Upcaster = (data: Record<string, unknown>) => Record<string, unknown>;

/** v1 console grants had one `perm` of `PUB`, `SUB` or `PUB+SUB`; v2 has a `perms` list. */
const grantV1toV2: Upcaster = ({ perm, ...rest }) => ({
  ...rest,
  perms: perm === "PUB+SUB" ? ["PUB", "SUB"] : [perm],
});

/** Upcasters per type, indexed by the version they read (1 → lifts v1 to v2). */
const UPCASTERS: Partial<Record<EventType, Record<number, Upcaster>>> = {
  ConsoleGrantAdded: { 1: grantV1toV2 },
  ConsoleGrantRemoved: { 1: grantV1toV2 },
};

/** Lift `data` of `type` from `fromVersion` to the current version; throws when no path exists. */
export function upcast(type: EventType, fromVersion: number, data: unknown): unknown {
  const target = CURRENT_SCHEMA_VERSION[type];
  if (fromVersion > target)
    throw new Error(`${type} schema version ${fromVersion} is newer than this build knows (${target})`);
  let d = data as Record<string, unknown>;
  for (let v = fromVersion; v < target; v++) {
    const up = UPCASTERS[type]?.[v];
    if (!up) throw new Error(`no upcaster for ${type} from schema version ${v}`);
    d = up(d);
  }
  return d;
}
