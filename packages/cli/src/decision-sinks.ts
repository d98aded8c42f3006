/**
 * How the gateway's processes hand decision records on: every denial is also
 * one structured log line (SPEC §7), then the record goes to the decision log.
 */
import type { DecisionSink } from "@portcullis/feed";
import type { Logger } from "pino";

/** `sink`, logging each non-Allow record as a `denied` line first. */
export function logDenials(logger: Logger, sink: DecisionSink): DecisionSink {
  return (r) => {
    if (r.decision !== "Allow") logger.info({ decisionRecord: r }, "denied");
    sink(r);
  };
}
