/**
 * SPEC §4.2 (seed 001's normative table), row by row: for every AMQP method
 * an allowed case and a refused case, through the edge, with amqplib, against
 * the real RabbitMQ. A refusal must be channel.close 403 naming the action and
 * the resource, and must leave the upstream untouched (checked directly on
 * RabbitMQ as guest).
 */
import type * as amqplib from "amqplib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AmqpEdge, amqpPassword, amqpUsername } from "../src/mod.ts";
import { RawClient } from "./raw-client.ts";
import { ACCT, connect, createVhost, type Decisions, direct, edgeFor, until, World } from "./world.ts";

let world: World;
let edge: AmqpEdge;
let decisions: Decisions;
let V: string;
let removeVhost: () => Promise<void>;
let admin: amqplib.ChannelModel;

/** Policy resource in the vhost (any region, any account — as the seed writes them). */
const res = (rel = "") => `acs:amqp:*:*:/vhosts/${V}${rel}`;
/** The request ARN the edge asks about (region `local`, the principal's account). */
const arn = (rel = "") => `acs:amqp:local:${ACCT}:/vhosts/${V}${rel}`;
const stmt = (
  Action: string | string[],
  Resource: string | string[],
  Effect: "Allow" | "Deny" = "Allow",
) => ({
  Effect,
  Action: [Action].flat(),
  Resource: [Resource].flat(),
});
const getVhost = () => stmt("amqp:GetVhost", res());

let n = 0;
/** A RAM user with these statements (plus GetVhost unless `noVhost`); returns an AccessKeyId. */
async function principal(statements: object[], opts: { noVhost?: boolean; system?: string[] } = {}) {
  const name = `u${++n}`;
  await world.user(name);
  if (statements.length > 0 || !opts.noVhost) {
    await world.grant(name, `p-${name}`, {
      Version: "1",
      Statement: [...(opts.noVhost ? [] : [getVhost()]), ...statements],
    });
  }
  for (const s of opts.system ?? []) await world.attach(name, s, "System");
  return world.key(name);
}

interface Open {
  conn: amqplib.ChannelModel;
  ch: amqplib.Channel;
  /** Resolves with the error the channel is closed with. */
  chError: Promise<Error>;
}

const conns: amqplib.ChannelModel[] = [];
async function open(key: string): Promise<Open> {
  const conn = await connect(world, edge, key, V);
  conns.push(conn);
  conn.on("error", () => {});
  const ch = await conn.createChannel();
  const chError = new Promise<Error>((r) => ch.on("error", r));
  return { conn, ch, chError };
}

/** The error the channel is closed with, failing after `ms` when none comes. */
function channelError(o: Open, ms = 5_000): Promise<Error> {
  return Promise.race([
    o.chError,
    new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error(`no channel error within ${ms} ms`)), ms),
    ),
  ]);
}

/** Expect a 403 naming `action` on `resource`. */
async function refused(p: Promise<unknown>, action: string, resource: string): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: Error) => e,
  );
  expect(err, `${action} on ${resource} should be refused`).toBeInstanceOf(Error);
  expect(err!.message).toMatch(/403 \(ACCESS-REFUSED\)/);
  expect(err!.message).toContain(`\`${action}\``);
  expect(err!.message).toContain(`\`${resource}\``);
}

/** Upstream state, seen directly. */
async function queueExists(q: string): Promise<boolean> {
  const ch = await admin.createChannel();
  ch.on("error", () => {});
  try {
    await ch.checkQueue(q);
    await ch.close();
    return true;
  } catch {
    return false;
  }
}
async function exchangeExists(e: string): Promise<boolean> {
  const ch = await admin.createChannel();
  ch.on("error", () => {});
  try {
    await ch.checkExchange(e);
    await ch.close();
    return true;
  } catch {
    return false;
  }
}
async function messages(q: string): Promise<number> {
  const ch = await admin.createChannel();
  const r = await ch.checkQueue(q);
  await ch.close();
  return r.messageCount;
}
async function setup(fn: (ch: amqplib.Channel) => Promise<unknown>): Promise<void> {
  const ch = await admin.createConfirmChannel();
  await fn(ch);
  await ch.waitForConfirms();
  await ch.close();
}

beforeAll(async () => {
  const vh = await createVhost();
  V = vh.name;
  removeVhost = vh.remove;
  world = new World();
  await world.start();
  await world.account();
  ({ edge, decisions } = await edgeFor(world));
  admin = await direct(V);
});

afterAll(async () => {
  for (const c of conns) await c.close().catch(() => {});
  await admin?.close();
  await edge?.close();
  await world?.close();
  await removeVhost?.();
});

describe("connection.open → amqp:GetVhost (vhost)", () => {
  it("allows a principal with GetVhost on the vhost", async () => {
    const key = await principal([]);
    const { conn } = await open(key);
    expect(conn.connection.serverProperties.product).toBeDefined();
  });

  it("refuses with connection.close 530 naming the action and the vhost", async () => {
    const key = await principal([stmt("amqp:GetVhost", "acs:amqp:*:*:/vhosts/some-other-vhost")], {
      noVhost: true,
    });
    const raw = await RawClient.login(edge.port, {
      username: amqpUsername("amqp-local", key),
      password: amqpPassword(world.secrets.get(key)!),
      vhost: V,
    });
    const close = await raw.connectionClose();
    raw.closeOk();
    expect(close?.replyCode).toBe(530);
    expect(close?.replyText).toContain("`amqp:GetVhost`");
    expect(close?.replyText).toContain(`\`${arn()}\``);
    expect([close?.classId, close?.methodId]).toEqual([10, 40]);
    // amqplib sees the refusal too (it reports it as an unexpected close)
    await expect(connect(world, edge, key, V)).rejects.toThrow(/ConnectionClose/);
    const d = decisions.find((x) => x.action === "amqp:GetVhost" && x.resource === arn());
    expect(d?.decision).toBe("ImplicitDeny");
    expect(d?.protocol).toBe("amqp");
  });
});

describe("exchange.declare", () => {
  it("passive=false → amqp:CreateExchange (exchange): allowed", async () => {
    const key = await principal([stmt("amqp:CreateExchange", res("/exchanges/ex-created"))]);
    const { ch } = await open(key);
    await ch.assertExchange("ex-created", "topic", { durable: false });
    expect(await exchangeExists("ex-created")).toBe(true);
  });

  it("passive=false → amqp:CreateExchange: refused, and nothing is created upstream", async () => {
    const key = await principal([stmt("amqp:GetExchange", res("/exchanges/*"))]);
    const { ch } = await open(key);
    await refused(ch.assertExchange("ex-never", "topic"), "amqp:CreateExchange", arn("/exchanges/ex-never"));
    expect(await exchangeExists("ex-never")).toBe(false);
  });

  it("passive=true → amqp:GetExchange (exchange): allowed and refused", async () => {
    await setup((c) => c.assertExchange("ex-passive", "direct", { durable: false }));
    const ok = await open(await principal([stmt("amqp:GetExchange", res("/exchanges/ex-passive"))]));
    await ok.ch.checkExchange("ex-passive");
    const no = await open(await principal([stmt("amqp:CreateExchange", res("/exchanges/*"))]));
    await refused(no.ch.checkExchange("ex-passive"), "amqp:GetExchange", arn("/exchanges/ex-passive"));
  });
});

describe("exchange.declare with alternate-exchange (beyond the seed, as its DLX row)", () => {
  it("needs CreateExchange on the alternate exchange too", async () => {
    const no = await open(await principal([stmt("amqp:CreateExchange", res("/exchanges/ae-main"))]));
    await refused(
      no.ch.assertExchange("ae-main", "direct", { durable: false, alternateExchange: "ae-spill" }),
      "amqp:CreateExchange",
      arn("/exchanges/ae-spill"),
    );
    expect(await exchangeExists("ae-main")).toBe(false);
    const ok = await open(
      await principal([stmt("amqp:CreateExchange", [res("/exchanges/ae-main"), res("/exchanges/ae-spill")])]),
    );
    await ok.ch.assertExchange("ae-main", "direct", { durable: false, alternateExchange: "ae-spill" });
    expect(await exchangeExists("ae-main")).toBe(true);
  });
});

describe("exchange.delete → amqp:DeleteExchange (exchange)", () => {
  it("allowed: the exchange is deleted", async () => {
    await setup((c) => c.assertExchange("ex-del-ok", "direct", { durable: false }));
    const { ch } = await open(await principal([stmt("amqp:DeleteExchange", res("/exchanges/ex-del-ok"))]));
    await ch.deleteExchange("ex-del-ok");
    expect(await exchangeExists("ex-del-ok")).toBe(false);
  });

  it("refused: the exchange stays", async () => {
    await setup((c) => c.assertExchange("ex-del-no", "direct", { durable: false }));
    const { ch } = await open(await principal([stmt("amqp:DeleteExchange", res("/exchanges/ex-del-ok"))]));
    await refused(ch.deleteExchange("ex-del-no"), "amqp:DeleteExchange", arn("/exchanges/ex-del-no"));
    expect(await exchangeExists("ex-del-no")).toBe(true);
  });
});

describe("exchange.bind / unbind → amqp:GetExchange (source) + amqp:CreateExchange (destination)", () => {
  const bindGrant = () => [
    stmt("amqp:GetExchange", res("/exchanges/xb-src")),
    stmt("amqp:CreateExchange", res("/exchanges/xb-dst")),
  ];

  beforeAll(async () => {
    await setup(async (c) => {
      await c.assertExchange("xb-src", "fanout", { durable: false });
      await c.assertExchange("xb-dst", "fanout", { durable: false });
      await c.assertQueue("xb-q", { durable: false });
      await c.bindQueue("xb-q", "xb-dst", "");
    });
  });

  it("allowed: bind works (a message to the source reaches the destination's queue), unbind works", async () => {
    const { ch } = await open(await principal(bindGrant()));
    await ch.bindExchange("xb-dst", "xb-src", "");
    await setup(async (c) => c.publish("xb-src", "", Buffer.from("via e2e binding")));
    await until(async () => (await messages("xb-q")) === 1, 5_000, "message via the exchange binding");
    await ch.unbindExchange("xb-dst", "xb-src", "");
    await setup(async (c) => c.publish("xb-src", "", Buffer.from("after unbind")));
    expect(await messages("xb-q")).toBe(1);
  });

  it("refused without GetExchange on the source, naming the source", async () => {
    const { ch } = await open(await principal([stmt("amqp:CreateExchange", res("/exchanges/xb-dst"))]));
    await refused(ch.bindExchange("xb-dst", "xb-src", "k"), "amqp:GetExchange", arn("/exchanges/xb-src"));
  });

  it("refused without CreateExchange on the destination, naming the destination", async () => {
    const { ch } = await open(await principal([stmt("amqp:GetExchange", res("/exchanges/*"))]));
    await refused(ch.bindExchange("xb-dst", "xb-src", "k"), "amqp:CreateExchange", arn("/exchanges/xb-dst"));
  });

  it("unbind refused likewise", async () => {
    const { ch } = await open(await principal([stmt("amqp:GetExchange", res("/exchanges/*"))]));
    await refused(
      ch.unbindExchange("xb-dst", "xb-src", "k"),
      "amqp:CreateExchange",
      arn("/exchanges/xb-dst"),
    );
  });
});

describe("queue.declare", () => {
  it("passive=false → amqp:CreateQueue (queue): allowed", async () => {
    const { ch } = await open(await principal([stmt("amqp:CreateQueue", res("/queues/q-created"))]));
    await ch.assertQueue("q-created", { durable: false });
    expect(await queueExists("q-created")).toBe(true);
  });

  it("passive=false: refused, nothing created upstream", async () => {
    const { ch } = await open(await principal([stmt("amqp:CreateQueue", res("/queues/q-created"))]));
    await refused(ch.assertQueue("q-never", { durable: false }), "amqp:CreateQueue", arn("/queues/q-never"));
    expect(await queueExists("q-never")).toBe(false);
  });

  it("a server-named queue is `queues/*`", async () => {
    const ok = await open(await principal([stmt("amqp:CreateQueue", res("/queues/*"))]));
    expect((await ok.ch.assertQueue("", { exclusive: true })).queue).toMatch(/^amq\.gen-/);
    const no = await open(await principal([stmt("amqp:CreateQueue", res("/queues/q-created"))]));
    await refused(no.ch.assertQueue("", { exclusive: true }), "amqp:CreateQueue", arn("/queues/*"));
  });

  it("passive=true → amqp:GetQueue (queue): allowed and refused", async () => {
    await setup((c) => c.assertQueue("q-passive", { durable: false }));
    const ok = await open(await principal([stmt("amqp:GetQueue", res("/queues/q-passive"))]));
    expect((await ok.ch.checkQueue("q-passive")).queue).toBe("q-passive");
    const no = await open(await principal([stmt("amqp:CreateQueue", res("/queues/*"))]));
    await refused(no.ch.checkQueue("q-passive"), "amqp:GetQueue", arn("/queues/q-passive"));
  });

  it("with x-dead-letter-exchange → CreateQueue + GetQueue (queue) + CreateExchange (DLX): allowed", async () => {
    const key = await principal([
      stmt(["amqp:CreateQueue", "amqp:GetQueue"], res("/queues/q-dlx")),
      stmt("amqp:CreateExchange", res("/exchanges/dlx-ok")),
    ]);
    const { ch } = await open(key);
    await ch.assertQueue("q-dlx", { durable: false, deadLetterExchange: "dlx-ok" });
    expect(await queueExists("q-dlx")).toBe(true);
  });

  it("with x-dead-letter-exchange: refused without CreateExchange on the DLX, naming it", async () => {
    const key = await principal([stmt(["amqp:CreateQueue", "amqp:GetQueue"], res("/queues/*"))]);
    const { ch } = await open(key);
    await refused(
      ch.assertQueue("q-dlx-no", { durable: false, deadLetterExchange: "dlx-secret" }),
      "amqp:CreateExchange",
      arn("/exchanges/dlx-secret"),
    );
    expect(await queueExists("q-dlx-no")).toBe(false);
  });

  it("with x-dead-letter-exchange: refused without GetQueue on the queue", async () => {
    const key = await principal([
      stmt("amqp:CreateQueue", res("/queues/*")),
      stmt("amqp:CreateExchange", res("/exchanges/*")),
    ]);
    const { ch } = await open(key);
    await refused(
      ch.assertQueue("q-dlx-no2", { durable: false, deadLetterExchange: "dlx-ok" }),
      "amqp:GetQueue",
      arn("/queues/q-dlx-no2"),
    );
  });
});

describe("queue.delete → amqp:DeleteQueue (queue)", () => {
  it("allowed: deleted; refused: stays", async () => {
    await setup(async (c) => {
      await c.assertQueue("q-del-ok", { durable: false });
      await c.assertQueue("q-del-no", { durable: false });
    });
    const { ch } = await open(await principal([stmt("amqp:DeleteQueue", res("/queues/q-del-ok"))]));
    await ch.deleteQueue("q-del-ok");
    expect(await queueExists("q-del-ok")).toBe(false);
    await refused(ch.deleteQueue("q-del-no"), "amqp:DeleteQueue", arn("/queues/q-del-no"));
    expect(await queueExists("q-del-no")).toBe(true);
  });
});

describe("queue.bind / unbind → amqp:CreateQueue (queue) + amqp:GetExchange (exchange)", () => {
  beforeAll(async () => {
    await setup(async (c) => {
      await c.assertExchange("qb-ex", "direct", { durable: false });
      await c.assertQueue("qb-q", { durable: false });
    });
  });
  const grant = () => [
    stmt("amqp:CreateQueue", res("/queues/qb-q")),
    stmt("amqp:GetExchange", res("/exchanges/qb-ex")),
  ];

  it("allowed: bound (a message routed by the key arrives), then unbound", async () => {
    const { ch } = await open(await principal(grant()));
    await ch.bindQueue("qb-q", "qb-ex", "k1");
    await setup(async (c) => c.publish("qb-ex", "k1", Buffer.from("routed")));
    await until(async () => (await messages("qb-q")) === 1, 5_000, "routed message");
    await ch.unbindQueue("qb-q", "qb-ex", "k1");
    await setup(async (c) => c.publish("qb-ex", "k1", Buffer.from("not routed")));
    expect(await messages("qb-q")).toBe(1);
  });

  it("refused without GetExchange, naming the exchange; without CreateQueue, naming the queue", async () => {
    const a = await open(await principal([stmt("amqp:CreateQueue", res("/queues/qb-q"))]));
    await refused(a.ch.bindQueue("qb-q", "qb-ex", "k2"), "amqp:GetExchange", arn("/exchanges/qb-ex"));
    const b = await open(await principal([stmt("amqp:GetExchange", res("/exchanges/qb-ex"))]));
    await refused(b.ch.bindQueue("qb-q", "qb-ex", "k2"), "amqp:CreateQueue", arn("/queues/qb-q"));
    const c = await open(await principal([stmt("amqp:GetExchange", res("/exchanges/qb-ex"))]));
    await refused(c.ch.unbindQueue("qb-q", "qb-ex", "k1"), "amqp:CreateQueue", arn("/queues/qb-q"));
  });
});

describe("queue.purge → amqp:QueuePurge (queue messages)", () => {
  it("allowed: emptied; refused: messages stay", async () => {
    await setup(async (c) => {
      await c.assertQueue("q-purge-ok", { durable: false });
      await c.assertQueue("q-purge-no", { durable: false });
      c.sendToQueue("q-purge-ok", Buffer.from("x"));
      c.sendToQueue("q-purge-no", Buffer.from("x"));
    });
    const { ch } = await open(
      await principal([stmt("amqp:QueuePurge", res("/queues/q-purge-ok/messages/*"))]),
    );
    expect((await ch.purgeQueue("q-purge-ok")).messageCount).toBe(1);
    await refused(ch.purgeQueue("q-purge-no"), "amqp:QueuePurge", arn("/queues/q-purge-no/messages/*"));
    expect(await messages("q-purge-no")).toBe(1);
  });
});

describe("basic.publish → amqp:BasicPublish (exchange messages, with routing key)", () => {
  beforeAll(async () => {
    await setup(async (c) => {
      await c.assertExchange("pub-ex", "topic", { durable: false });
      await c.assertQueue("pub-orders", { durable: false });
      await c.assertQueue("pub-payments", { durable: false });
      await c.bindQueue("pub-orders", "pub-ex", "orders.#");
      await c.bindQueue("pub-payments", "pub-ex", "payments.#");
      await c.assertQueue("pub-default", { durable: false });
      await c.assertQueue("pub-default-other", { durable: false });
    });
  });

  it("allowed by a routing-key pattern in the resource; another routing key is refused and not published", async () => {
    const key = await principal([stmt("amqp:BasicPublish", res("/exchanges/pub-ex/messages/orders.*"))]);
    const a = await open(key);
    const conf = await a.conn.createConfirmChannel();
    conf.publish("pub-ex", "orders.eu", Buffer.from("ok"));
    await conf.waitForConfirms();
    expect(await messages("pub-orders")).toBe(1);
    a.ch.publish("pub-ex", "payments.eu", Buffer.from("never"));
    const err = await channelError(a);
    expect(err.message).toMatch(/403/);
    expect(err.message).toContain("`amqp:BasicPublish`");
    expect(err.message).toContain(`\`${arn("/exchanges/pub-ex/messages/payments.eu")}\``);
    expect(await messages("pub-payments")).toBe(0);
  });

  it("a condition on amqp:RoutingKey restricts as well", async () => {
    const key = await principal([
      {
        ...stmt("amqp:BasicPublish", res("/exchanges/pub-ex/messages/*")),
        Condition: { StringLike: { "amqp:RoutingKey": "payments.*" } },
      },
    ]);
    const a = await open(key);
    const conf = await a.conn.createConfirmChannel();
    conf.publish("pub-ex", "payments.us", Buffer.from("ok"));
    await conf.waitForConfirms();
    expect(await messages("pub-payments")).toBe(1);
    a.ch.publish("pub-ex", "orders.us", Buffer.from("never"));
    expect((await channelError(a)).message).toContain("`amqp:BasicPublish`");
    expect(await messages("pub-orders")).toBe(1); // only the one from the previous test
  });

  it("the default exchange is `amq.default`", async () => {
    const key = await principal([
      stmt("amqp:BasicPublish", res("/exchanges/amq.default/messages/pub-default")),
    ]);
    const a = await open(key);
    const conf = await a.conn.createConfirmChannel();
    conf.sendToQueue("pub-default", Buffer.from("ok"));
    await conf.waitForConfirms();
    expect(await messages("pub-default")).toBe(1);
    a.ch.sendToQueue("pub-default-other", Buffer.from("never"));
    const err = await channelError(a);
    expect(err.message).toContain(`\`${arn("/exchanges/amq.default/messages/pub-default-other")}\``);
    expect(await messages("pub-default-other")).toBe(0);
  });

  it("CC and BCC headers (sender-selected distribution) are routing keys too", async () => {
    await setup(async (c) => {
      await c.assertQueue("cc-orders", { durable: false });
      await c.assertQueue("cc-payments", { durable: false });
      await c.bindQueue("cc-orders", "pub-ex", "orders.#");
      await c.bindQueue("cc-payments", "pub-ex", "payments.#");
    });
    const key = await principal([stmt("amqp:BasicPublish", res("/exchanges/pub-ex/messages/orders.*"))]);
    const a = await open(key);
    const conf = await a.conn.createConfirmChannel();
    conf.publish("pub-ex", "orders.eu", Buffer.from("cc ok"), { headers: { CC: ["orders.us"] } });
    await conf.waitForConfirms();
    expect(await messages("cc-orders")).toBe(1);
    a.ch.publish("pub-ex", "orders.eu", Buffer.from("never"), { headers: { BCC: ["payments.eu"] } });
    const err = await channelError(a);
    expect(err.message).toContain("`amqp:BasicPublish`");
    expect(err.message).toContain(`\`${arn("/exchanges/pub-ex/messages/payments.eu")}\``);
    // nothing of the refused publish reached RabbitMQ: not even under its allowed routing key
    expect(await messages("cc-orders")).toBe(1);
    expect(await messages("cc-payments")).toBe(0);
  });

  it("a refused publish with its content, pipelined with more, leaves the connection usable", async () => {
    const key = await principal([
      stmt("amqp:BasicPublish", res("/exchanges/amq.default/messages/pub-default")),
      stmt("amqp:GetQueue", res("/queues/*")),
    ]);
    const a = await open(key);
    for (let i = 0; i < 20; i++) a.ch.sendToQueue("pub-default-other", Buffer.alloc(200_000, i));
    await channelError(a);
    const ch2 = await a.conn.createChannel();
    expect((await ch2.checkQueue("pub-default")).queue).toBe("pub-default");
    expect(await messages("pub-default-other")).toBe(0);
  });
});

/** Put `count` messages in `q` directly. */
async function fill(q: string, count: number, prefix = "m"): Promise<void> {
  await setup(async (c) => {
    await c.assertQueue(q, { durable: false });
    for (let i = 0; i < count; i++) c.sendToQueue(q, Buffer.from(`${prefix}${i}`));
  });
}

/** Receive one delivery on `ch` from `q` (ack mode). */
function firstDelivery(ch: amqplib.Channel, q: string): Promise<amqplib.ConsumeMessage> {
  return new Promise((resolve, reject) => {
    ch.consume(q, (m) => m && resolve(m)).catch(reject);
  });
}

describe("basic.consume → amqp:BasicConsume (queue messages)", () => {
  it("allowed: deliveries arrive; refused: 403 and no consumer upstream", async () => {
    await fill("q-consume", 1);
    await setup((c) => c.assertQueue("q-consume-no", { durable: false }));
    const a = await open(await principal([stmt("amqp:BasicConsume", res("/queues/q-consume/messages/*"))]));
    const m = await firstDelivery(a.ch, "q-consume");
    expect(m.content.toString()).toBe("m0");
    const b = await open(await principal([stmt("amqp:BasicConsume", res("/queues/q-consume/messages/*"))]));
    await refused(
      b.ch.consume("q-consume-no", () => {}),
      "amqp:BasicConsume",
      arn("/queues/q-consume-no/messages/*"),
    );
    const check = await admin.createChannel();
    expect((await check.checkQueue("q-consume-no")).consumerCount).toBe(0);
    await check.close();
  });
});

describe("basic.get → amqp:BasicGet (queue messages)", () => {
  it("allowed: the message; refused: 403 and the message stays", async () => {
    await fill("q-get", 1);
    await fill("q-get-no", 1);
    const { ch } = await open(await principal([stmt("amqp:BasicGet", res("/queues/q-get/messages/*"))]));
    const m = await ch.get("q-get", { noAck: true });
    expect(m ? m.content.toString() : m).toBe("m0");
    await refused(ch.get("q-get-no", { noAck: true }), "amqp:BasicGet", arn("/queues/q-get-no/messages/*"));
    expect(await messages("q-get-no")).toBe(1);
  });
});

describe("basic.ack / nack / reject → BasicAck / BasicNack / BasicReject (queue messages of that delivery)", () => {
  const consumeAll = (q: string) =>
    stmt(["amqp:BasicConsume", "amqp:BasicGet"], res(`/queues/${q}/messages/*`));

  for (const [kind, action] of [
    ["ack", "amqp:BasicAck"],
    ["nack", "amqp:BasicNack"],
    ["reject", "amqp:BasicReject"],
  ] as const) {
    it(`${kind}: allowed settles the message; refused closes the channel and the message is requeued`, async () => {
      const q = `q-${kind}`;
      await fill(q, 2);
      const settle = (ch: amqplib.Channel, m: amqplib.Message) =>
        kind === "ack" ? ch.ack(m) : kind === "nack" ? ch.nack(m, false, false) : ch.reject(m, false);
      const ok = await open(await principal([consumeAll(q), stmt(action, res(`/queues/${q}/messages/*`))]));
      const m1 = await ok.ch.get(q);
      if (!m1) throw new Error("no message");
      settle(ok.ch, m1);
      await until(async () => (await messages(q)) === 1, 5_000, "one settled");
      await ok.ch.close();
      const no = await open(await principal([consumeAll(q)]));
      const m2 = await no.ch.get(q);
      if (!m2) throw new Error("no message");
      settle(no.ch, m2);
      const err = await channelError(no);
      expect(err.message).toMatch(/403/);
      expect(err.message).toContain(`\`${action}\``);
      expect(err.message).toContain(`\`${arn(`/queues/${q}/messages/*`)}\``);
      // not settled upstream: back in the queue once the channel is closed
      await until(async () => (await messages(q)) === 1, 5_000, "the refused message requeued");
    });
  }

  it("an ack covering deliveries of two queues (multiple) checks each queue", async () => {
    await fill("q-multi-a", 1);
    await fill("q-multi-b", 1);
    const key = await principal([
      consumeAll("q-multi-a"),
      consumeAll("q-multi-b"),
      stmt("amqp:BasicAck", res("/queues/q-multi-a/messages/*")),
    ]);
    const a = await open(key);
    const ma = await a.ch.get("q-multi-a");
    const mb = await a.ch.get("q-multi-b");
    if (!ma || !mb) throw new Error("no message");
    expect(mb.fields.deliveryTag).toBeGreaterThan(ma.fields.deliveryTag);
    a.ch.ack(mb, true); // covers ma (q-multi-a, allowed) and mb (q-multi-b, not allowed)
    const err = await channelError(a);
    expect(err.message).toContain(`\`${arn("/queues/q-multi-b/messages/*")}\``);
    await until(
      async () => (await messages("q-multi-a")) === 1 && (await messages("q-multi-b")) === 1,
      5_000,
    );
    // allowed: ack only the q-multi-a delivery
    const b = await open(key);
    const ma2 = await b.ch.get("q-multi-a");
    if (!ma2) throw new Error("no message");
    b.ch.ack(ma2);
    await until(async () => (await messages("q-multi-a")) === 0, 5_000, "q-multi-a acked");
  });
});

describe("basic.recover → amqp:BasicRecover (…/queues/*)", () => {
  it("allowed: unacked messages are redelivered; refused: 403", async () => {
    await fill("q-recover", 1);
    const key = await principal([
      stmt("amqp:BasicConsume", res("/queues/q-recover/messages/*")),
      stmt("amqp:BasicRecover", res("/queues/*")),
    ]);
    const a = await open(key);
    const seen: boolean[] = [];
    await a.ch.consume("q-recover", (m) => m && seen.push(m.fields.redelivered));
    await until(() => seen.length === 1, 5_000, "first delivery");
    await a.ch.recover();
    await until(() => seen.length === 2, 5_000, "redelivery");
    expect(seen).toEqual([false, true]);
    const b = await open(await principal([stmt("amqp:BasicRecover", res("/queues/q-recover"))]));
    await refused(b.ch.recover(), "amqp:BasicRecover", arn("/queues/*"));
  });
});

describe("basic.cancel → amqp:BasicCancel (queue messages)", () => {
  it("allowed: the consumer is cancelled; refused: 403", async () => {
    await setup((c) => c.assertQueue("q-cancel", { durable: false }));
    const consume = stmt("amqp:BasicConsume", res("/queues/q-cancel/messages/*"));
    const a = await open(
      await principal([consume, stmt("amqp:BasicCancel", res("/queues/q-cancel/messages/*"))]),
    );
    const { consumerTag } = await a.ch.consume("q-cancel", () => {});
    await a.ch.cancel(consumerTag);
    const b = await open(await principal([consume]));
    const r = await b.ch.consume("q-cancel", () => {});
    await refused(b.ch.cancel(r.consumerTag), "amqp:BasicCancel", arn("/queues/q-cancel/messages/*"));
  });
});

describe("empty queue names stand for the channel's last declared queue", () => {
  it('checks the queue RabbitMQ will use, not `""`', async () => {
    await setup((c) => c.assertQueue("q-last", { durable: false }));
    await fill("q-last-secret", 1);
    const key = await principal([
      stmt("amqp:GetQueue", [res("/queues/q-last"), res("/queues/q-last-secret")]),
      stmt("amqp:BasicGet", res("/queues/q-last/messages/*")),
    ]);
    const { ch } = await open(key);
    await ch.checkQueue("q-last-secret"); // the last queue is now q-last-secret
    await refused(ch.get(""), "amqp:BasicGet", arn("/queues/q-last-secret/messages/*"));
    expect(await messages("q-last-secret")).toBe(1);
    const b = await open(key);
    await b.ch.checkQueue("q-last");
    expect(await b.ch.get("")).toBe(false);
  });

  it("a server-named queue's name is learned from declare-ok", async () => {
    const key = await principal([
      stmt("amqp:CreateQueue", res("/queues/*")),
      stmt("amqp:BasicConsume", res("/queues/amq.gen-*")),
    ]);
    const { ch } = await open(key);
    const { queue } = await ch.assertQueue("", { exclusive: true });
    const { consumerTag } = await ch.consume("", () => {});
    expect(consumerTag).toMatch(/^amq\.ctag-/);
    expect(decisions.some((d) => d.resource.includes(queue))).toBe(false); // it was allowed
  });

  it("with no queue declared on the channel: 404 NOT_FOUND, as RabbitMQ", async () => {
    const key = await principal([stmt("amqp:BasicGet", res("/queues/*"))]);
    const { ch } = await open(key);
    const err = await ch.get("").then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).toMatch(/404/);
  });
});
