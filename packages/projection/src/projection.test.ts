/**
 * The Projection: authorization through every grant source (SPEC §2–3),
 * revocation by every event that can take a permission away (each asked first
 * so the cached decision is warm), root and cross-account rules, console
 * grants in both modes (seed 003), AccessKey resolution, and `apply` itself.
 */
import { CURRENT_SCHEMA_VERSION, EventValidationError, newEvent } from "@portcullis/events";
import { describe, expect, it } from "vitest";
import {
  accountCreated,
  allow,
  attached,
  defaultVersionSet,
  deny,
  detached,
  doc,
  given,
  givenWith,
  grantAdded,
  grantRemoved,
  groupCreated,
  groupDeleted,
  instance,
  keyCreated,
  keyDeleted,
  keyStatus,
  policyCreated,
  policyDeleted,
  policyVersionCreated,
  root,
  toGroup,
  topic,
  toUser,
  user,
  userAddedToGroup,
  userCreated,
  userDeleted,
  userDisabled,
  userEnabled,
  userRemovedFromGroup,
} from "../test/given.ts";
import { ACCT, ev, NOWHERE, OTHER, Recorder } from "../test/log.ts";
import { noneAffected, Projection } from "./mod.ts";

const PUB = "mq:PUB";
const SUB = "mq:SUB";
const CONNECT = "mq:MqttInstanceAccess";
const alice = user("u1");
const setup = [accountCreated(), userCreated("u1", "alice")];

describe("authorize: where permissions come from", () => {
  it("a custom policy attached to the user", () => {
    const s = given(...setup, policyCreated("pub-a", doc(allow(PUB, `acs:mq:*:${ACCT}:topic/i1/a`))));
    expect(s.decide(alice, PUB, topic("a")).decision).toBe("ImplicitDeny");
    s.when(attached("pub-a", toUser("u1")));
    const d = s.decide(alice, PUB, topic("a/b"));
    expect(d).toMatchObject({ decision: "Allow", reason: "statement" });
    expect(d.decidingStatements).toEqual([
      { policy: "pub-a", policyType: "Custom", version: "v1", statement: 0, effect: "Allow" },
    ]);
    expect(s.decide(alice, SUB, topic("a")).decision).toBe("ImplicitDeny");
    expect(s.decide(alice, PUB, topic("b")).decision).toBe("ImplicitDeny");
  });

  it("a policy attached to a group the user is in", () => {
    const s = given(
      ...setup,
      groupCreated("g1"),
      policyCreated("p", doc(allow(SUB))),
      attached("p", toGroup("g1")),
    );
    expect(s.decide(alice, SUB, topic("a")).decision).toBe("ImplicitDeny");
    s.when(userAddedToGroup("u1", "g1"));
    expect(s.decide(alice, SUB, topic("a")).decision).toBe("Allow");
  });

  it("system policies (SPEC §4.1): PubOnly gives PUB and CONNECT but not SUB", () => {
    const s = given(...setup, attached("AliyunMQPubOnlyAccess", toUser("u1"), "System"));
    expect(s.decide(alice, PUB, topic("a")).decidingStatements[0]).toMatchObject({
      policy: "AliyunMQPubOnlyAccess",
      policyType: "System",
      version: "v1",
    });
    expect(s.decide(alice, CONNECT, instance()).decision).toBe("Allow");
    expect(s.decide(alice, SUB, topic("a")).decision).toBe("ImplicitDeny");
  });

  it("console grants (seed 003): the topic and its sub-topics, and access to the instance", () => {
    const s = given(...setup, grantAdded("u1", "a", ["PUB"]));
    expect(s.decide(alice, PUB, topic("a")).decision).toBe("Allow");
    expect(s.decide(alice, PUB, topic("a/x/y")).decision).toBe("Allow");
    expect(s.decide(alice, PUB, topic("a")).decidingStatements[0]!.policyType).toBe("ConsoleGrant");
    expect(s.decide(alice, CONNECT, instance("i1")).decision).toBe("Allow");
    expect(s.decide(alice, CONNECT, instance("i2")).decision).toBe("ImplicitDeny");
    expect(s.decide(alice, SUB, topic("a")).decision).toBe("ImplicitDeny");
    expect(s.decide(alice, PUB, topic("ab")).decision).toBe("ImplicitDeny");
    expect(s.decide(alice, PUB, topic("a", "i2")).decision).toBe("ImplicitDeny");
  });

  it("the same policy through the user and a group decides once", () => {
    const s = given(
      ...setup,
      groupCreated("g1"),
      userAddedToGroup("u1", "g1"),
      policyCreated("p", doc(allow(PUB))),
      attached("p", toUser("u1")),
      attached("p", toGroup("g1")),
    );
    expect(s.decide(alice, PUB, topic("a")).decidingStatements).toHaveLength(1);
  });

  it("a policy attached before it was created takes effect when it is created", () => {
    const s = given(...setup, attached("later", toUser("u1")));
    expect(s.decide(alice, PUB, topic("a")).decision).toBe("ImplicitDeny");
    s.when(policyCreated("later", doc(allow(PUB))));
    expect(s.decide(alice, PUB, topic("a")).decision).toBe("Allow");
  });

  it("an unknown system policy name grants nothing and does not throw", () => {
    const s = given(...setup, attached("AliyunNoSuchPolicy", toUser("u1"), "System"));
    expect(s.decide(alice, PUB, topic("a")).decision).toBe("ImplicitDeny");
  });

  it("a message names the user for a denial", () => {
    const s = given(...setup);
    expect(s.decide(alice, PUB, topic("a")).message).toContain("user `alice`");
    s.when(ev("UserUpdated", { userId: "u1", newUserName: "alicia" }));
    expect(s.decide(alice, PUB, topic("a")).message).toContain("user `alicia`");
  });
});

describe("authorize: revocation (each asked before, so the cached decision was Allow)", () => {
  const granted = [
    ...setup,
    groupCreated("g1"),
    policyCreated("p", doc(allow([PUB, CONNECT]))),
    attached("p", toUser("u1")),
  ];
  const revoked = (
    before: Parameters<typeof given>,
    revoke: Parameters<typeof given>,
    expected: { decision: string; reason?: string },
  ) => {
    const s = given(...before);
    expect(s.decide(alice, PUB, topic("a")).decision).toBe("Allow");
    expect(s.decide(alice, CONNECT, instance()).decision).toBe("Allow");
    s.when(...revoke);
    expect(s.decide(alice, PUB, topic("a"))).toMatchObject(expected);
    return s;
  };

  it("policy detached from the user", () => {
    revoked(granted, [detached("p", toUser("u1"))], { decision: "ImplicitDeny", reason: "no-match" });
  });

  it("policy detached from the group", () => {
    revoked(
      [
        ...setup,
        groupCreated("g1"),
        userAddedToGroup("u1", "g1"),
        policyCreated("p", doc(allow(PUB, "*"), allow(CONNECT))),
        attached("p", toGroup("g1")),
      ],
      [detached("p", toGroup("g1"))],
      { decision: "ImplicitDeny" },
    );
  });

  it("a Deny statement added by a new default version", () => {
    const s = revoked(
      granted,
      [policyVersionCreated("p", "v2", doc(allow([PUB, CONNECT]), deny(PUB)), true)],
      {
        decision: "ExplicitDeny",
        reason: "statement",
      },
    );
    expect(s.decide(alice, PUB, topic("a")).decidingStatements).toEqual([
      { policy: "p", policyType: "Custom", version: "v2", statement: 1, effect: "Deny" },
    ]);
    expect(s.decide(alice, CONNECT, instance()).decision).toBe("Allow");
  });

  it("a Deny in a new version that is NOT made default changes nothing", () => {
    const s = given(...granted);
    expect(s.decide(alice, PUB, topic("a")).decision).toBe("Allow");
    s.when(policyVersionCreated("p", "v2", doc(deny(PUB)), false));
    expect(s.decide(alice, PUB, topic("a")).decision).toBe("Allow");
  });

  it("a Deny in another policy attached to a group of the user", () => {
    revoked(
      [...granted, policyCreated("nopub", doc(deny(PUB))), attached("nopub", toGroup("g1"))],
      [userAddedToGroup("u1", "g1")],
      { decision: "ExplicitDeny" },
    );
  });

  it("group membership removed", () => {
    revoked(
      [
        ...setup,
        groupCreated("g1"),
        userAddedToGroup("u1", "g1"),
        policyCreated("p", doc(allow([PUB, CONNECT]))),
        attached("p", toGroup("g1")),
      ],
      [userRemovedFromGroup("u1", "g1")],
      { decision: "ImplicitDeny" },
    );
  });

  it("group deleted", () => {
    revoked(
      [
        ...setup,
        groupCreated("g1"),
        userAddedToGroup("u1", "g1"),
        policyCreated("p", doc(allow([PUB, CONNECT]))),
        attached("p", toGroup("g1")),
      ],
      [groupDeleted("g1")],
      { decision: "ImplicitDeny" },
    );
  });

  it("default version changed back to one that does not allow", () => {
    revoked(
      [
        ...setup,
        policyCreated("p", doc(allow(SUB))),
        attached("p", toUser("u1")),
        policyVersionCreated("p", "v2", doc(allow([PUB, CONNECT])), true),
      ],
      [defaultVersionSet("p", "v1")],
      { decision: "ImplicitDeny" },
    );
  });

  it("policy deleted", () => {
    revoked(granted, [policyDeleted("p")], { decision: "ImplicitDeny" });
  });

  it("console grant removed", () => {
    revoked([...setup, grantAdded("u1", "a", ["PUB", "SUB"])], [grantRemoved("u1", "a", ["PUB"])], {
      decision: "ImplicitDeny",
    });
  });

  it("user disabled → ImplicitDeny `principal-inactive`; enabled again → allowed again", () => {
    const s = revoked(granted, [userDisabled("u1")], {
      decision: "ImplicitDeny",
      reason: "principal-inactive",
    });
    expect(s.decide(alice, CONNECT, instance())).toMatchObject({
      decision: "ImplicitDeny",
      reason: "principal-inactive",
      decidingStatements: [],
    });
    expect(s.decide(alice, PUB, topic("a")).message).toMatch(/user `alice`.*does not exist or is disabled/);
    expect(s.projection.isActive(alice)).toBe(false);
    s.when(userEnabled("u1"));
    expect(s.decide(alice, PUB, topic("a")).decision).toBe("Allow");
  });

  it("user deleted → `principal-inactive`; a new user with the same id starts with nothing", () => {
    const s = revoked(granted, [userDeleted("u1")], {
      decision: "ImplicitDeny",
      reason: "principal-inactive",
    });
    expect(s.projection.isActive(alice)).toBe(false);
    s.when(userCreated("u1", "alice"));
    expect(s.decide(alice, PUB, topic("a"))).toMatchObject({ decision: "ImplicitDeny", reason: "no-match" });
  });
});

describe("AccessKeys: resolveAccessKey", () => {
  const keys = [...setup, accountCreated(OTHER), keyCreated("AK1", "u1"), keyCreated("AKR", "root")];

  it("resolves a user's key (with its user name) and a root key", () => {
    const p = given(...keys).projection;
    expect(p.resolveAccessKey("AK1")).toMatchObject({ principal: alice, userName: "alice", usable: true });
    expect(p.resolveAccessKey("AKR")).toMatchObject({ principal: root(), usable: true });
    expect(p.resolveAccessKey("AKR")!.userName).toBeUndefined();
    expect(p.resolveAccessKey("nope")).toBeUndefined();
  });

  it("deactivated → not usable; activated → usable again", () => {
    const s = given(...keys);
    s.when(keyStatus("AK1", "Inactive"), keyStatus("AKR", "Inactive"));
    expect(s.projection.resolveAccessKey("AK1")!.usable).toBe(false);
    expect(s.projection.resolveAccessKey("AKR")!.usable).toBe(false);
    s.when(keyStatus("AK1", "Active"));
    expect(s.projection.resolveAccessKey("AK1")!.usable).toBe(true);
  });

  it("deleted → undefined", () => {
    const s = given(...keys);
    s.when(keyDeleted("AK1"), keyDeleted("AKR"));
    expect(s.projection.resolveAccessKey("AK1")).toBeUndefined();
    expect(s.projection.resolveAccessKey("AKR")).toBeUndefined();
  });

  it("owner disabled → not usable; owner deleted → undefined", () => {
    const s = given(...keys);
    s.when(userDisabled("u1"));
    expect(s.projection.resolveAccessKey("AK1")!.usable).toBe(false);
    s.when(userDeleted("u1"));
    expect(s.projection.resolveAccessKey("AK1")).toBeUndefined();
  });

  it("a key status change from another account's stream does nothing", () => {
    const s = given(...keys);
    s.when(keyStatus("AK1", "Inactive", OTHER), keyDeleted("AKR", OTHER));
    expect(s.projection.resolveAccessKey("AK1")!.usable).toBe(true);
    expect(s.projection.resolveAccessKey("AKR")!.usable).toBe(true);
  });
});

describe("root and cross-account (SPEC §2)", () => {
  const world = [
    ...setup,
    accountCreated(OTHER),
    userCreated("x1", "xavier", OTHER),
    // A policy of OTHER that names ACCT's resources, and one of ACCT naming everything.
    policyCreated("all", doc(allow("*", "*")), OTHER),
    policyCreated("acct-all", doc(allow("mq:*", `acs:mq:*:${ACCT}:*`)), OTHER),
    attached("all", toUser("x1"), "Custom", OTHER),
    attached("acct-all", toUser("x1"), "Custom", OTHER),
    policyCreated("all", doc(allow("*", "*"), allow("*", `acs:mq:*:${OTHER}:*`))),
    attached("all", toUser("u1")),
    attached("AliyunMQFullAccess", toUser("u1"), "System"),
  ];

  it("root is always allowed on its own account, whatever the policies", () => {
    const s = given(...world, policyCreated("deny-all", doc(deny("*", "*"))));
    for (const [a, r] of [
      [PUB, topic("a")],
      [SUB, topic("x/y", "i9")],
      [CONNECT, instance("i7")],
      ["amqp:BasicPublish", `acs:amqp:local:${ACCT}:/vhosts/v/exchanges/e/messages/k`],
      ["ram:DeleteUser", `acs:ram:*:${ACCT}:user/alice`],
    ] as const) {
      expect(s.decide(root(), a, r)).toMatchObject({ decision: "Allow", reason: "root" });
    }
  });

  it("root is never allowed on another account", () => {
    const s = given(...world);
    expect(s.decide(root(), PUB, topic("a", "i1", OTHER))).toMatchObject({
      decision: "ImplicitDeny",
      reason: "cross-account",
    });
    expect(s.decide(root(OTHER), SUB, topic("a"))).toMatchObject({
      decision: "ImplicitDeny",
      reason: "cross-account",
    });
  });

  it("the root of an account that does not exist is inactive", () => {
    const s = given(...world);
    expect(s.decide(root(NOWHERE), PUB, topic("a", "i1", NOWHERE))).toMatchObject({
      decision: "ImplicitDeny",
      reason: "principal-inactive",
    });
  });

  it("users are never allowed on another account's resources, whatever their policies say", () => {
    const s = given(...world);
    expect(s.decide(alice, PUB, topic("a")).decision).toBe("Allow");
    for (const [a, r] of [
      [PUB, topic("a", "i1", OTHER)],
      [CONNECT, instance("i1", OTHER)],
    ] as const) {
      expect(s.decide(alice, a, r)).toMatchObject({ decision: "ImplicitDeny", reason: "cross-account" });
    }
    const xavier = user("x1", OTHER);
    expect(s.decide(xavier, PUB, topic("a", "i1", OTHER)).decision).toBe("Allow");
    expect(s.decide(xavier, PUB, topic("a"))).toMatchObject({
      decision: "ImplicitDeny",
      reason: "cross-account",
    });
  });

  it("a user id of one account means nothing in another", () => {
    const s = given(...world);
    expect(s.decide(user("u1", OTHER), PUB, topic("a", "i1", OTHER))).toMatchObject({
      decision: "ImplicitDeny",
      reason: "principal-inactive",
    });
  });
});

describe("console grants and RAM policies (seed 003, SPEC §2 deviation)", () => {
  const denyPub = [
    ...setup,
    policyCreated("nopub", doc(deny(PUB, `acs:mq:*:${ACCT}:topic/i1/a`))),
    attached("nopub", toUser("u1")),
  ];

  it("seed 003: a permission exists if RAM policies or console grants give it (deny-wins, the default)", () => {
    const ram = given(...setup, policyCreated("p", doc(allow(PUB))), attached("p", toUser("u1")));
    expect(ram.decide(alice, PUB, topic("a")).decision).toBe("Allow");
    const console = given(...setup, grantAdded("u1", "a", ["PUB"]));
    expect(console.decide(alice, PUB, topic("a")).decision).toBe("Allow");
  });

  it("seed 003: a permission exists if RAM policies or console grants give it (union)", () => {
    // Union consults the grants whenever RAM does not allow (ImplicitDeny as well as ExplicitDeny):
    // a user whose only permission is a console grant has it.
    const ram = givenWith(
      { consoleGrants: "union" },
      ...setup,
      policyCreated("p", doc(allow(PUB))),
      attached("p", toUser("u1")),
    );
    expect(ram.decide(alice, PUB, topic("a")).decision).toBe("Allow");
    const console = givenWith({ consoleGrants: "union" }, ...setup, grantAdded("u1", "a", ["PUB"]));
    expect(console.decide(alice, PUB, topic("a")).decision).toBe("Allow");
    expect(console.decide(alice, CONNECT, instance()).decision).toBe("Allow");
  });

  it("deny-wins (default): an explicit RAM Deny beats a console grant", () => {
    const s = given(...denyPub, grantAdded("u1", "a", ["PUB"]));
    const d = s.decide(alice, PUB, topic("a/x"));
    expect(d.decision).toBe("ExplicitDeny");
    expect(d.decidingStatements.map((x) => x.policy)).toEqual(["nopub"]);
    expect(
      givenWith({ consoleGrants: "deny-wins" }, ...denyPub, grantAdded("u1", "a", ["PUB"])).decide(
        alice,
        PUB,
        topic("a"),
      ).decision,
    ).toBe("ExplicitDeny");
  });

  it("union: a console grant allows over an explicit RAM Deny", () => {
    const s = givenWith({ consoleGrants: "union" }, ...denyPub);
    expect(s.decide(alice, PUB, topic("a")).decision).toBe("ExplicitDeny");
    s.when(grantAdded("u1", "a", ["PUB"]));
    const d = s.decide(alice, PUB, topic("a"));
    expect(d.decision).toBe("Allow");
    expect(d.decidingStatements[0]!.policyType).toBe("ConsoleGrant");
    // The grant does not reach what it does not name.
    expect(s.decide(alice, SUB, topic("a")).decision).toBe("ImplicitDeny");
  });

  it("union: removing the grant brings the Deny back", () => {
    const s = givenWith({ consoleGrants: "union" }, ...denyPub, grantAdded("u1", "a", ["PUB"]));
    expect(s.decide(alice, PUB, topic("a")).decision).toBe("Allow");
    s.when(grantRemoved("u1", "a", ["PUB"]));
    expect(s.decide(alice, PUB, topic("a")).decision).toBe("ExplicitDeny");
  });
});

describe("policy documents as written (SPEC §3)", () => {
  it("a document in shorthand form (one Statement object, single strings) authorizes like its normal form", () => {
    // Documents are stored as written (the event schema validates but does not normalise), so the
    // projection normalises before compiling (this threw `doc.Statement.map is not a function`).
    const s = given(
      ...setup,
      policyCreated("short", { Version: "1", Statement: { Effect: "Allow", Action: PUB, Resource: "*" } }),
      attached("short", toUser("u1")),
    );
    expect(s.projection.authorize(alice, PUB, topic("a")).decision).toBe("Allow");
  });

  it("single-string Action and Resource inside a Statement array authorize like arrays", () => {
    // Same cause as above (compileStatement called `.map` on the string `Action`).
    const s = given(
      ...setup,
      policyCreated("short", { Version: "1", Statement: [{ Effect: "Allow", Action: PUB, Resource: "*" }] }),
      attached("short", toUser("u1")),
    );
    expect(s.projection.authorize(alice, PUB, topic("a")).decision).toBe("Allow");
  });

  it("single-value conditions work as written", () => {
    const s = given(
      ...setup,
      policyCreated("tls", {
        Version: "1",
        Statement: [
          {
            Effect: "Allow",
            Action: [PUB],
            Resource: ["*"],
            Condition: { Bool: { "acs:SecureTransport": true } },
          },
        ],
      }),
      attached("tls", toUser("u1")),
    );
    expect(s.decide(alice, PUB, topic("a"), { "acs:SecureTransport": true }).decision).toBe("Allow");
    expect(s.decide(alice, PUB, topic("a"), { "acs:SecureTransport": false }).decision).toBe("ImplicitDeny");
    expect(s.decide(alice, PUB, topic("a")).missingContextKeys).toEqual(["acs:SecureTransport"]);
  });
});

describe("robustness: valid events a decider should never write (each accepted by validation today)", () => {
  it("a version that reuses the default's id does not leave the live projection deciding on the old document", () => {
    // Incoherent input: PolicyVersionCreated with setAsDefault=false and the versionId of the current
    // default overwrites the default's document. The log is the truth, so the live projection must
    // decide on the new document, as a replay of the same log does (SPEC §8 verify): evolve reports the
    // policy and its users as affected, and authorizeUncached compiles afresh.
    const events = [...setup, policyCreated("p", doc(allow(PUB))), attached("p", toUser("u1"))];
    const s = given(...events);
    expect(s.decide(alice, PUB, topic("a")).decision).toBe("Allow");
    s.when(policyVersionCreated("p", "v1", doc(deny(PUB)), false));
    const fresh = Projection.fromSnapshot(s.projection.snapshot());
    expect(fresh.authorize(alice, PUB, topic("a")).decision).toBe("ExplicitDeny");
    expect(s.projection.authorizeUncached(alice, PUB, topic("a")).decision).toBe(
      fresh.authorize(alice, PUB, topic("a")).decision,
    );
  });

  it("an AccessKeyCreated reusing another account's AccessKey id does not take the key over", () => {
    // AccessKey ids are global (state.accessKeys) but streams are per account, so optimistic concurrency
    // cannot rule out an AccessKeyCreated in OTHER's stream reusing ACCT's id: the existing key wins.
    const s = given(...setup, accountCreated(OTHER), keyCreated("AK1", "u1"));
    s.when(keyCreated("AK1", "root", OTHER));
    expect(s.projection.resolveAccessKey("AK1")?.principal).toEqual(alice);
  });

  it("an event of an account that was never created does not bring its root to life", () => {
    // Only AccountCreated makes an account exist: an event that changes nothing (here a status change of
    // an unknown key) must not create it (its root would then be Allowed everything on it).
    const s = given(keyStatus("AK-none", "Inactive", OTHER));
    expect(s.projection.account(OTHER)).toBeUndefined();
    expect(s.decide(root(OTHER), PUB, topic("a", "i1", OTHER)).reason).toBe("principal-inactive");
  });

  it("a console grant on a topic whose name holds `*` grants that topic, not a pattern", () => {
    // `a*` is a legal MQTT topic name and the event schema accepts any name: the projection matches
    // grant topics literally (it used to paste them into a RAM pattern, granting every `a…` topic).
    const s = given(...setup, grantAdded("u1", "a*", ["PUB"]));
    expect(s.decide(alice, PUB, topic("a*")).decision).toBe("Allow");
    expect(s.decide(alice, PUB, topic("ab/c")).decision).toBe("ImplicitDeny");
  });

  it("a console grant on a topic holding `?`, or on an instance holding `*`, is literal too", () => {
    const s = given(...setup, grantAdded("u1", "a?c", ["SUB"]), grantAdded("u1", "t", ["PUB"], "i*"));
    expect(s.decide(alice, SUB, topic("a?c")).decision).toBe("Allow");
    expect(s.decide(alice, SUB, topic("a?c/d")).decision).toBe("Allow");
    expect(s.decide(alice, SUB, topic("abc")).decision).toBe("ImplicitDeny");
    expect(s.decide(alice, PUB, topic("t", "i*")).decision).toBe("Allow");
    expect(s.decide(alice, PUB, topic("t", "i1")).decision).toBe("ImplicitDeny");
    expect(s.decide(alice, CONNECT, instance("i*")).decision).toBe("Allow");
    expect(s.decide(alice, CONNECT, instance("i2")).decision).toBe("ImplicitDeny");
  });

  it("many console grants (the policy set indexes them by resource) still match exactly", () => {
    const topics = Array.from({ length: 20 }, (_, i) => `t${i}*`);
    const s = given(...setup, ...topics.map((t) => grantAdded("u1", t, ["PUB"])));
    for (const t of topics) {
      expect(s.decide(alice, PUB, topic(t)).decision).toBe("Allow");
      expect(s.decide(alice, PUB, topic(`${t}/x/y`)).decision).toBe("Allow");
    }
    expect(s.decide(alice, PUB, topic("t1")).decision).toBe("ImplicitDeny");
    expect(s.decide(alice, PUB, topic("t1x")).decision).toBe("ImplicitDeny");
    expect(s.decide(alice, PUB, topic("t1*x")).decision).toBe("ImplicitDeny");
  });

  it("an AccessKeyCreated reusing an id of the same account does not move the key to another owner", () => {
    const s = given(...setup, userCreated("u2", "bob"), keyCreated("AK1", "u1"));
    s.when(keyCreated("AK1", "u2"), keyCreated("AK1", "root"));
    expect(s.projection.resolveAccessKey("AK1")?.principal).toEqual(alice);
    expect(s.projection.account(ACCT)!.users.get("u2")!.accessKeys.size).toBe(0);
  });

  it("a UserCreated for an existing user id changes nothing (the user keeps its groups, policies and keys)", () => {
    const s = given(
      ...setup,
      groupCreated("g1"),
      userAddedToGroup("u1", "g1"),
      policyCreated("p", doc(allow(PUB))),
      attached("p", toGroup("g1")),
      keyCreated("AK1", "u1"),
    );
    expect(s.decide(alice, PUB, topic("a")).decision).toBe("Allow");
    const { affected } = s.when(userCreated("u1", "alice2"));
    expect(affected).toEqual(noneAffected());
    expect(s.projection.userByName(ACCT, "alice2")).toBeUndefined();
    expect(s.decide(alice, PUB, topic("a")).decision).toBe("Allow");
    expect(s.projection.resolveAccessKey("AK1")?.userName).toBe("alice");
  });

  it("a GroupCreated for an existing group id changes nothing, so a Deny attached to it reaches its members", () => {
    // Re-creating the group empty would leave u1 listing it while it no longer lists u1: a Deny attached
    // afterwards would then not invalidate u1's cached Allow.
    const s = given(
      ...setup,
      groupCreated("g1"),
      userAddedToGroup("u1", "g1"),
      policyCreated("p", doc(allow(PUB))),
      attached("p", toUser("u1")),
    );
    expect(s.decide(alice, PUB, topic("a")).decision).toBe("Allow");
    s.when(
      groupCreated("g1", "again"),
      policyCreated("nopub", doc(deny(PUB))),
      attached("nopub", toGroup("g1")),
    );
    expect(s.decide(alice, PUB, topic("a")).decision).toBe("ExplicitDeny");
    expect(s.projection.account(ACCT)!.groups.get("g1")!.groupName).toBe("g1");
  });

  it("deleting or renaming a user whose login name another user took keeps the other's name", () => {
    const s = given(...setup, userCreated("u2", "alice"));
    expect(s.projection.userByName(ACCT, "alice")?.userId).toBe("u2");
    s.when(userDeleted("u1"));
    expect(s.projection.userByName(ACCT, "alice")?.userId).toBe("u2");
    const t = given(...setup, userCreated("u2", "alice"));
    t.when(ev("UserUpdated", { userId: "u1", newUserName: "alicia" }));
    expect(t.projection.userByName(ACCT, "alice")?.userId).toBe("u2");
    expect(t.projection.userByName(ACCT, "alicia")?.userId).toBe("u1");
  });

  it("with validate: false, a document that does not validate fails closed (denies, naming the policy)", () => {
    const s = givenWith(
      { validate: false },
      ...setup,
      policyCreated("p", doc(allow(PUB))),
      policyCreated("broken", { Version: "1", Statement: [{ Effect: "Deny", Action: ["mq:PUB"] }] }),
      attached("p", toUser("u1")),
      attached("broken", toUser("u1")),
    );
    const d = s.decide(alice, PUB, topic("a"));
    expect(d.decision).toBe("ExplicitDeny");
    expect(d.decidingStatements.map((x) => x.policy)).toEqual(["broken"]);
  });
});

describe("apply", () => {
  it("ignores an event at or below the current position", () => {
    const rec = new Recorder();
    const events = rec.recordAll([
      ...setup,
      policyCreated("p", doc(allow(PUB))),
      attached("p", toUser("u1")),
    ]);
    const p = new Projection();
    for (const e of events) p.apply(e);
    const before = JSON.stringify(p.snapshot());
    const revoke = { ...rec.record(detached("p", toUser("u1"))), position: 4 };
    expect(p.apply(revoke)).toEqual(noneAffected());
    expect(p.apply(events[0]!)).toEqual(noneAffected());
    expect(JSON.stringify(p.snapshot())).toBe(before);
    expect(p.authorize(alice, PUB, topic("a")).decision).toBe("Allow");
  });

  it("validates events: an invalid one throws EventValidationError and is not applied", () => {
    const p = new Projection();
    const rec = new Recorder();
    p.apply(rec.record(accountCreated()));
    const bad = rec.record(ev("UserCreated", { userId: "", userName: "x" }));
    expect(() => p.apply(bad)).toThrow(EventValidationError);
    expect(p.position).toBe(1);
    expect(p.account(ACCT)!.users.size).toBe(0);
  });

  it("upcasts old schema versions: a v1 console grant `PUB+SUB` gives both", () => {
    const rec = new Recorder();
    const p = new Projection();
    for (const e of setup) p.apply(rec.record(e));
    expect(CURRENT_SCHEMA_VERSION.ConsoleGrantAdded).toBe(2);
    const v1 = newEvent(
      "ConsoleGrantAdded",
      1,
      ACCT,
      { kind: "root", accountId: ACCT },
      {
        userId: "u1",
        instanceId: "i1",
        topic: "a",
        perm: "PUB+SUB",
      },
    );
    p.apply(rec.record(v1));
    expect(p.authorize(alice, PUB, topic("a")).decision).toBe("Allow");
    expect(p.authorize(alice, SUB, topic("a")).decision).toBe("Allow");
  });

  it("with validate: false, applies events as given", () => {
    const p = new Projection({ validate: false });
    const rec = new Recorder();
    for (const e of setup) p.apply(rec.record(e));
    expect(p.userByName(ACCT, "alice")?.userId).toBe("u1");
  });

  it("the cached decision object is shared until something about the principal changes", () => {
    const s = given(
      ...setup,
      policyCreated("p", doc(allow(PUB))),
      attached("p", toUser("u1")),
      userCreated("u2"),
    );
    const d = s.projection.authorize(alice, PUB, topic("a"));
    expect(Object.isFrozen(d)).toBe(true);
    s.when(userDisabled("u2")); // another user: alice's cache stays
    expect(s.projection.authorize(alice, PUB, topic("a"))).toBe(d);
    s.when(attached("AliyunMQSubOnlyAccess", toUser("u1"), "System"));
    expect(s.projection.authorize(alice, PUB, topic("a"))).not.toBe(d);
  });
});
