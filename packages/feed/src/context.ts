/**
 * Request contexts for the edges' message paths. A context is built once per
 * session or connection and reused for every decision; its `acs:CurrentTime`
 * is a getter on the prototype that reads the clock (epoch ms, which the Date
 * operators accept) only when a statement asks for it (SPEC §3 keys).
 */
import type { RequestContext } from "@portcullis/policy";

const CLOCK = Object.freeze(
  Object.defineProperty({}, "acs:CurrentTime", {
    enumerable: true,
    get: () => Date.now(),
  }),
);

/** A frozen context of `props` whose `acs:CurrentTime` is always now. */
export function clockContext(props: Record<string, string | number | boolean>): RequestContext {
  return Object.freeze(
    Object.assign(Object.create(CLOCK) as Record<string, unknown>, props),
  ) as RequestContext;
}

/** `base` plus more keys, keeping the clock (a spread would drop the inherited getter). */
export function extendContext(
  base: RequestContext,
  props: Record<string, string | number | boolean>,
): RequestContext {
  return Object.assign(Object.create(base) as Record<string, unknown>, props) as RequestContext;
}

let isoMs = -1;
let isoText = "";

/** `ms` as an ISO 8601 string, formatted once per millisecond (decision records ask per message). */
function isoAt(ms: number): string {
  if (ms !== isoMs) {
    isoMs = ms;
    isoText = new Date(ms).toISOString();
  }
  return isoText;
}

/** Now as an ISO 8601 string (see {@link isoAt}). */
export function nowIso(): string {
  return isoAt(Date.now());
}

/** The record form of each (long-lived) session context, for the millisecond it was made in. */
const recorded = new WeakMap<RequestContext, { ms: number; out: RequestContext }>();

/**
 * A context as plain data for a decision record (own and inherited keys), with
 * the time of the decision as an ISO 8601 string, so the audit can re-decide it.
 * Frozen, and shared by the records of one context within one millisecond, so a
 * decision log encodes it once for all of them (at high message rates most
 * records are allows of a few sessions).
 */
export function recordContext(ctx: RequestContext): RequestContext {
  const ms = Date.now();
  const hit = recorded.get(ctx);
  if (hit !== undefined && hit.ms === ms) return hit.out;
  const out: Record<string, unknown> = {};
  for (const k in ctx) out[k] = ctx[k];
  out["acs:CurrentTime"] = isoAt(ms);
  const frozen = Object.freeze(out) as RequestContext;
  if (hit !== undefined) {
    hit.ms = ms;
    hit.out = frozen;
  } else recorded.set(ctx, { ms, out: frozen });
  return frozen;
}
