/**
 * Examples for ARNs (SPEC §4): the request builders, the parsers used by audit
 * and explanations, AMQP name encoding, and the compile-time normalisation of
 * the legacy MQTT forms and the AMQP `/instances/<id>` form. Normalisation is
 * checked by its output where that is one plain pattern, and otherwise by what
 * a compiled statement then covers.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  AMQP_DEFAULT_EXCHANGE,
  amqpAllQueuesArn,
  amqpExchangeArn,
  amqpExchangeMessagesArn,
  amqpQueueArn,
  amqpQueueMessagesArn,
  amqpVhostArn,
  type CompileOptions,
  compilePolicySource,
  decodeAmqpName,
  encodeAmqpName,
  evaluatePolicies,
  mqGroupIdArn,
  mqInstanceArn,
  mqTopicArn,
  normalizeResourcePattern,
  parseAmqpRelative,
  parseArn,
  parseMqRelative,
  ramArn,
} from "../src/mod.ts";

const ACCT = "1234567890123456";
const S = { region: "local", accountId: ACCT };
const MQ = `acs:mq:local:${ACCT}:`;
const AMQP = `acs:amqp:local:${ACCT}:`;

/** Does a statement `Allow * on <pattern>` allow a request on `resource`? */
function covers(pattern: string, resource: string, opts: CompileOptions = {}): boolean {
  const p = compilePolicySource(
    { Version: "1", Statement: { Effect: "Allow", Action: "*", Resource: pattern } },
    { name: "t", type: "Custom", version: "v1" },
    opts,
  );
  return (
    evaluatePolicies({ accountId: ACCT, kind: "user", name: "u" }, [p], { action: "mq:PUB", resource })
      .decision === "Allow"
  );
}

describe("request ARN builders", () => {
  it("MQTT instance, topic (or filter) and Group ID", () => {
    expect(mqInstanceArn(S, "mqtt-local")).toBe(`${MQ}instance/mqtt-local`);
    expect(mqTopicArn(S, "mqtt-local", "a/b/c")).toBe(`${MQ}topic/mqtt-local/a/b/c`);
    expect(mqTopicArn(S, "mqtt-local", "a/+/#")).toBe(`${MQ}topic/mqtt-local/a/+/#`);
    expect(mqGroupIdArn(S, "mqtt-local", "GID_a")).toBe(`${MQ}group/mqtt-local/GID_a`);
  });

  it("AMQP vhost, exchange, queue and their messages; vhost `/` is `%2F`", () => {
    expect(amqpVhostArn(S, "/")).toBe(`${AMQP}/vhosts/%2F`);
    expect(amqpVhostArn(S, "prod")).toBe(`${AMQP}/vhosts/prod`);
    expect(amqpExchangeArn(S, "/", "orders")).toBe(`${AMQP}/vhosts/%2F/exchanges/orders`);
    expect(amqpQueueArn(S, "v", "q1")).toBe(`${AMQP}/vhosts/v/queues/q1`);
    expect(amqpExchangeMessagesArn(S, "v", "orders", "eu.created")).toBe(
      `${AMQP}/vhosts/v/exchanges/orders/messages/eu.created`,
    );
    expect(amqpQueueMessagesArn(S, "v", "q1")).toBe(`${AMQP}/vhosts/v/queues/q1/messages/*`);
    expect(amqpAllQueuesArn(S, "v")).toBe(`${AMQP}/vhosts/v/queues/*`);
  });

  it('the default exchange `""` is `amq.default`', () => {
    expect(AMQP_DEFAULT_EXCHANGE).toBe("amq.default");
    expect(amqpExchangeArn(S, "v", "")).toBe(`${AMQP}/vhosts/v/exchanges/amq.default`);
    expect(amqpExchangeMessagesArn(S, "v", "", "q1")).toBe(
      `${AMQP}/vhosts/v/exchanges/amq.default/messages/q1`,
    );
  });

  it("AMQP names with `/` or `%` stay one segment; routing keys are not encoded", () => {
    expect(amqpQueueArn(S, "a/b", "x%y")).toBe(`${AMQP}/vhosts/a%2Fb/queues/x%25y`);
    expect(amqpExchangeMessagesArn(S, "v", "e/1", "a/b%c")).toBe(
      `${AMQP}/vhosts/v/exchanges/e%2F1/messages/a/b%c`,
    );
  });

  it("RAM resources are global (region `*`)", () => {
    expect(ramArn(ACCT, "user", "alice")).toBe(`acs:ram:*:${ACCT}:user/alice`);
    expect(ramArn(ACCT, "group", "ops")).toBe(`acs:ram:*:${ACCT}:group/ops`);
    expect(ramArn(ACCT, "policy", "p")).toBe(`acs:ram:*:${ACCT}:policy/p`);
  });
});

describe("encodeAmqpName / decodeAmqpName", () => {
  it("encodes `/` as `%2F` and `%` as `%25`", () => {
    expect(encodeAmqpName("/")).toBe("%2F");
    expect(encodeAmqpName("%")).toBe("%25");
    expect(encodeAmqpName("%2F")).toBe("%252F");
    expect(encodeAmqpName("a.b-c_d")).toBe("a.b-c_d");
    expect(encodeAmqpName("")).toBe("");
  });

  it("decodes both cases of `%2F`", () => {
    expect(decodeAmqpName("%2F")).toBe("/");
    expect(decodeAmqpName("%2f")).toBe("/");
    expect(decodeAmqpName("%25")).toBe("%");
    expect(decodeAmqpName("%252F")).toBe("%2F");
  });

  it("decode(encode(name)) is the name, and the encoding has no `/`", () => {
    const name = fc.string({ unit: fc.constantFrom("a", "/", "%", "2", "F", "f", "5"), maxLength: 12 });
    fc.assert(
      fc.property(name, (n) => {
        expect(decodeAmqpName(encodeAmqpName(n))).toBe(n);
        expect(encodeAmqpName(n)).not.toContain("/");
      }),
      { numRuns: 300 },
    );
  });
});

describe("parseArn", () => {
  it("splits the five parts; the relative id keeps its colons", () => {
    expect(parseArn(`${MQ}topic/mqtt-local/a`)).toEqual({
      service: "mq",
      region: "local",
      accountId: ACCT,
      relative: "topic/mqtt-local/a",
    });
    expect(parseArn("acs:mq:*:*:topic/i/a:b:c")).toEqual({
      service: "mq",
      region: "*",
      accountId: "*",
      relative: "topic/i/a:b:c",
    });
    expect(parseArn("acs::::")).toEqual({ service: "", region: "", accountId: "", relative: "" });
  });

  it("is undefined for anything that is not `acs:` and four colons", () => {
    for (const s of [
      "",
      "*",
      "acs",
      "acs:",
      "acs:mq",
      "acs:mq:local",
      `acs:mq:local:${ACCT}`,
      "arn:mq:a:b:c",
      "ACS:mq:a:b:c",
    ])
      expect(parseArn(s), s).toBeUndefined();
  });
});

describe("parseMqRelative", () => {
  it("instance, topic (with its parent topic) and group", () => {
    expect(parseMqRelative("instance/mqtt-local")).toEqual({ kind: "instance", instanceId: "mqtt-local" });
    expect(parseMqRelative("topic/mqtt-local/a/b/c")).toEqual({
      kind: "topic",
      instanceId: "mqtt-local",
      topic: "a/b/c",
      parentTopic: "a",
    });
    expect(parseMqRelative("topic/mqtt-local/a")).toEqual({
      kind: "topic",
      instanceId: "mqtt-local",
      topic: "a",
      parentTopic: "a",
    });
    expect(parseMqRelative("group/mqtt-local/GID_x")).toEqual({
      kind: "group",
      instanceId: "mqtt-local",
      groupId: "GID_x",
    });
  });

  it("is undefined for incomplete or unknown forms", () => {
    for (const s of [
      "",
      "instance",
      "instance/",
      "topic/mqtt-local",
      "topic//a",
      "topic/i/",
      "group/i",
      "queue/i/q",
      "TopicA",
    ])
      expect(parseMqRelative(s), s).toBeUndefined();
  });
});

describe("parseAmqpRelative", () => {
  it("vhost, exchange, queue and messages, with names decoded", () => {
    expect(parseAmqpRelative("/vhosts/%2F")).toEqual({ vhost: "/" });
    expect(parseAmqpRelative("/vhosts/v/exchanges/amq.default")).toEqual({
      vhost: "v",
      exchange: "amq.default",
    });
    expect(parseAmqpRelative("/vhosts/v/queues/a%2Fb")).toEqual({ vhost: "v", queue: "a/b" });
    expect(parseAmqpRelative("/vhosts/v/exchanges/e/messages/eu/created")).toEqual({
      vhost: "v",
      exchange: "e",
      messages: "eu/created",
    });
    expect(parseAmqpRelative("/vhosts/v/queues/q/messages/*")).toEqual({
      vhost: "v",
      queue: "q",
      messages: "*",
    });
  });

  it("accepts the `/instances/<id>/vhosts/…` form", () => {
    expect(parseAmqpRelative("/instances/amqp-local/vhosts/v/queues/q")).toEqual({ vhost: "v", queue: "q" });
  });

  it("is undefined for incomplete or unknown forms", () => {
    for (const s of [
      "",
      "vhosts/v",
      "/vhosts/",
      "/vhosts/v/topics/x",
      "/vhosts/v/exchanges/",
      "/vhosts/v/exchanges/e/bindings/x",
      "/vhosts/v/exchanges/e/messages",
      "/instances/amqp-local",
    ])
      expect(parseAmqpRelative(s), s).toBeUndefined();
  });
});

describe("normalizeResourcePattern", () => {
  it("leaves non-ARN patterns, canonical forms and other services alone", () => {
    for (const p of [
      "*",
      "acs:mq:*",
      "acs:mq:*:*:*",
      `acs:mq:*:${ACCT}:instance/mqtt-local`,
      `acs:mq:*:${ACCT}:group/mqtt-local/GID_a`,
      `acs:amqp:*:${ACCT}:/vhosts/v/queues/*`,
      `acs:ram:*:${ACCT}:user/*`,
    ])
      expect(normalizeResourcePattern(p), p).toEqual([p]);
  });

  describe("MQTT `topic/<inst>/<topic>`", () => {
    it("a one-level parent topic also covers its sub-topics", () => {
      const p = `acs:mq:*:${ACCT}:topic/mqtt-local/a`;
      expect(normalizeResourcePattern(p)).toEqual([p, `${p}/*`]);
      expect(covers(p, `${MQ}topic/mqtt-local/a`)).toBe(true);
      expect(covers(p, `${MQ}topic/mqtt-local/a/b/c`)).toBe(true);
      expect(covers(p, `${MQ}topic/mqtt-local/ab`)).toBe(false);
      expect(covers(p, `${MQ}topic/mqtt-2/a`)).toBe(false);
    });

    it("narrower or wildcard-ended topic patterns are kept as they are", () => {
      for (const t of ["a/b", "a/devices/*", "a*", "*"]) {
        const p = `acs:mq:*:${ACCT}:topic/mqtt-local/${t}`;
        expect(normalizeResourcePattern(p), p).toEqual([p]);
      }
      expect(covers(`acs:mq:*:${ACCT}:topic/mqtt-local/a/b`, `${MQ}topic/mqtt-local/a/b/c`)).toBe(false);
    });
  });

  describe("MQTT legacy `acs:mq:*:$acct:<Topic>` (seed 003)", () => {
    const p = `acs:mq:*:${ACCT}:TopicA`;

    it("stands for the parent topic and its sub-topics", () => {
      const out = normalizeResourcePattern(p);
      expect(out).toHaveLength(2);
      expect(out[1]).toBe(`${out[0]}/*`);
      expect(out[0]!.startsWith(`acs:mq:*:${ACCT}:topic/`)).toBe(true);
      expect(out[0]!.endsWith("/TopicA")).toBe(true);
    });

    it("in every instance", () => {
      for (const inst of ["mqtt-local", "mqtt-2", "x"]) {
        expect(covers(p, `${MQ}topic/${inst}/TopicA`), inst).toBe(true);
        expect(covers(p, `${MQ}topic/${inst}/TopicA/dev/1`), inst).toBe(true);
      }
    });

    it("but only as the parent (first-level) topic, and only topics", () => {
      expect(covers(p, `${MQ}topic/mqtt-local/x/TopicA`)).toBe(false);
      expect(covers(p, `${MQ}topic/mqtt-local/TopicAB`)).toBe(false);
      expect(covers(p, `${MQ}instance/TopicA`)).toBe(false);
      expect(covers(p, `${MQ}group/mqtt-local/TopicA`)).toBe(false);
    });

    it("with a region and account as written", () => {
      expect(covers(`acs:mq:cn-hangzhou:${ACCT}:TopicA`, `${MQ}topic/mqtt-local/TopicA`)).toBe(false);
      expect(covers("acs:mq:*:*:TopicA", `${MQ}topic/mqtt-local/TopicA`)).toBe(true);
    });
  });

  describe("MQTT `<instanceId>%<topic>`", () => {
    it("is `topic/<instanceId>/<topic>`", () => {
      const base = `acs:mq:*:${ACCT}:`;
      expect(normalizeResourcePattern(`${base}mqtt-local%TopicA`)).toEqual([
        `${base}topic/mqtt-local/TopicA`,
        `${base}topic/mqtt-local/TopicA/*`,
      ]);
      expect(normalizeResourcePattern(`${base}mqtt-local%a/b`)).toEqual([`${base}topic/mqtt-local/a/b`]);
      expect(covers(`${base}mqtt-local%TopicA`, `${MQ}topic/mqtt-local/TopicA/x`)).toBe(true);
      expect(covers(`${base}mqtt-local%TopicA`, `${MQ}topic/mqtt-2/TopicA`)).toBe(false);
    });
  });

  describe("AMQP `/instances/<id>/vhosts/…`", () => {
    const base = `acs:amqp:*:${ACCT}:`;

    it("is `/vhosts/…` when the id is our instance (default `amqp-local`)", () => {
      expect(normalizeResourcePattern(`${base}/instances/amqp-local/vhosts/v1/queues/*`)).toEqual([
        `${base}/vhosts/v1/queues/*`,
      ]);
      expect(normalizeResourcePattern(`${base}/instances/amqp-local/vhosts/%2F`)).toEqual([
        `${base}/vhosts/%2F`,
      ]);
    });

    it("never matches for another instance", () => {
      expect(normalizeResourcePattern(`${base}/instances/other/vhosts/v1`)).toEqual([]);
      expect(normalizeResourcePattern(`${base}/instances/other-*/vhosts/*`)).toEqual([]);
      expect(normalizeResourcePattern(`${base}/instances/other-*`)).toEqual([]);
      expect(covers(`${base}/instances/other-*`, `${AMQP}/vhosts/v1`)).toBe(false);
    });

    it("follows the configured instance", () => {
      const opts = { amqpInstanceId: "amqp-prod" };
      expect(normalizeResourcePattern(`${base}/instances/amqp-prod/vhosts/v1`, opts)).toEqual([
        `${base}/vhosts/v1`,
      ]);
      expect(normalizeResourcePattern(`${base}/instances/amqp-local/vhosts/v1`, opts)).toEqual([]);
    });

    it("a wildcard id covers our instance", () => {
      for (const id of ["amqp-*", "*", "amqp-?ocal"]) {
        const p = `${base}/instances/${id}/vhosts/v1`;
        expect(covers(p, `${AMQP}/vhosts/v1`), p).toBe(true);
        expect(covers(p, `${AMQP}/vhosts/v2`), p).toBe(false);
      }
      expect(covers(`${base}/instances/*`, `${AMQP}/vhosts/v1/queues/q/messages/*`)).toBe(true);
      expect(covers(`${base}/instances/amqp-local*`, `${AMQP}/vhosts/v2`)).toBe(true);
    });
  });
});
