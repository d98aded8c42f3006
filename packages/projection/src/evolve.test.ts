/**
 * `evolve` over the SPEC §5 catalog: each event type changes the state as SPEC
 * §2 says, and reports what it affected (`Affected`) — exactly the principals
 * whose decisions could change.
 */
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
  grantAdded,
  grantRemoved,
  groupCreated,
  groupDeleted,
  keyCreated,
  keyDeleted,
  keyStatus,
  policyCreated,
  policyDeleted,
  policyVersionCreated,
  policyVersionDeleted,
  toGroup,
  toUser,
  userAddedToGroup,
  userCreated,
  userDeleted,
  userDisabled,
  userEnabled,
  userRemovedFromGroup,
} from "../test/given.ts";
import { ACCT, ev, OTHER, recorded } from "../test/log.ts";
import { evolve, initialState, noneAffected, usersWithPolicy } from "./mod.ts";

const PUB = doc(allow("mq:PUB"));
const set = <T>(...xs: T[]) => new Set(xs);
const u = (id: string, acct = ACCT) => `${acct}/${id}`;

describe("evolve: each event of the catalog", () => {
  it("AccountCreated names the account and touches its root", () => {
    given()
      .when(accountCreated(ACCT, "acme"))
      .then(({ projection: p, affected }) => {
        expect(p.account(ACCT)?.alias).toBe("acme");
        expect(affected.principals).toEqual(set(ACCT));
        expect(p.position).toBe(1);
      });
  });

  it("UserCreated adds an enabled user with no groups, policies, keys or grants", () => {
    given(accountCreated())
      .when(ev("UserCreated", { userId: "u1", userName: "alice", displayName: "Alice" }))
      .then(({ projection: p, affected }) => {
        const user = p.userByName(ACCT, "alice")!;
        expect(user).toMatchObject({
          userId: "u1",
          userName: "alice",
          displayName: "Alice",
          disabled: false,
        });
        expect([user.groups.size, user.policies.size, user.accessKeys.size, user.consoleGrants.size]).toEqual(
          [0, 0, 0, 0],
        );
        expect(affected.principals).toEqual(set(u("u1")));
      });
  });

  it("UserUpdated renames (the old login name is free again) and sets the display name", () => {
    given(accountCreated(), userCreated("u1", "alice"))
      .when(ev("UserUpdated", { userId: "u1", newUserName: "alicia", displayName: "A." }))
      .then(({ projection: p, affected }) => {
        expect(p.userByName(ACCT, "alice")).toBeUndefined();
        expect(p.userByName(ACCT, "alicia")).toMatchObject({ userId: "u1", displayName: "A." });
        expect(affected.principals).toEqual(set(u("u1")));
      });
  });

  it("UserDisabled / UserEnabled flip the flag and touch the user and its keys", () => {
    const s = given(accountCreated(), userCreated("u1"), keyCreated("AK1", "u1"));
    s.when(userDisabled("u1")).then(({ projection: p, affected }) => {
      expect(p.account(ACCT)!.users.get("u1")!.disabled).toBe(true);
      expect(affected.principals).toEqual(set(u("u1")));
      expect(affected.accessKeys).toEqual(set("AK1"));
    });
    s.when(userEnabled("u1")).then(({ projection: p, affected }) => {
      expect(p.account(ACCT)!.users.get("u1")!.disabled).toBe(false);
      expect(affected.accessKeys).toEqual(set("AK1"));
    });
  });

  it("UserDeleted removes the user, its login name, its keys and its group memberships", () => {
    given(
      accountCreated(),
      userCreated("u1", "alice"),
      groupCreated("g1"),
      userAddedToGroup("u1", "g1"),
      keyCreated("AK1", "u1"),
      keyCreated("AK2", "u1"),
    )
      .when(userDeleted("u1"))
      .then(({ projection: p, affected }) => {
        const a = p.account(ACCT)!;
        expect(a.users.has("u1")).toBe(false);
        expect(p.userByName(ACCT, "alice")).toBeUndefined();
        expect(a.groups.get("g1")!.members.size).toBe(0);
        expect(p.state.accessKeys.size).toBe(0);
        expect(a.accessKeys.size).toBe(0);
        expect(affected.principals).toEqual(set(u("u1")));
        expect(affected.accessKeys).toEqual(set("AK1", "AK2"));
      });
  });

  it("AccessKeyCreated records an Active key of a user or of the root, secret sealed", () => {
    given(accountCreated(), userCreated("u1"))
      .when(keyCreated("AK1", "u1"), keyCreated("AKR", "root"))
      .then(({ projection: p, each }) => {
        expect(p.state.accessKeys.get("AK1")).toMatchObject({
          owner: { accountId: ACCT, kind: "user", userId: "u1" },
          status: "Active",
          secret: { alg: "AES-256-GCM" },
        });
        expect(p.state.accessKeys.get("AKR")!.owner).toEqual({ accountId: ACCT, kind: "root" });
        expect(p.account(ACCT)!.users.get("u1")!.accessKeys).toEqual(set("AK1"));
        expect(p.account(ACCT)!.accessKeys).toEqual(set("AK1", "AKR"));
        expect(each.map((a) => [...a.principals])).toEqual([[u("u1")], [ACCT]]);
        expect(each.map((a) => [...a.accessKeys])).toEqual([["AK1"], ["AKR"]]);
      });
  });

  it("AccessKeyCreated for a user that does not exist changes nothing", () => {
    given(accountCreated())
      .when(keyCreated("AK1", "ghost"))
      .then(({ projection: p, affected }) => {
        expect(p.state.accessKeys.size).toBe(0);
        expect(affected).toEqual(noneAffected());
        expect(p.position).toBe(2);
      });
  });

  it("AccessKeyStatusChanged and AccessKeyDeleted act only on keys of the event's account", () => {
    const s = given(
      accountCreated(),
      accountCreated(OTHER),
      userCreated("u1"),
      keyCreated("AK1", "u1"),
      keyCreated("AKO", "root", OTHER),
    );
    s.when(keyStatus("AK1", "Inactive"), keyStatus("AKO", "Inactive"), keyDeleted("AKO")).then(
      ({ projection: p, each }) => {
        expect(p.state.accessKeys.get("AK1")!.status).toBe("Inactive");
        expect(each[0]!.accessKeys).toEqual(set("AK1"));
        expect(each[0]!.principals).toEqual(set(u("u1")));
        // AKO belongs to OTHER: an event in ACCT's stream cannot touch it.
        expect(p.state.accessKeys.get("AKO")!.status).toBe("Active");
        expect(each[1]).toEqual(noneAffected());
        expect(each[2]).toEqual(noneAffected());
      },
    );
    s.when(keyDeleted("AK1")).then(({ projection: p, affected }) => {
      expect(p.state.accessKeys.has("AK1")).toBe(false);
      expect(p.account(ACCT)!.users.get("u1")!.accessKeys.size).toBe(0);
      expect(affected.accessKeys).toEqual(set("AK1"));
      expect(affected.principals).toEqual(set(u("u1")));
    });
  });

  it("GroupCreated adds an empty group (touching nobody); GroupDeleted touches its members", () => {
    const s = given(accountCreated(), userCreated("u1"), userCreated("u2"));
    s.when(ev("GroupCreated", { groupId: "g1", groupName: "ops", comments: "on call" })).then(
      ({ projection: p, affected }) => {
        expect(p.account(ACCT)!.groups.get("g1")).toMatchObject({ groupName: "ops", comments: "on call" });
        expect(p.account(ACCT)!.groupIdsByName.get("ops")).toBe("g1");
        expect(affected.principals.size).toBe(0);
      },
    );
    s.when(userAddedToGroup("u1", "g1"), groupDeleted("g1")).then(({ projection: p, each }) => {
      expect(p.account(ACCT)!.groups.has("g1")).toBe(false);
      expect(p.account(ACCT)!.groupIdsByName.has("ops")).toBe(false);
      expect(p.account(ACCT)!.users.get("u1")!.groups.size).toBe(0);
      expect(each[1]!.principals).toEqual(set(u("u1")));
    });
  });

  it("UserAddedToGroup / UserRemovedFromGroup keep both sides in step and touch the user", () => {
    const s = given(accountCreated(), userCreated("u1"), groupCreated("g1"));
    s.when(userAddedToGroup("u1", "g1")).then(({ projection: p, affected }) => {
      expect(p.account(ACCT)!.users.get("u1")!.groups).toEqual(set("g1"));
      expect(p.account(ACCT)!.groups.get("g1")!.members).toEqual(set("u1"));
      expect(affected.principals).toEqual(set(u("u1")));
    });
    s.when(userRemovedFromGroup("u1", "g1")).then(({ projection: p, affected }) => {
      expect(p.account(ACCT)!.users.get("u1")!.groups.size).toBe(0);
      expect(p.account(ACCT)!.groups.get("g1")!.members.size).toBe(0);
      expect(affected.principals).toEqual(set(u("u1")));
    });
    s.when(userAddedToGroup("u1", "nope"), userAddedToGroup("ghost", "g1")).then(({ affected }) =>
      expect(affected).toEqual(noneAffected()),
    );
  });

  it("PolicyCreated: v1 is the default; users the policy was already attached to are touched", () => {
    given(accountCreated(), userCreated("u1"), attached("p", toUser("u1")))
      .when(ev("PolicyCreated", { policyName: "p", versionId: "v1", document: PUB, description: "pub" }))
      .then(({ projection: p, affected }) => {
        const pol = p.account(ACCT)!.policies.get("p")!;
        expect(pol.defaultVersion).toBe("v1");
        expect(pol.description).toBe("pub");
        expect([...pol.versions.keys()]).toEqual(["v1"]);
        expect(pol.versions.get("v1")!.document).toEqual(PUB);
        expect(affected.policies).toEqual(set(`${ACCT}\u0000p`));
        expect(affected.principals).toEqual(set(u("u1")));
      });
  });

  it("PolicyVersionCreated: a non-default version changes no decision; a default one does", () => {
    const s = given(
      accountCreated(),
      userCreated("u1"),
      policyCreated("p", PUB),
      attached("p", toUser("u1")),
    );
    s.when(policyVersionCreated("p", "v2", doc(allow("mq:SUB")), false)).then(
      ({ projection: p, affected }) => {
        const pol = p.account(ACCT)!.policies.get("p")!;
        expect([...pol.versions.keys()]).toEqual(["v1", "v2"]);
        expect(pol.defaultVersion).toBe("v1");
        expect(affected).toEqual(noneAffected());
      },
    );
    s.when(policyVersionCreated("p", "v3", doc(allow("mq:SUB")), true)).then(
      ({ projection: p, affected }) => {
        expect(p.account(ACCT)!.policies.get("p")!.defaultVersion).toBe("v3");
        expect(affected.policies).toEqual(set(`${ACCT}\u0000p`));
        expect(affected.principals).toEqual(set(u("u1")));
      },
    );
  });

  it("SPEC §2: the 6th version removes the oldest non-default one (`removedVersionId`)", () => {
    given(
      accountCreated(),
      policyCreated("p", PUB),
      policyVersionCreated("p", "v2", PUB, false),
      policyVersionCreated("p", "v3", PUB, false),
      policyVersionCreated("p", "v4", PUB, false),
      policyVersionCreated("p", "v5", PUB, false),
    )
      .when(policyVersionCreated("p", "v6", PUB, false, "v2"))
      .then(({ projection: p }) => {
        const pol = p.account(ACCT)!.policies.get("p")!;
        expect([...pol.versions.keys()]).toEqual(["v1", "v3", "v4", "v5", "v6"]);
        expect(pol.defaultVersion).toBe("v1");
      });
  });

  it("SPEC §2: a `removedVersionId` naming the default version does not remove it", () => {
    given(accountCreated(), policyCreated("p", PUB))
      .when(policyVersionCreated("p", "v2", PUB, false, "v1"))
      .then(({ projection: p }) => {
        const pol = p.account(ACCT)!.policies.get("p")!;
        expect([...pol.versions.keys()]).toEqual(["v1", "v2"]);
        expect(pol.defaultVersion).toBe("v1");
      });
  });

  it("PolicyDefaultVersionSet switches the default (touching every user it reaches); an unknown version is ignored", () => {
    const s = given(
      accountCreated(),
      userCreated("u1"),
      policyCreated("p", PUB),
      policyVersionCreated("p", "v2", PUB, false),
      attached("p", toUser("u1")),
    );
    s.when(defaultVersionSet("p", "v9")).then(({ projection: p, affected }) => {
      expect(p.account(ACCT)!.policies.get("p")!.defaultVersion).toBe("v1");
      expect(affected).toEqual(noneAffected());
    });
    s.when(defaultVersionSet("p", "v2")).then(({ projection: p, affected }) => {
      expect(p.account(ACCT)!.policies.get("p")!.defaultVersion).toBe("v2");
      expect(affected.principals).toEqual(set(u("u1")));
      expect(affected.policies).toEqual(set(`${ACCT}\u0000p`));
    });
  });

  it("SPEC §2: PolicyVersionDeleted removes a non-default version; the default version cannot be deleted", () => {
    const s = given(accountCreated(), policyCreated("p", PUB), policyVersionCreated("p", "v2", PUB, false));
    s.when(policyVersionDeleted("p", "v1")).then(({ projection: p }) => {
      const pol = p.account(ACCT)!.policies.get("p")!;
      expect([...pol.versions.keys()]).toEqual(["v1", "v2"]);
      expect(pol.defaultVersion).toBe("v1");
    });
    s.when(policyVersionDeleted("p", "v2")).then(({ projection: p, affected }) => {
      expect([...p.account(ACCT)!.policies.get("p")!.versions.keys()]).toEqual(["v1"]);
      expect(affected.principals.size).toBe(0);
    });
  });

  it("PolicyDeleted removes the policy and every attachment of it, touching the users it reached", () => {
    given(
      accountCreated(),
      userCreated("u1"),
      userCreated("u2"),
      userCreated("u3"),
      groupCreated("g1"),
      userAddedToGroup("u2", "g1"),
      policyCreated("p", PUB),
      attached("p", toUser("u1")),
      attached("p", toGroup("g1")),
    )
      .when(policyDeleted("p"))
      .then(({ projection: p, affected }) => {
        const a = p.account(ACCT)!;
        expect(a.policies.has("p")).toBe(false);
        expect(a.users.get("u1")!.policies.size).toBe(0);
        expect(a.groups.get("g1")!.policies.size).toBe(0);
        expect(affected.principals).toEqual(set(u("u1"), u("u2")));
        expect(affected.policies).toEqual(set(`${ACCT}\u0000p`));
      });
  });

  it("PolicyAttached / PolicyDetached record `System:`/`Custom:` refs on users and groups", () => {
    const s = given(
      accountCreated(),
      userCreated("u1"),
      userCreated("u2"),
      groupCreated("g1"),
      userAddedToGroup("u2", "g1"),
      policyCreated("p", PUB),
    );
    s.when(attached("p", toUser("u1")), attached("AliyunMQSubOnlyAccess", toGroup("g1"), "System")).then(
      ({ projection: p, each }) => {
        expect(p.account(ACCT)!.users.get("u1")!.policies).toEqual(set("Custom:p"));
        expect(p.account(ACCT)!.groups.get("g1")!.policies).toEqual(set("System:AliyunMQSubOnlyAccess"));
        expect(each.map((a) => [...a.principals])).toEqual([[u("u1")], [u("u2")]]);
      },
    );
    s.when(detached("p", toUser("u1")), detached("AliyunMQSubOnlyAccess", toGroup("g1"), "System")).then(
      ({ projection: p, each }) => {
        expect(p.account(ACCT)!.users.get("u1")!.policies.size).toBe(0);
        expect(p.account(ACCT)!.groups.get("g1")!.policies.size).toBe(0);
        expect(each.map((a) => [...a.principals])).toEqual([[u("u1")], [u("u2")]]);
      },
    );
  });

  it("ConsoleGrantAdded merges permissions per (instance, topic); ConsoleGrantRemoved takes them away", () => {
    const s = given(accountCreated(), userCreated("u1"));
    const grants = (p: ReturnType<typeof s.when>["projection"]) =>
      Object.fromEntries(
        [...p.account(ACCT)!.users.get("u1")!.consoleGrants].map(([k, v]) => [
          k.replace("\u0000", " "),
          [...v],
        ]),
      );
    s.when(
      grantAdded("u1", "a", ["PUB"]),
      grantAdded("u1", "a", ["SUB"]),
      grantAdded("u1", "b", ["SUB"], "i2"),
    ).then(({ projection: p, affected }) => {
      expect(grants(p)).toEqual({ "i1 a": ["PUB", "SUB"], "i2 b": ["SUB"] });
      expect(affected.principals).toEqual(set(u("u1")));
    });
    s.when(grantRemoved("u1", "a", ["PUB"]), grantRemoved("u1", "b", ["SUB"], "i2")).then(
      ({ projection: p }) => expect(grants(p)).toEqual({ "i1 a": ["SUB"] }),
    );
  });

  it("TopicCreated/Deleted and GroupIdCreated/Deleted change MQTT metadata and touch resources, not principals", () => {
    const s = given(accountCreated(), userCreated("u1"));
    s.when(
      ev("TopicCreated", { instanceId: "i1", topic: "a" }),
      ev("GroupIdCreated", { instanceId: "i1", groupId: "GID_a", owner: { kind: "user", userId: "u1" } }),
    ).then(({ projection: p, affected }) => {
      expect(p.account(ACCT)!.topics.get("i1")).toEqual(set("a"));
      expect(p.account(ACCT)!.groupIds.get("i1")!.get("GID_a")).toEqual({
        groupId: "GID_a",
        owner: { accountId: ACCT, kind: "user", userId: "u1" },
      });
      expect(affected.resources).toEqual(set(`topic:${ACCT}/i1/a`, `gid:${ACCT}/i1/GID_a`));
      expect(affected.principals.size).toBe(0);
    });
    s.when(
      ev("TopicDeleted", { instanceId: "i1", topic: "a" }),
      ev("GroupIdDeleted", { instanceId: "i1", groupId: "GID_a" }),
    ).then(({ projection: p }) => {
      expect(p.account(ACCT)!.topics.get("i1")!.size).toBe(0);
      expect(p.account(ACCT)!.groupIds.get("i1")!.size).toBe(0);
    });
  });

  it("events about things that do not exist change nothing but the position", () => {
    given(accountCreated())
      .when(
        userDisabled("ghost"),
        userDeleted("ghost"),
        ev("UserUpdated", { userId: "ghost", newUserName: "g" }),
        groupDeleted("nope"),
        policyVersionCreated("nope", "v2", PUB, true),
        defaultVersionSet("nope", "v1"),
        policyDeleted("nope"),
        attached("p", toUser("ghost")),
        grantAdded("ghost", "a", ["PUB"]),
        keyStatus("AK-none", "Inactive"),
        keyDeleted("AK-none"),
      )
      .then(({ projection: p, each }) => {
        for (const a of each) expect(a).toEqual(noneAffected());
        expect(p.position).toBe(12);
        expect(p.account(ACCT)!.users.size).toBe(0);
      });
  });

  it("evolve works on a bare state and advances its position", () => {
    const state = initialState();
    for (const e of recorded([accountCreated(), userCreated("u1")])) evolve(state, e as never);
    expect(state.position).toBe(2);
    expect(state.accounts.get(ACCT)!.users.has("u1")).toBe(true);
  });
});

describe("Affected.principals: exactly the principals whose decisions could change", () => {
  // u1 direct, u2 via g1, u3 direct and via g2, u4 has another policy, u5 is in a group without it;
  // a user of OTHER has a policy of the same name. A change of `p` in ACCT reaches u1, u2, u3 only.
  const world = [
    accountCreated(),
    accountCreated(OTHER),
    ...["u1", "u2", "u3", "u4", "u5"].map((id) => userCreated(id)),
    userCreated("x1", "x1", OTHER),
    groupCreated("g1"),
    groupCreated("g2"),
    groupCreated("g3"),
    userAddedToGroup("u2", "g1"),
    userAddedToGroup("u3", "g2"),
    userAddedToGroup("u5", "g3"),
    policyCreated("p", PUB),
    policyCreated("q", PUB),
    policyCreated("p", PUB, OTHER),
    attached("p", toUser("u1")),
    attached("p", toUser("u3")),
    attached("p", toGroup("g1")),
    attached("p", toGroup("g2")),
    attached("q", toUser("u4")),
    attached("q", toGroup("g3")),
    attached("p", toUser("x1"), "Custom", OTHER),
  ];
  const reached = set(u("u1"), u("u2"), u("u3"));

  it("usersWithPolicy finds direct and group attachments", () => {
    const p = given(...world).projection;
    expect(usersWithPolicy(p.account(ACCT)!, "Custom:p")).toEqual(set("u1", "u2", "u3"));
    expect(usersWithPolicy(p.account(ACCT)!, "Custom:q")).toEqual(set("u4", "u5"));
  });

  it("a new default version lists every user it reaches, and only those", () => {
    given(...world)
      .when(policyVersionCreated("p", "v2", doc(deny("mq:PUB")), true))
      .then(({ affected }) => expect(affected.principals).toEqual(reached));
  });

  it("a default version change lists every user it reaches, and only those", () => {
    given(...world, policyVersionCreated("p", "v2", doc(deny("mq:PUB")), false))
      .when(defaultVersionSet("p", "v2"))
      .then(({ affected }) => expect(affected.principals).toEqual(reached));
  });

  it("deleting the policy lists every user it reached, and only those", () => {
    given(...world)
      .when(policyDeleted("p"))
      .then(({ affected }) => expect(affected.principals).toEqual(reached));
  });

  it("attaching to or detaching from a group lists its members", () => {
    const s = given(...world, userAddedToGroup("u4", "g1"));
    s.when(detached("p", toGroup("g1"))).then(({ affected }) =>
      expect(affected.principals).toEqual(set(u("u2"), u("u4"))),
    );
    s.when(attached("AliyunMQFullAccess", toGroup("g3"), "System")).then(({ affected }) =>
      expect(affected.principals).toEqual(set(u("u5"))),
    );
  });

  it("a version that does not become the default, or a deleted non-default version, lists nobody", () => {
    given(...world)
      .when(policyVersionCreated("p", "v2", doc(deny("mq:PUB")), false), policyVersionDeleted("p", "v2"))
      .then(({ affected }) => expect(affected.principals.size).toBe(0));
  });
});
