/**
 * Deterministic policy workloads for the policy benchmark (seeded PRNG, same
 * policies and requests in every run):
 *
 * - (a) `10x10`: one RAM user with 10 custom policies × 10 statements, MQTT and
 *   AMQP statements as a team would write them (~10% Deny, about half with
 *   conditions on `acs:SourceIp`, `mq:ClientId`, `mq:Qos`, `acs:SecureTransport`);
 * - (b) `1000`: one RAM user with 100 policies × 10 statements (the 6,144-char
 *   document limit rules out 10 × 100) over distinct topics, queues and routing keys.
 *
 * Requests (10,000 per workload) mix ones aimed at a statement (its action, a
 * resource inside its pattern, a context that meets its conditions 75% of the
 * time), random ones over the same topics, queues and exchanges, and 1% for
 * another account; together they give allowed, explicitly and implicitly denied
 * decisions.
 */
import {
  type AuthzRequest,
  amqpExchangeArn,
  amqpExchangeMessagesArn,
  amqpQueueArn,
  amqpQueueMessagesArn,
  mqInstanceArn,
  mqTopicArn,
  type PolicyDocument,
  type Principal,
  type RequestContext,
  type Statement,
} from "@portcullis/policy";
import { Rng } from "./prng.ts";

/** The account of the benchmark principal. */
export const ACCOUNT = "1234567890123456";
/** Another account (its resources are always denied). */
export const OTHER_ACCOUNT = "6543210987654321";
/** The MQTT instance id the requests use. */
export const MQTT_INSTANCE = "mqtt-local";

/** One benchmark workload: a principal, its policies and the requests to decide. */
export interface PolicyWorkload {
  readonly name: string;
  readonly description: string;
  readonly principal: Principal;
  readonly policies: readonly { readonly name: string; readonly document: PolicyDocument }[];
  readonly requests: readonly AuthzRequest[];
}

const scope = { region: "local", accountId: ACCOUNT };
const PARENTS = [
  "orders",
  "telemetry",
  "alerts",
  "billing",
  "fleet",
  "sensors",
  "payments",
  "inventory",
  "chat",
  "metrics",
  "logs",
  "devices",
  "firmware",
  "shipping",
  "audit",
  "weather",
  "traffic",
  "energy",
  "health",
  "games",
];
const SUBS_SMALL = ["eu", "us", "apac", "status", "cmd", "events", "raw", "agg"];
const VHOSTS = ["prod", "staging", "iot"];
const LEAVES = ["1", "42", "dev-7", "state", "admin/reset", "x/y/z"];
const CORP_RANGES = ["10.0.0.0/8", "192.168.0.0/16"];
const IP_SETS: readonly (readonly string[])[] = [
  ["10.0.0.0/8"],
  CORP_RANGES,
  ["10.1.0.0/16", "10.2.0.0/16"],
  ["192.168.10.0/24", "10.20.0.0/16"],
];

type Kind =
  | "mqtt-pubsub"
  | "mqtt-instance"
  | "amqp-publish"
  | "amqp-consume"
  | "amqp-read"
  | "deny-admin"
  | "deny-insecure"
  | "deny-purge"
  | "deny-offnet";

const KINDS: readonly (readonly [Kind, number])[] = [
  ["mqtt-pubsub", 40],
  ["mqtt-instance", 4],
  ["amqp-publish", 18],
  ["amqp-consume", 18],
  ["amqp-read", 10],
  ["deny-admin", 3],
  ["deny-insecure", 2],
  ["deny-purge", 2],
  ["deny-offnet", 3],
];

/** A topic slot: parent topic, second level, AMQP vhost. */
interface Slot {
  parent: string;
  sub: string;
  vhost: string;
}

interface Generated {
  kind: Kind;
  slot: Slot;
  statement: Statement;
}

const mqRes = (rel: string) => `acs:mq:*:${ACCOUNT}:${rel}`;
const amqpRes = (rel: string) => `acs:amqp:*:${ACCOUNT}:${rel}`;

function ipv4ToString(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

/** A random address inside a CIDR range (never the network or broadcast address of a /24 or wider). */
function ipIn(rng: Rng, cidr: string): string {
  const [base, bits] = cidr.split("/") as [string, string];
  const n = base.split(".").reduce((a, o) => a * 256 + Number(o), 0);
  const size = 2 ** (32 - Number(bits));
  return ipv4ToString(n + 1 + rng.int(size - 2));
}

function makeStatement(rng: Rng, kind: Kind, slot: Slot, index: number): Statement {
  const { parent: p, sub: s, vhost: v } = slot;
  const cond: Record<string, Record<string, string | number | boolean | string[]>> = {};
  const sid = `${kind.replace(/-(.)/g, (_, c: string) => c.toUpperCase())}${index}`;
  switch (kind) {
    case "mqtt-pubsub": {
      const resources = [mqRes(`topic/${MQTT_INSTANCE}/${p}/${s}/*`)];
      if (rng.chance(0.3)) resources.push(mqRes(`topic/${MQTT_INSTANCE}/${p}/${s}-replay/*`));
      if (rng.chance(0.4)) cond.StringLike = { "mq:ClientId": [`GID_${p}@@@*`] };
      if (rng.chance(0.3)) cond.NumericLessThanEquals = { "mq:Qos": 1 };
      if (rng.chance(0.35)) cond.IpAddress = { "acs:SourceIp": [...rng.pick(IP_SETS)] };
      const actions = rng.pick([["mq:PUB"], ["mq:SUB"], ["mq:PUB", "mq:SUB"]]);
      return { Sid: sid, Effect: "Allow", Action: actions, Resource: resources, ...withCond(cond) };
    }
    case "mqtt-instance":
      if (rng.chance(0.5)) cond.IpAddress = { "acs:SourceIp": [...rng.pick(IP_SETS)] };
      return {
        Sid: sid,
        Effect: "Allow",
        Action: ["mq:MqttInstanceAccess"],
        Resource: [mqRes(`instance/${MQTT_INSTANCE}`)],
        ...withCond(cond),
      };
    case "amqp-publish":
      if (rng.chance(0.3)) cond.Bool = { "acs:SecureTransport": true };
      if (rng.chance(0.2)) cond.IpAddress = { "acs:SourceIp": [...rng.pick(IP_SETS)] };
      return {
        Sid: sid,
        Effect: "Allow",
        Action: ["amqp:BasicPublish"],
        Resource: [amqpRes(`/vhosts/${v}/exchanges/${p}.events/messages/${p}.${s}.*`)],
        ...withCond(cond),
      };
    case "amqp-consume":
      if (rng.chance(0.25)) cond.IpAddress = { "acs:SourceIp": [...rng.pick(IP_SETS)] };
      return {
        Sid: sid,
        Effect: "Allow",
        Action: rng.sample(
          ["amqp:BasicConsume", "amqp:BasicAck", "amqp:BasicNack", "amqp:BasicGet"],
          2 + rng.int(3),
        ),
        Resource: [amqpRes(`/vhosts/${v}/queues/${p}-${s}/messages/*`)],
        ...withCond(cond),
      };
    case "amqp-read":
      return {
        Sid: sid,
        Effect: "Allow",
        Action: ["amqp:Get*", "amqp:List*"],
        Resource: [amqpRes(`/vhosts/${v}/queues/${p}-${s}`), amqpRes(`/vhosts/${v}/exchanges/${p}.events`)],
      };
    case "deny-admin":
      return {
        Sid: sid,
        Effect: "Deny",
        Action: ["mq:PUB", "mq:SUB"],
        Resource: [mqRes(`topic/${MQTT_INSTANCE}/${p}/${s}/admin/*`)],
      };
    case "deny-insecure":
      return {
        Sid: sid,
        Effect: "Deny",
        Action: ["mq:PUB"],
        Resource: [mqRes(`topic/${MQTT_INSTANCE}/${p}/*`)],
        Condition: { Bool: { "acs:SecureTransport": false } },
      };
    case "deny-purge":
      return {
        Sid: sid,
        Effect: "Deny",
        Action: ["amqp:QueuePurge", "amqp:BasicGet"],
        Resource: [amqpRes(`/vhosts/${v}/queues/${p}-*/messages/*`)],
      };
    case "deny-offnet":
      return {
        Sid: sid,
        Effect: "Deny",
        Action: ["mq:SUB", "amqp:BasicConsume"],
        Resource: [
          mqRes(`topic/${MQTT_INSTANCE}/${p}/${s}/*`),
          amqpRes(`/vhosts/*/queues/${p}-${s}/messages/*`),
        ],
        Condition: { NotIpAddress: { "acs:SourceIp": [...CORP_RANGES] } },
      };
  }
}

function withCond(cond: Record<string, Record<string, unknown>>): Pick<Statement, "Condition"> {
  return Object.keys(cond).length > 0 ? { Condition: cond as Statement["Condition"] & object } : {};
}

/** A random context for an MQTT or AMQP request. */
function baseContext(rng: Rng, proto: "mqtt" | "amqp", slot: Slot, qos: boolean): Record<string, unknown> {
  const ctx: Record<string, unknown> = {};
  const r = rng.next();
  if (r < 0.7) ctx["acs:SourceIp"] = `10.${rng.int(32)}.${rng.int(256)}.${1 + rng.int(254)}`;
  else if (r < 0.85) ctx["acs:SourceIp"] = `192.168.${rng.int(21)}.${1 + rng.int(254)}`;
  else if (r < 0.97) ctx["acs:SourceIp"] = `203.0.113.${1 + rng.int(254)}`;
  ctx["acs:SecureTransport"] = rng.chance(0.85);
  if (proto === "mqtt") {
    const p = rng.chance(0.7) ? slot.parent : rng.pick(PARENTS);
    ctx["mq:ClientId"] = `GID_${p}@@@dev-${rng.int(500)}`;
    if (qos)
      ctx["mq:Qos"] = rng.weighted([
        [0, 45],
        [1, 40],
        [2, 15],
      ]);
  } else {
    ctx["amqp:Vhost"] = slot.vhost;
  }
  return ctx;
}

/** Adjust `ctx` so the statement's conditions hold (for a Deny: so it applies). */
function satisfy(rng: Rng, st: Statement, ctx: Record<string, unknown>): void {
  for (const [op, keys] of Object.entries(st.Condition ?? {})) {
    for (const [key, raw] of Object.entries(keys)) {
      const first = Array.isArray(raw) ? raw[0] : raw;
      if (op === "IpAddress") ctx[key] = ipIn(rng, String(first));
      else if (op === "NotIpAddress") ctx[key] = `203.0.113.${1 + rng.int(254)}`;
      else if (op === "StringLike") ctx[key] = String(first).replace("*", `dev-${rng.int(500)}`);
      else if (op === "NumericLessThanEquals") ctx[key] = rng.int(Number(first) + 1);
      else if (op === "Bool") ctx[key] = first;
    }
  }
}

/** A request aimed at statement `g` (one of its actions, a resource inside one of its patterns). */
function aimedRequest(rng: Rng, g: Generated): AuthzRequest {
  const { parent: p, sub: s, vhost: v } = g.slot;
  const leaf = rng.pick(LEAVES);
  let action: string;
  let resource: string;
  let proto: "mqtt" | "amqp" = "amqp";
  switch (g.kind) {
    case "mqtt-pubsub":
    case "deny-insecure":
    case "deny-admin": {
      proto = "mqtt";
      action = rng.pick(g.statement.Action!);
      const second = g.statement.Resource!.length > 1 && rng.chance(0.5) ? `${s}-replay` : s;
      const topic = g.kind === "deny-admin" ? `${p}/${s}/admin/${leaf}` : `${p}/${second}/${leaf}`;
      resource = mqTopicArn(scope, MQTT_INSTANCE, topic);
      break;
    }
    case "mqtt-instance":
      proto = "mqtt";
      action = "mq:MqttInstanceAccess";
      resource = mqInstanceArn(scope, MQTT_INSTANCE);
      break;
    case "amqp-publish":
      action = "amqp:BasicPublish";
      resource = amqpExchangeMessagesArn(scope, v, `${p}.events`, `${p}.${s}.${leaf.replaceAll("/", ".")}`);
      break;
    case "amqp-consume":
    case "deny-purge":
      action = rng.pick(g.statement.Action!);
      resource = amqpQueueMessagesArn(scope, v, `${p}-${s}`);
      break;
    case "amqp-read": {
      const queue = rng.chance(0.5);
      action = queue ? rng.pick(["amqp:GetQueue", "amqp:ListQueue"]) : rng.pick(["amqp:GetExchange"]);
      resource = queue ? amqpQueueArn(scope, v, `${p}-${s}`) : amqpExchangeArn(scope, v, `${p}.events`);
      break;
    }
    case "deny-offnet":
      if (rng.chance(0.5)) {
        proto = "mqtt";
        action = "mq:SUB";
        resource = mqTopicArn(scope, MQTT_INSTANCE, `${p}/${s}/${leaf}`);
      } else {
        action = "amqp:BasicConsume";
        resource = amqpQueueMessagesArn(scope, v, `${p}-${s}`);
      }
      break;
  }
  const ctx = baseContext(rng, proto, g.slot, action === "mq:PUB" || action === "mq:SUB");
  if (rng.chance(0.75)) satisfy(rng, g.statement, ctx);
  return { action, resource, context: ctx as RequestContext };
}

/** A request over the workload's topics, queues and exchanges, aimed at no statement in particular. */
function randomRequest(rng: Rng, slots: readonly Slot[]): AuthzRequest {
  const slot = { ...rng.pick(slots), vhost: rng.pick(VHOSTS) };
  const { parent: p, sub: s, vhost: v } = slot;
  const leaf = rng.pick(LEAVES);
  const op = rng.weighted<string>([
    ["mq:PUB", 30],
    ["mq:SUB", 25],
    ["mq:MqttInstanceAccess", 5],
    ["amqp:BasicPublish", 15],
    ["amqp:BasicConsume", 8],
    ["amqp:BasicAck", 6],
    ["amqp:BasicGet", 3],
    ["amqp:QueuePurge", 2],
    ["amqp:GetQueue", 3],
    ["amqp:GetExchange", 3],
  ]);
  let resource: string;
  if (op === "mq:PUB" || op === "mq:SUB") resource = mqTopicArn(scope, MQTT_INSTANCE, `${p}/${s}/${leaf}`);
  else if (op === "mq:MqttInstanceAccess")
    resource = mqInstanceArn(scope, rng.chance(0.8) ? MQTT_INSTANCE : "mqtt-other");
  else if (op === "amqp:BasicPublish")
    resource = amqpExchangeMessagesArn(scope, v, `${p}.events`, `${p}.${s}.${leaf.replaceAll("/", ".")}`);
  else if (op === "amqp:GetQueue") resource = amqpQueueArn(scope, v, `${p}-${s}`);
  else if (op === "amqp:GetExchange") resource = amqpExchangeArn(scope, v, `${p}.events`);
  else resource = amqpQueueMessagesArn(scope, v, `${p}-${s}`);
  const proto = op.startsWith("mq:") ? "mqtt" : "amqp";
  const ctx = baseContext(rng, proto, slot, op === "mq:PUB" || op === "mq:SUB");
  return { action: op, resource, context: ctx as RequestContext };
}

interface Shape {
  name: string;
  description: string;
  seed: number;
  policies: number;
  statementsPerPolicy: number;
  /** Statement `i`'s slot; distinct per statement in (b). */
  slot: (rng: Rng, i: number) => Slot;
  /** The topic slots random requests are drawn from. */
  slots: readonly Slot[];
}

function build(shape: Shape, requestCount: number): PolicyWorkload {
  const rng = new Rng(shape.seed);
  const generated: Generated[] = [];
  const policies: { name: string; document: PolicyDocument }[] = [];
  for (let pi = 0; pi < shape.policies; pi++) {
    const statements: Statement[] = [];
    for (let si = 0; si < shape.statementsPerPolicy; si++) {
      const i = pi * shape.statementsPerPolicy + si;
      const kind = rng.weighted(KINDS);
      const slot = shape.slot(rng, i);
      const statement = makeStatement(rng, kind, slot, si);
      generated.push({ kind, slot, statement });
      statements.push(statement);
    }
    policies.push({
      name: `team-${String(pi).padStart(3, "0")}`,
      document: { Version: "1", Statement: statements },
    });
  }
  const requests: AuthzRequest[] = [];
  for (let i = 0; i < requestCount; i++) {
    const r = rng.next();
    if (r < 0.6) requests.push(aimedRequest(rng, rng.pick(generated)));
    else if (r < 0.99) requests.push(randomRequest(rng, shape.slots));
    else {
      const aimed = aimedRequest(rng, rng.pick(generated));
      requests.push({ ...aimed, resource: aimed.resource.replace(`:${ACCOUNT}:`, `:${OTHER_ACCOUNT}:`) });
    }
  }
  return {
    name: shape.name,
    description: shape.description,
    principal: { accountId: ACCOUNT, kind: "user", name: "bench-user" },
    policies,
    requests,
  };
}

/** Workload (a): 10 custom policies × 10 statements with conditions, 10,000 requests. */
export function workload10x10(requestCount = 10_000): PolicyWorkload {
  const slots = PARENTS.flatMap((parent) => SUBS_SMALL.map((sub) => ({ parent, sub, vhost: "prod" })));
  return build(
    {
      name: "(a) 10 policies × 10 statements",
      description: "one user, 10 custom policies × 10 MQTT/AMQP statements, ~10% Deny, conditions",
      seed: 0x5eed_000a,
      policies: 10,
      statementsPerPolicy: 10,
      slot: (rng) => ({ ...rng.pick(slots), vhost: rng.pick(VHOSTS) }),
      slots,
    },
    requestCount,
  );
}

/** Workload (b): 1,000 statements (100 policies × 10) over distinct topics, 10,000 requests. */
export function workload1000(requestCount = 10_000): PolicyWorkload {
  const subs = Array.from({ length: 50 }, (_, i) => `s${i}`);
  const slots = subs.flatMap((sub) => PARENTS.map((parent) => ({ parent, sub, vhost: "prod" })));
  return build(
    {
      name: "(b) 1,000 statements",
      description: "one user, 100 custom policies × 10 statements over distinct topics/queues, ~10% Deny",
      seed: 0x5eed_000b,
      policies: 100,
      statementsPerPolicy: 10,
      // Statement i owns slot i: a distinct parent/sub pair (and its queue and routing keys).
      slot: (rng, i) => ({ ...slots[i]!, vhost: rng.pick(VHOSTS) }),
      slots,
    },
    requestCount,
  );
}
