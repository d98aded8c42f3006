/**
 * One distributed MQTT edge process for mqtt-distributed.test.ts: follows a
 * JetStream event store (catching up before it listens), serves MQTT on a free
 * port and reports its applied position over NATS (SPEC §6). Prints one JSON
 * line `{"ready":true,"port":…,"position":…}` on stdout once it accepts
 * connections; logs (pino JSON) go to stderr. SIGTERM closes it.
 *
 * Environment: NATS_URL, MASTER_KEY (64 hex), EDGE_ID.
 */
import { connect } from "@nats-io/transport-node";
import { JetStreamEventStore } from "@portcullis/event-store";
import { parseMasterKey, SecretBox } from "@portcullis/events";
import { CredentialResolver, LiveProjection, publishPositions } from "@portcullis/feed";
import { startMqttEdge } from "@portcullis/mqtt-edge";
import pino from "pino";

const { NATS_URL, MASTER_KEY, EDGE_ID } = process.env;
if (!NATS_URL || !MASTER_KEY || !EDGE_ID) {
  process.stderr.write("mqtt-edge-child: NATS_URL, MASTER_KEY and EDGE_ID are required\n");
  process.exit(2);
}
const logger = pino({ level: "info", base: { edgeId: EDGE_ID } }, pino.destination(2));
const nc = await connect({ servers: NATS_URL, maxReconnectAttempts: -1, reconnectTimeWait: 250 });
const store = await JetStreamEventStore.connect({ connection: nc });
const feed = await LiveProjection.start(store, { probeIntervalMs: 250 });
const credentials = new CredentialResolver(feed.projection, new SecretBox(parseMasterKey(MASTER_KEY)));
const edge = await startMqttEdge({ feed, credentials, port: 0, edgeId: EDGE_ID, logger });
const stopPositions = publishPositions(nc, feed, { edgeId: EDGE_ID, kind: "mqtt" }, { heartbeatMs: 250 });
process.stdout.write(`${JSON.stringify({ ready: true, port: edge.port, position: feed.position })}\n`);

process.once("SIGTERM", async () => {
  stopPositions();
  await edge.close();
  await feed.close();
  await store.close();
  await nc.drain();
  process.exit(0);
});
