/**
 * `serve --demo`: seed a demo into the root account through the admin API
 * (as root — the demo uses the same signed calls as any admin) and print
 * ready-to-paste client commands with computed signature passwords.
 *
 * Seeded (idempotent; the users' AccessKeys are kept in `D/demo-credentials.json`, 0600):
 * - parent topic `demo` and Group ID `GID_demo` (root-owned: usable by every principal) in the MQTT instance;
 * - user `demo-publisher` with policy `demo-publish`: connect + `mq:PUB` on `demo/*`;
 *   AMQP `GetVhost` on `/` and `BasicPublish` to `amq.topic` with routing keys `demo.*`;
 * - user `demo-subscriber` with policy `demo-subscribe`: connect + `mq:SUB` on `demo/*`;
 *   AMQP `GetVhost`, queue declare/bind/consume/ack on `/`'s queues, `GetExchange` on `amq.topic`.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { AdminApiError, AdminClient } from "@portcullis/admin-api/client";
import type { CliIO } from "./io.ts";
import type { RootCredentials, RunningEdge } from "./serve.ts";
import { writeSecretFile } from "./serve.ts";
import { amqpClientPassword, amqpClientUsername, mqttPassword, mqttUsername, shq } from "./signatures.ts";

/** One demo user's AccessKey. */
export interface DemoKey {
  userName: string;
  accessKeyId: string;
  accessKeySecret: string;
}

/** `D/demo-credentials.json`. */
export interface DemoCredentials {
  accountId: string;
  topic: string;
  groupId: string;
  publisher: DemoKey;
  subscriber: DemoKey;
}

const TOPIC = "demo";
const GID = "GID_demo";

function policies(acct: string, inst: string) {
  const mq = (action: string) => ({
    Effect: "Allow",
    Action: [action],
    Resource: [`acs:mq:*:${acct}:topic/${inst}/${TOPIC}`],
  });
  const connect = {
    Effect: "Allow",
    Action: ["mq:MqttInstanceAccess"],
    Resource: [`acs:mq:*:${acct}:instance/${inst}`],
  };
  const vhost = `acs:amqp:*:${acct}:/vhosts/%2F`;
  return {
    "demo-publish": {
      Version: "1",
      Statement: [
        connect,
        mq("mq:PUB"),
        { Effect: "Allow", Action: ["amqp:GetVhost"], Resource: [vhost] },
        {
          Effect: "Allow",
          Action: ["amqp:BasicPublish"],
          Resource: [`${vhost}/exchanges/amq.topic/messages/demo.*`],
        },
      ],
    },
    "demo-subscribe": {
      Version: "1",
      Statement: [
        connect,
        mq("mq:SUB"),
        { Effect: "Allow", Action: ["amqp:GetVhost"], Resource: [vhost] },
        { Effect: "Allow", Action: ["amqp:GetExchange"], Resource: [`${vhost}/exchanges/amq.topic`] },
        {
          Effect: "Allow",
          Action: [
            "amqp:CreateQueue",
            "amqp:GetQueue",
            "amqp:DeleteQueue",
            "amqp:BasicConsume",
            "amqp:BasicGet",
            "amqp:BasicAck",
            "amqp:BasicNack",
            "amqp:BasicReject",
            "amqp:BasicCancel",
            "amqp:BasicRecover",
          ],
          Resource: [`${vhost}/queues/*`],
        },
      ],
    },
  };
}

/** Run `f`, treating a 409 (already there) as done. */
async function ensure(f: () => Promise<unknown>): Promise<void> {
  try {
    await f();
  } catch (e) {
    if (!(e instanceof AdminApiError && e.status === 409)) throw e;
  }
}

async function keyFor(c: AdminClient, userName: string, known: DemoKey | undefined): Promise<DemoKey> {
  const keys = (await c.listAccessKeys(userName)).accessKeys as { accessKeyId: string; status: string }[];
  if (known && keys.some((k) => k.accessKeyId === known.accessKeyId && k.status === "Active")) return known;
  // The secret of an existing key cannot be read back: make a new one (deleting an old one if at the limit).
  if (keys.length >= 2) await c.deleteAccessKey(keys[0]!.accessKeyId);
  const k = await c.createAccessKey(userName);
  return { userName, accessKeyId: k.accessKeyId, accessKeySecret: k.accessKeySecret };
}

/** Seed the demo and print client commands. */
export async function seedDemo(o: {
  dataDir: string;
  root: RootCredentials;
  edges: RunningEdge[];
  mqttInstanceId: string;
  amqpInstanceId: string;
  io: CliIO;
}): Promise<DemoCredentials> {
  const c = new AdminClient(o.root, { mqttInstanceId: o.mqttInstanceId });
  const acct = o.root.accountId;
  const path = join(o.dataDir, "demo-credentials.json");
  const previous = existsSync(path) ? (JSON.parse(readFileSync(path, "utf8")) as DemoCredentials) : undefined;

  await ensure(() => c.createTopic(TOPIC));
  await ensure(() => c.createGroupId(GID));
  for (const [name, doc] of Object.entries(policies(acct, o.mqttInstanceId)))
    await ensure(() => c.createPolicy(name, doc, { description: "portcullis serve --demo" }));
  for (const [user, policy] of [
    ["demo-publisher", "demo-publish"],
    ["demo-subscriber", "demo-subscribe"],
  ] as const) {
    await ensure(() => c.createUser(user, { displayName: `demo ${user.slice(5)}` }));
    await ensure(() => c.attachPolicy(policy, { user }));
  }
  const creds: DemoCredentials = {
    accountId: acct,
    topic: TOPIC,
    groupId: GID,
    publisher: await keyFor(c, "demo-publisher", previous?.publisher),
    subscriber: await keyFor(c, "demo-subscriber", previous?.subscriber),
  };
  writeSecretFile(path, `${JSON.stringify(creds, null, 2)}\n`);
  printDemo(creds, o);
  return creds;
}

function printDemo(
  d: DemoCredentials,
  o: {
    dataDir: string;
    root: RootCredentials;
    edges: RunningEdge[];
    mqttInstanceId: string;
    amqpInstanceId: string;
    io: CliIO;
  },
): void {
  const out = (s = "") => o.io.out(s);
  const mqtt = o.edges.find((e) => e.kind === "mqtt");
  const amqp = o.edges.find((e) => e.kind === "amqp");
  out("");
  out(
    `demo: account ${d.accountId}; users demo-publisher, demo-subscriber; topic \`${d.topic}\`; Group ID ${d.groupId}`,
  );
  out(`demo: their AccessKeys are in ${join(o.dataDir, "demo-credentials.json")}`);
  if (mqtt) {
    const sub = `${d.groupId}@@@sub-1`;
    const pub = `${d.groupId}@@@pub-1`;
    out("");
    out("# MQTT — in one terminal, subscribe:");
    out(
      `mosquitto_sub -h ${mqtt.host} -p ${mqtt.port} -V mqttv311 -i ${shq(sub)} -u ${shq(mqttUsername(d.subscriber.accessKeyId, o.mqttInstanceId))} -P ${shq(mqttPassword(d.subscriber.accessKeySecret, sub))} -t 'demo/#' -v`,
    );
    out("# ... and in another, publish:");
    out(
      `mosquitto_pub -h ${mqtt.host} -p ${mqtt.port} -V mqttv311 -i ${shq(pub)} -u ${shq(mqttUsername(d.publisher.accessKeyId, o.mqttInstanceId))} -P ${shq(mqttPassword(d.publisher.accessKeySecret, pub))} -t demo/hello -m 'hello from portcullis'`,
    );
    out("# the publisher may not subscribe (SUBACK 0x80):");
    out(
      `mosquitto_sub -h ${mqtt.host} -p ${mqtt.port} -V mqttv311 -i ${shq(pub)} -u ${shq(mqttUsername(d.publisher.accessKeyId, o.mqttInstanceId))} -P ${shq(mqttPassword(d.publisher.accessKeySecret, pub))} -t 'demo/#' -C 1 -W 3`,
    );
  }
  if (amqp) {
    const url = (k: DemoKey) =>
      `amqp://${encodeURIComponent(amqpClientUsername(o.amqpInstanceId, k.accessKeyId))}:${encodeURIComponent(
        amqpClientPassword(k.accessKeySecret),
      )}@${amqp.host}:${amqp.port}/%2F`;
    out("");
    out(
      "# AMQP 0-9-1 (amqp-tools; passwords embed a timestamp, so regenerate them with the command below later):",
    );
    out(`amqp-consume --url ${shq(url(d.subscriber))} -e amq.topic -r 'demo.#' cat`);
    out(`amqp-publish --url ${shq(url(d.publisher))} -e amq.topic -r demo.hello -b 'hello from portcullis'`);
    out(
      `# fresh password: pnpm -s portcullis signature amqp --credentials ${shq(join(o.dataDir, "demo-credentials.json"))} --user demo-publisher`,
    );
  }
  out("");
  out("# administer (root credentials are read from ./.data/root-credentials.json by default):");
  out(`pnpm -s portcullis admin --credentials ${shq(join(o.dataDir, "root-credentials.json"))} user list`);
  out(
    `pnpm -s portcullis admin --credentials ${shq(join(o.dataDir, "root-credentials.json"))} policy detach demo-publish --user demo-publisher --wait-enforced`,
  );
  out("");
}
