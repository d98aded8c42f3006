/**
 * The three custom policies of seed 001, verbatim (only `$vhost` replaced),
 * the two AMQP system policies, an explicit Deny over an Allow, and
 * cross-account resources — through the edge with amqplib.
 */
import type * as amqplib from "amqplib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AmqpEdge, amqpPassword, amqpUsername } from "../src/mod.ts";
import { RawClient } from "./raw-client.ts";
import { ACCT, connect, createVhost, direct, edgeFor, OTHER_ACCT, until, World } from "./world.ts";

// Seed 001, 自定义权限策略示例 — copied character for character (example 1 misspells amqp:CreatExchange).
const SEED_PUBLISH = `{
    "Version": "1",
    "Statement": [
        {
            "Action": [
                "amqp:GetVhost"
            ],
            "Resource": "acs:amqp:*:*:/vhosts/$vhost",
            "Effect": "Allow"
        },
        {
            "Action": [
                "amqp:CreatExchange",
                "amqp:GetExchange",
                "amqp:CreateQueue",
                "amqp:GetQueue",
                "amqp:BasicRecover",
                "amqp:BasicPublish",
                "amqp:BasicAck",
                "amqp:BasicNack"
            ],
            "Resource": "acs:amqp:*:*:/vhosts/$vhost/*",
            "Effect": "Allow"
        }
    ]
}`;
const SEED_SUBSCRIBE = `{
    "Version": "1",
    "Statement": [
        {
            "Action": [
                "amqp:GetVhost"
            ],
            "Resource": "acs:amqp:*:*:/vhosts/$vhost",
            "Effect": "Allow"
        },
        {
            "Action": [
                "amqp:CreateExchange",
                "amqp:GetExchange",
                "amqp:GetQueue",
                "amqp:CreateQueue",
                "amqp:BasicRecover",
                "amqp:BasicCancel",
                "amqp:BasicConsume",
                "amqp:BasicAck",
                "amqp:BasicNack",
                "amqp:BasicReject",
                "amqp:QueuePurge",
                "amqp:BasicGet"
            ],
            "Resource": "acs:amqp:*:*:/vhosts/$vhost/*",
            "Effect": "Allow"
        }
    ]
}`;
const SEED_PUBSUB = `{
    "Version": "1",
    "Statement": [
        {
            "Action": [
                "amqp:GetVhost"
            ],
            "Resource": "acs:amqp:*:*:/vhosts/$vhost",
            "Effect": "Allow"
        },
        {
            "Action": [
                "amqp:ListExchange",
                "amqp:CreateExchange",
                "amqp:DeleteExchange",
                "amqp:GetExchange",
                "amqp:ListQueue",
                "amqp:DeleteQueue",
                "amqp:GetQueue",
                "amqp:CreateQueue",
                "amqp:BasicRecover",
                "amqp:BasicCancel",
                "amqp:BasicPublish",
                "amqp:BasicConsume",
                "amqp:BasicAck",
                "amqp:BasicNack",
                "amqp:BasicReject",
                "amqp:QueuePurge",
                "amqp:BasicGet"
            ],
            "Resource": "acs:amqp:*:*:/vhosts/$vhost/*",
            "Effect": "Allow"
        }
    ]
}`;

let world: World;
let edge: AmqpEdge;
let V: string;
let removeVhost: () => Promise<void>;
let admin: amqplib.ChannelModel;
const conns: amqplib.ChannelModel[] = [];
const arn = (rel = "") => `acs:amqp:local:${ACCT}:/vhosts/${V}${rel}`;

const seed = (text: string) => JSON.parse(text.replaceAll("$vhost", V));
let n = 0;
async function userWith(opts: { doc?: unknown; system?: string[]; account?: string }): Promise<string> {
  const name = `p${++n}`;
  const account = opts.account ?? ACCT;
  await world.user(name, account);
  if (opts.doc) await world.grant(name, `pol-${name}`, opts.doc, account);
  for (const s of opts.system ?? []) await world.attach(name, s, "System", account);
  return world.key(name, account);
}

async function channel(key: string): Promise<{ conn: amqplib.ChannelModel; ch: amqplib.Channel }> {
  const conn = await connect(world, edge, key, V);
  conns.push(conn);
  conn.on("error", () => {});
  const ch = await conn.createChannel();
  ch.on("error", () => {});
  return { conn, ch };
}

/** Run `op` on a fresh channel; resolves "ok" or the refused action (parsed from the 403 text). */
async function attempt(key: string, op: (ch: amqplib.Channel) => Promise<unknown>): Promise<string> {
  const { ch } = await channel(key);
  try {
    await op(ch);
    return "ok";
  } catch (e) {
    const m = /403 \(ACCESS-REFUSED\).*perform `([^`]+)`/.exec((e as Error).message);
    return m ? `refused ${m[1]}` : `error ${(e as Error).message}`;
  }
}

/** Publish through the edge and wait for the broker's confirm; "ok" or the refused action. */
async function publish(key: string, exchange: string, rk: string): Promise<string> {
  return attempt(key, async () => {
    const { conn } = await channel(key);
    const c = await conn.createConfirmChannel();
    c.on("error", () => {});
    const closed = new Promise<Error>((r) => c.on("error", r));
    c.publish(exchange, rk, Buffer.from("x"));
    const r = await Promise.race([c.waitForConfirms().then(() => undefined), closed]);
    if (r) throw r;
  });
}

beforeAll(async () => {
  const vh = await createVhost();
  V = vh.name;
  removeVhost = vh.remove;
  world = new World();
  await world.start();
  await world.account();
  await world.account(OTHER_ACCT);
  ({ edge } = await edgeFor(world));
  admin = await direct(V);
  const ch = await admin.createChannel();
  await ch.assertExchange("orders", "topic", { durable: false });
  await ch.assertQueue("orders-q", { durable: false });
  await ch.bindQueue("orders-q", "orders", "#");
  await ch.close();
});

afterAll(async () => {
  for (const c of conns) await c.close().catch(() => {});
  await admin?.close();
  await edge?.close();
  await world?.close();
  await removeVhost?.();
});

describe("seed 001 example 1: publish in one vhost (verbatim)", () => {
  it("publishes, declares queues, checks exchanges; the misspelt CreatExchange grants nothing", async () => {
    const key = await userWith({ doc: seed(SEED_PUBLISH) });
    expect(await publish(key, "orders", "eu.1")).toBe("ok");
    expect(await attempt(key, (ch) => ch.assertQueue("seed1-q", { durable: false }))).toBe("ok");
    expect(await attempt(key, (ch) => ch.checkExchange("orders"))).toBe("ok");
    expect(await attempt(key, (ch) => ch.recover())).toBe("ok");
    expect(await attempt(key, (ch) => ch.assertExchange("seed1-ex", "topic"))).toBe(
      "refused amqp:CreateExchange",
    );
    expect(await attempt(key, (ch) => ch.consume("orders-q", () => {}))).toBe("refused amqp:BasicConsume");
    expect(await attempt(key, (ch) => ch.get("orders-q"))).toBe("refused amqp:BasicGet");
    expect(await attempt(key, (ch) => ch.purgeQueue("orders-q"))).toBe("refused amqp:QueuePurge");
    expect(await attempt(key, (ch) => ch.deleteQueue("orders-q"))).toBe("refused amqp:DeleteQueue");
  });
});

describe("seed 001 example 2: subscribe in one vhost (verbatim)", () => {
  it("consumes, acks, rejects, gets, purges, declares; may not publish or delete", async () => {
    const key = await userWith({ doc: seed(SEED_SUBSCRIBE) });
    const pub = await userWith({ doc: seed(SEED_PUBLISH) });
    expect(await publish(pub, "orders", "a")).toBe("ok");
    expect(await publish(pub, "orders", "b")).toBe("ok");
    const { ch } = await channel(key);
    await ch.assertExchange("seed2-ex", "fanout", { durable: false });
    await ch.assertQueue("seed2-q", { durable: false });
    const got: string[] = [];
    await until(async () => (await ch.checkQueue("orders-q")).messageCount >= 2, 5_000, "published messages");
    const { consumerTag } = await ch.consume("orders-q", (m) => {
      if (!m) return;
      got.push(m.fields.routingKey);
      if (m.fields.routingKey === "a") ch.ack(m);
      else ch.reject(m, false);
    });
    await until(() => got.length >= 2, 5_000, "two deliveries");
    await ch.cancel(consumerTag);
    expect(await attempt(key, (c) => c.get("orders-q"))).toBe("ok");
    expect(await attempt(key, (c) => c.purgeQueue("orders-q"))).toBe("ok");
    expect(await publish(key, "orders", "c")).toBe("refused amqp:BasicPublish");
    expect(await attempt(key, (c) => c.deleteQueue("seed2-q"))).toBe("refused amqp:DeleteQueue");
    expect(await attempt(key, (c) => c.deleteExchange("seed2-ex"))).toBe("refused amqp:DeleteExchange");
  });
});

describe("seed 001 example 3: publish and subscribe in one vhost (verbatim)", () => {
  it("does both, deletes queues and exchanges, and is confined to its vhost", async () => {
    const key = await userWith({ doc: seed(SEED_PUBSUB) });
    const { ch } = await channel(key);
    await ch.assertExchange("seed3-ex", "direct", { durable: false });
    await ch.assertQueue("seed3-q", { durable: false });
    await ch.bindQueue("seed3-q", "seed3-ex", "k");
    ch.publish("seed3-ex", "k", Buffer.from("hello"));
    const m = await new Promise<amqplib.ConsumeMessage>((r) => {
      void ch.consume("seed3-q", (x) => x && r(x));
    });
    expect(m.content.toString()).toBe("hello");
    ch.ack(m);
    await ch.close();
    expect(await attempt(key, (c) => c.deleteQueue("seed3-q"))).toBe("ok");
    expect(await attempt(key, (c) => c.deleteExchange("seed3-ex"))).toBe("ok");
    await expect(connect(world, edge, key, `${V}-elsewhere`)).rejects.toThrow(/ConnectionClose/);
  });
});

describe("system policies", () => {
  it("AliyunAMQPFullAccess allows everything in the account", async () => {
    const key = await userWith({ system: ["AliyunAMQPFullAccess"] });
    expect(await attempt(key, (c) => c.assertExchange("sys-full", "topic", { durable: false }))).toBe("ok");
    expect(await publish(key, "sys-full", "any.key")).toBe("ok");
    expect(await attempt(key, (c) => c.deleteExchange("sys-full"))).toBe("ok");
  });

  it("AliyunAMQPReadOnlyAccess allows Get* only: passive declares, not publish or consume", async () => {
    const key = await userWith({ system: ["AliyunAMQPReadOnlyAccess"] });
    expect(await attempt(key, (c) => c.checkQueue("orders-q"))).toBe("ok");
    expect(await attempt(key, (c) => c.checkExchange("orders"))).toBe("ok");
    expect(await attempt(key, (c) => c.assertQueue("ro-q"))).toBe("refused amqp:CreateQueue");
    expect(await publish(key, "orders", "x")).toBe("refused amqp:BasicPublish");
    expect(await attempt(key, (c) => c.consume("orders-q", () => {}))).toBe("refused amqp:BasicConsume");
  });
});

describe("explicit Deny and accounts", () => {
  it("an explicit Deny wins over AliyunAMQPFullAccess and names the deciding statement", async () => {
    const key = await userWith({
      system: ["AliyunAMQPFullAccess"],
      doc: {
        Version: "1",
        Statement: [
          {
            Sid: "no-payments",
            Effect: "Deny",
            Action: "amqp:BasicPublish",
            Resource: `acs:amqp:*:*:/vhosts/${V}/exchanges/orders/messages/payments.*`,
          },
        ],
      },
    });
    expect(await publish(key, "orders", "shipping.1")).toBe("ok");
    const { ch } = await channel(key);
    const err = new Promise<Error>((r) => ch.on("error", r));
    ch.publish("orders", "payments.1", Buffer.from("x"));
    const e = await err;
    expect(e.message).toContain("explicitly denied by Statement[0] (Sid `no-payments`)");
    expect(e.message).toContain(`\`${arn("/exchanges/orders/messages/payments.1")}\``);
  });

  it("a policy naming another account's resources grants nothing", async () => {
    const key = await userWith({
      doc: {
        Version: "1",
        Statement: [
          { Effect: "Allow", Action: "amqp:*", Resource: `acs:amqp:*:${OTHER_ACCT}:/vhosts/${V}*` },
        ],
      },
    });
    await expect(connect(world, edge, key, V)).rejects.toThrow(/ConnectionClose/);
  });

  it("an edge bound to an account refuses the principals of every other account at login", async () => {
    const otherRoot = await world.key("root", OTHER_ACCT);
    const own = await userWith({ system: ["AliyunAMQPFullAccess"] });
    const bound = await edgeFor(world, { accountId: ACCT, edgeId: "amqp-bound" });
    try {
      const ok = await connect(world, bound.edge, own, V);
      await ok.close();
      const raw = await RawClient.login(bound.edge.port, {
        username: amqpUsername("amqp-local", otherRoot),
        password: amqpPassword(world.secrets.get(otherRoot)!),
        vhost: V,
      });
      const close = await raw.connectionClose();
      raw.closeOk();
      expect(close?.replyCode).toBe(403);
      expect(close?.replyText).toContain("belongs to another account");
    } finally {
      await bound.edge.close();
    }
  });
});
