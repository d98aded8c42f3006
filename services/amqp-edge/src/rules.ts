/**
 * The AMQP method → RAM action → resource table of SPEC §4.2 (seed 001, which
 * is normative), as data the edge evaluates before forwarding a method.
 *
 * | method                                   | checks (action on resource)                                         |
 * |------------------------------------------|---------------------------------------------------------------------|
 * | connection.open vhost v                  | GetVhost (vhost)                                                    |
 * | every op below but publish/ack/nack/reject | GetVhost (vhost) first (see ConnectionRules)                      |
 * | exchange.declare passive=false           | CreateExchange (exchange)                                           |
 * | exchange.declare passive=true            | GetExchange (exchange)                                              |
 * | exchange.declare alternate-exchange      | + CreateExchange (AE) — beyond the seed, as its DLX row             |
 * | exchange.delete                          | DeleteExchange (exchange)                                           |
 * | exchange.bind / unbind                   | GetExchange (source) + CreateExchange (destination)                 |
 * | queue.declare passive=false              | CreateQueue (queue)                                                 |
 * | queue.declare passive=true               | GetQueue (queue)                                                    |
 * | queue.declare x-dead-letter-exchange     | CreateQueue + GetQueue (queue) + CreateExchange (DLX)               |
 * | queue.delete                             | DeleteQueue (queue)                                                 |
 * | queue.bind / unbind                      | CreateQueue (queue) + GetExchange (exchange)                        |
 * | queue.purge                              | QueuePurge (queue messages)                                         |
 * | basic.publish                            | BasicPublish (exchange messages/<routing key>)                      |
 * | basic.consume                            | BasicConsume (queue messages)                                       |
 * | basic.get                                | BasicGet (queue messages)                                           |
 * | basic.ack / nack / reject                | BasicAck / BasicNack / BasicReject (queue messages of the delivery) |
 * | basic.recover / recover-async            | BasicRecover (`…/queues/*`)                                         |
 * | basic.cancel                             | BasicCancel (queue messages of the consumer)                        |
 *
 * Resources name the exchange or queue the method acts on, so a policy
 * resource like the seed's `…/vhosts/$vhost/*` or `…/exchanges/*` covers them
 * and a narrower one (`…/queues/orders`) restricts further. A queue declared
 * without a name (the server names it) is `…/queues/*`. The default exchange
 * `""` is `amq.default`. Methods not listed (channel.*, basic.qos,
 * confirm.select, tx.*, access.request) carry no resource and are not checked.
 */
import {
  type ArnScope,
  amqpAllQueuesArn,
  amqpExchangeArn,
  amqpExchangeMessagesArn,
  amqpQueueArn,
  amqpQueueMessagesArn,
  amqpVhostArn,
} from "@portcullis/policy";

/** One authorization question the edge asks before forwarding. */
export interface Check {
  action: string;
  resource: string;
  /** Routing (or binding) key, given as the `amqp:RoutingKey` condition key. */
  routingKey?: string;
}

/** An AMQP operation with every name resolved (empty queue names replaced by the channel's last queue). */
export type AmqpOp =
  | { op: "connection.open" }
  | { op: "exchange.declare"; exchange: string; passive: boolean; alternateExchange?: string }
  | { op: "exchange.delete"; exchange: string }
  | { op: "exchange.bind" | "exchange.unbind"; source: string; destination: string; routingKey: string }
  | { op: "queue.declare"; queue: string; passive: boolean; deadLetterExchange?: string }
  | { op: "queue.delete"; queue: string }
  | { op: "queue.bind" | "queue.unbind"; queue: string; exchange: string; routingKey: string }
  | { op: "queue.purge"; queue: string }
  | { op: "basic.publish"; exchange: string; routingKey: string }
  | { op: "basic.consume" | "basic.get" | "basic.cancel"; queue: string }
  | { op: "basic.ack" | "basic.nack" | "basic.reject"; queues: Iterable<string> }
  | { op: "basic.recover" };

const ACK_ACTION = {
  "basic.ack": "amqp:BasicAck",
  "basic.nack": "amqp:BasicNack",
  "basic.reject": "amqp:BasicReject",
};
const QUEUE_MSG_ACTION = {
  "basic.consume": "amqp:BasicConsume",
  "basic.get": "amqp:BasicGet",
  "basic.cancel": "amqp:BasicCancel",
};

/** Operations on single messages: checked against their own action only (see {@link ConnectionRules}). */
const PER_MESSAGE = new Set<AmqpOp["op"]>(["basic.publish", "basic.ack", "basic.nack", "basic.reject"]);

/** Bound on the memoised resource names per connection (cleared when reached). */
const MEMO_LIMIT = 1_024;

/**
 * The table for one connection (principal's account, region, vhost), with the
 * resource names of the per-message methods memoised.
 *
 * GetVhost comes first for connection.open and every exchange, queue and
 * consumer operation. The per-message methods (basic.publish, ack, nack,
 * reject) are checked against their own action only: vhost access is checked
 * when the connection opens and again on every event that touches the
 * principal (a revoked GetVhost closes the connection with 320), so per
 * message it would repeat a decision that only an event can change.
 */
export class ConnectionRules {
  readonly vhostArn: string;
  readonly #s: ArnScope;
  readonly #vhost: string;
  #exchangeMessages = new Map<string, string>();
  #queueMessages = new Map<string, string>();

  constructor(scope: ArnScope, vhost: string) {
    this.#s = scope;
    this.#vhost = vhost;
    this.vhostArn = amqpVhostArn(scope, vhost);
  }

  /** `…/exchanges/<e>/messages/<routingKey>` (the exchange part memoised). */
  exchangeMessages(exchange: string, routingKey: string): string {
    let prefix = this.#exchangeMessages.get(exchange);
    if (prefix === undefined) {
      if (this.#exchangeMessages.size >= MEMO_LIMIT) this.#exchangeMessages.clear();
      prefix = amqpExchangeMessagesArn(this.#s, this.#vhost, exchange, "");
      this.#exchangeMessages.set(exchange, prefix);
    }
    return prefix + routingKey;
  }

  /** `…/queues/<q>/messages/*` (memoised). */
  queueMessages(queue: string): string {
    let r = this.#queueMessages.get(queue);
    if (r === undefined) {
      if (this.#queueMessages.size >= MEMO_LIMIT) this.#queueMessages.clear();
      r = amqpQueueMessagesArn(this.#s, this.#vhost, queue);
      this.#queueMessages.set(queue, r);
    }
    return r;
  }

  /** The checks for one operation; all must allow. */
  checks(o: AmqpOp): Check[] {
    const s = this.#s;
    const vhost = this.#vhost;
    const out: Check[] = PER_MESSAGE.has(o.op) ? [] : [{ action: "amqp:GetVhost", resource: this.vhostArn }];
    const ex = (e: string) => amqpExchangeArn(s, vhost, e);
    const q = (name: string) => (name === "" ? amqpAllQueuesArn(s, vhost) : amqpQueueArn(s, vhost, name));
    switch (o.op) {
      case "connection.open":
        break;
      case "exchange.declare":
        out.push({
          action: o.passive ? "amqp:GetExchange" : "amqp:CreateExchange",
          resource: ex(o.exchange),
        });
        // Beyond the seed, by analogy with its DLX row: an alternate exchange receives what the
        // exchange cannot route, so declaring one needs CreateExchange on it as well.
        if (!o.passive && o.alternateExchange !== undefined) {
          out.push({ action: "amqp:CreateExchange", resource: ex(o.alternateExchange) });
        }
        break;
      case "exchange.delete":
        out.push({ action: "amqp:DeleteExchange", resource: ex(o.exchange) });
        break;
      case "exchange.bind":
      case "exchange.unbind":
        out.push(
          { action: "amqp:GetExchange", resource: ex(o.source), routingKey: o.routingKey },
          { action: "amqp:CreateExchange", resource: ex(o.destination), routingKey: o.routingKey },
        );
        break;
      case "queue.declare":
        if (o.passive) {
          out.push({ action: "amqp:GetQueue", resource: q(o.queue) });
        } else {
          out.push({ action: "amqp:CreateQueue", resource: q(o.queue) });
          if (o.deadLetterExchange !== undefined) {
            out.push(
              { action: "amqp:GetQueue", resource: q(o.queue) },
              { action: "amqp:CreateExchange", resource: ex(o.deadLetterExchange) },
            );
          }
        }
        break;
      case "queue.delete":
        out.push({ action: "amqp:DeleteQueue", resource: q(o.queue) });
        break;
      case "queue.bind":
      case "queue.unbind":
        out.push(
          { action: "amqp:CreateQueue", resource: q(o.queue), routingKey: o.routingKey },
          { action: "amqp:GetExchange", resource: ex(o.exchange), routingKey: o.routingKey },
        );
        break;
      case "queue.purge":
        out.push({ action: "amqp:QueuePurge", resource: this.queueMessages(o.queue) });
        break;
      case "basic.publish":
        out.push({
          action: "amqp:BasicPublish",
          resource: this.exchangeMessages(o.exchange, o.routingKey),
          routingKey: o.routingKey,
        });
        break;
      case "basic.consume":
      case "basic.get":
      case "basic.cancel":
        out.push({ action: QUEUE_MSG_ACTION[o.op], resource: this.queueMessages(o.queue) });
        break;
      case "basic.ack":
      case "basic.nack":
      case "basic.reject":
        for (const name of o.queues)
          out.push({ action: ACK_ACTION[o.op], resource: this.queueMessages(name) });
        break;
      case "basic.recover":
        out.push({ action: "amqp:BasicRecover", resource: amqpAllQueuesArn(s, vhost) });
        break;
    }
    return out;
  }
}

/** The checks for one operation in `vhost` (see {@link ConnectionRules.checks}). */
export function checksFor(s: ArnScope, vhost: string, o: AmqpOp): Check[] {
  return new ConnectionRules(s, vhost).checks(o);
}

/** The RAM action of basic.ack / nack / reject. */
export function settleAction(op: "basic.ack" | "basic.nack" | "basic.reject"): string {
  return ACK_ACTION[op];
}

/** A string argument of a declare (`x-dead-letter-exchange`, `alternate-exchange`), when present. */
export function stringArgument(args: Record<string, unknown> | undefined, name: string): string | undefined {
  const v = args?.[name];
  if (typeof v === "string") return v;
  if (Buffer.isBuffer(v)) return v.toString("utf8");
  return undefined;
}

/** The `x-dead-letter-exchange` argument of a queue.declare, when present as a string. */
export function deadLetterExchange(args: Record<string, unknown> | undefined): string | undefined {
  return stringArgument(args, "x-dead-letter-exchange");
}
