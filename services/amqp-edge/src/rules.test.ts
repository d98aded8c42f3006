import { describe, expect, it } from "vitest";
import { type AmqpOp, checksFor, deadLetterExchange } from "./rules.ts";

const S = { region: "local", accountId: "1234567890123456" };
const B = "acs:amqp:local:1234567890123456:/vhosts/v";
const pairs = (o: AmqpOp) => checksFor(S, "v", o).map((c) => `${c.action} ${c.resource}`);

describe("SPEC §4.2 table", () => {
  it("maps each method to its actions and resources, GetVhost first", () => {
    const V = `amqp:GetVhost ${B}`;
    expect(pairs({ op: "connection.open" })).toEqual([V]);
    expect(pairs({ op: "exchange.declare", exchange: "e", passive: false })).toEqual([
      V,
      `amqp:CreateExchange ${B}/exchanges/e`,
    ]);
    expect(pairs({ op: "exchange.declare", exchange: "e", passive: true })).toEqual([
      V,
      `amqp:GetExchange ${B}/exchanges/e`,
    ]);
    expect(pairs({ op: "exchange.declare", exchange: "e", passive: false, alternateExchange: "ae" })).toEqual(
      [V, `amqp:CreateExchange ${B}/exchanges/e`, `amqp:CreateExchange ${B}/exchanges/ae`],
    );
    expect(pairs({ op: "exchange.delete", exchange: "e" })).toEqual([
      V,
      `amqp:DeleteExchange ${B}/exchanges/e`,
    ]);
    expect(pairs({ op: "exchange.bind", source: "s", destination: "d", routingKey: "k" })).toEqual([
      V,
      `amqp:GetExchange ${B}/exchanges/s`,
      `amqp:CreateExchange ${B}/exchanges/d`,
    ]);
    expect(pairs({ op: "queue.declare", queue: "q", passive: false })).toEqual([
      V,
      `amqp:CreateQueue ${B}/queues/q`,
    ]);
    expect(pairs({ op: "queue.declare", queue: "", passive: false })).toEqual([
      V,
      `amqp:CreateQueue ${B}/queues/*`,
    ]);
    expect(pairs({ op: "queue.declare", queue: "q", passive: true })).toEqual([
      V,
      `amqp:GetQueue ${B}/queues/q`,
    ]);
    expect(pairs({ op: "queue.declare", queue: "q", passive: false, deadLetterExchange: "" })).toEqual([
      V,
      `amqp:CreateQueue ${B}/queues/q`,
      `amqp:GetQueue ${B}/queues/q`,
      `amqp:CreateExchange ${B}/exchanges/amq.default`,
    ]);
    expect(pairs({ op: "queue.delete", queue: "q" })).toEqual([V, `amqp:DeleteQueue ${B}/queues/q`]);
    expect(pairs({ op: "queue.unbind", queue: "q", exchange: "e", routingKey: "k" })).toEqual([
      V,
      `amqp:CreateQueue ${B}/queues/q`,
      `amqp:GetExchange ${B}/exchanges/e`,
    ]);
    expect(pairs({ op: "queue.purge", queue: "q" })).toEqual([V, `amqp:QueuePurge ${B}/queues/q/messages/*`]);
    // per-message methods: their own action only (vhost access is re-checked on every event instead)
    expect(pairs({ op: "basic.publish", exchange: "", routingKey: "a.b" })).toEqual([
      `amqp:BasicPublish ${B}/exchanges/amq.default/messages/a.b`,
    ]);
    expect(pairs({ op: "basic.consume", queue: "q" })).toEqual([
      V,
      `amqp:BasicConsume ${B}/queues/q/messages/*`,
    ]);
    expect(pairs({ op: "basic.get", queue: "q" })).toEqual([V, `amqp:BasicGet ${B}/queues/q/messages/*`]);
    expect(pairs({ op: "basic.cancel", queue: "q" })).toEqual([
      V,
      `amqp:BasicCancel ${B}/queues/q/messages/*`,
    ]);
    expect(pairs({ op: "basic.nack", queues: ["q1", "q2"] })).toEqual([
      `amqp:BasicNack ${B}/queues/q1/messages/*`,
      `amqp:BasicNack ${B}/queues/q2/messages/*`,
    ]);
    expect(pairs({ op: "basic.recover" })).toEqual([V, `amqp:BasicRecover ${B}/queues/*`]);
  });

  it("passes routing keys as amqp:RoutingKey and encodes `/` in names", () => {
    const [pub] = checksFor(S, "/", { op: "basic.publish", exchange: "a/b", routingKey: "x/y" });
    expect(pub).toEqual({
      action: "amqp:BasicPublish",
      resource: "acs:amqp:local:1234567890123456:/vhosts/%2F/exchanges/a%2Fb/messages/x/y",
      routingKey: "x/y",
    });
  });

  it("reads x-dead-letter-exchange as a string or bytes", () => {
    expect(deadLetterExchange({ "x-dead-letter-exchange": "dlx" })).toBe("dlx");
    expect(deadLetterExchange({ "x-dead-letter-exchange": Buffer.from("dlx") })).toBe("dlx");
    expect(deadLetterExchange({ "x-max-length": 1 })).toBeUndefined();
    expect(deadLetterExchange(undefined)).toBeUndefined();
  });
});
