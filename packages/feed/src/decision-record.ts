/**
 * The compact record an edge emits for a decision (SPEC §8, decision log): the
 * audit `verify` re-decides it at `position` and must find the same answer.
 */
import type { DecidingStatement, DecisionKind, RequestContext } from "@portcullis/policy";

/** One logged decision. */
export interface DecisionRecord {
  /** ISO 8601 time of the decision. */
  time: string;
  /** The edge that decided (`mqtt-1`, `amqp-1`, `admin`). */
  edgeId: string;
  protocol: "mqtt" | "amqp" | "admin";
  /** Principal key (`<acct>` for root, `<acct>/<userId>` for a RAM user). */
  principal: string;
  action: string;
  resource: string;
  /** The request context as evaluated (no secrets). */
  context?: RequestContext;
  decision: DecisionKind;
  decidingStatements: readonly DecidingStatement[];
  /** Projection position the decision was made at. */
  position: number;
  /** Protocol client id / connection id, when there is one. */
  clientId?: string;
}

/** Where edges send decision records; must never block or throw (count drops instead). */
export type DecisionSink = (record: DecisionRecord) => void;
