/**
 * The domain rules of SPEC §2, given/when/then: `given(events).when(command).then(events)`.
 */
import { SecretBox } from "@portcullis/events";
import { describe, expect, it } from "vitest";
import type { NewEvent } from "./commands.ts";
import { ACCT, given } from "./given.ts";

/** The single event of a decision (fails unless there is exactly one). */
const one = (events: NewEvent[]) => {
  expect(events).toHaveLength(1);
  return events[0]!;
};
const box = SecretBox.generate().box;
const sealed = box.seal("s3cret", "AccessKey:k");
const doc = (action = "mq:PUB", resource = "*") => ({
  Version: "1",
  Statement: [{ Effect: "Allow", Action: [action], Resource: [resource] }],
});

const account: NewEvent = { type: "AccountCreated", data: { accountId: ACCT, alias: "acme" } };
const user = (userId: string, userName: string): NewEvent => ({
  type: "UserCreated",
  data: { userId, userName },
});
const group = (groupId: string, groupName: string): NewEvent => ({
  type: "GroupCreated",
  data: { groupId, groupName },
});
const key = (accessKeyId: string, owner: { kind: "root" } | { kind: "user"; userId: string }): NewEvent => ({
  type: "AccessKeyCreated",
  data: { accessKeyId, owner, secret: sealed },
});
const policy = (policyName: string, document = doc()): NewEvent => ({
  type: "PolicyCreated",
  data: { policyName, versionId: "v1", document },
});
const version = (policyName: string, versionId: string, setAsDefault = false): NewEvent => ({
  type: "PolicyVersionCreated",
  data: { policyName, versionId, document: doc("mq:SUB"), setAsDefault },
});
const alice = user("u1", "alice");
const bob = user("u2", "bob");
const asAlice = { caller: { accountId: ACCT, kind: "user" as const, userId: "u1" } };
const asBob = { caller: { accountId: ACCT, kind: "user" as const, userId: "u2" } };

describe("decide: accounts", () => {
  it("creates an account with its root AccessKey in one decision", () => {
    given()
      .when({
        type: "CreateAccount",
        alias: "acme",
        rootAccessKey: { accessKeyId: "LTAIroot", secret: sealed },
      })
      .then([
        account,
        {
          type: "AccessKeyCreated",
          data: { accessKeyId: "LTAIroot", owner: { kind: "root" }, secret: sealed },
        },
      ]);
  });
  it("refuses to create an account twice", () => {
    given(account)
      .when({ type: "CreateAccount", alias: "x" })
      .thenRejects(409, "EntityAlreadyExists.Account");
  });
  it("refuses any other command on an account that was never created", () => {
    given()
      .when({ type: "CreateUser", userId: "u1", userName: "a" })
      .thenRejects(404, "EntityNotExist.Account");
  });
});

describe("decide: users (names unique per account)", () => {
  it("creates a user", () => {
    given(account)
      .when({ type: "CreateUser", userId: "u1", userName: "alice", displayName: "Alice" })
      .then([{ type: "UserCreated", data: { userId: "u1", userName: "alice", displayName: "Alice" } }]);
  });
  it("409 on a taken name", () => {
    given(account, alice)
      .when({ type: "CreateUser", userId: "u9", userName: "alice" })
      .thenRejects(409, "EntityAlreadyExists.User");
  });
  it("a deleted user's name is free again", () => {
    given(account, alice, { type: "UserDeleted", data: { userId: "u1" } })
      .when({ type: "CreateUser", userId: "u9", userName: "alice" })
      .then([{ type: "UserCreated", data: { userId: "u9", userName: "alice" } }]);
  });
  it("renames, refusing a taken new name; no event when nothing changes", () => {
    given(account, alice, bob)
      .when({ type: "UpdateUser", userName: "alice", newUserName: "alicia" })
      .then([{ type: "UserUpdated", data: { userId: "u1", newUserName: "alicia" } }]);
    given(account, alice, bob)
      .when({ type: "UpdateUser", userName: "alice", newUserName: "bob" })
      .thenRejects(409, "EntityAlreadyExists.User");
    given(account, alice).when({ type: "UpdateUser", userName: "alice", newUserName: "alice" }).then([]);
  });
  it("disables and enables; disabling a disabled user changes nothing", () => {
    given(account, alice)
      .when({ type: "DisableUser", userName: "alice" })
      .then([{ type: "UserDisabled", data: { userId: "u1" } }]);
    given(account, alice, { type: "UserDisabled", data: { userId: "u1" } })
      .when({ type: "DisableUser", userName: "alice" })
      .then([]);
    given(account, alice, { type: "UserDisabled", data: { userId: "u1" } })
      .when({ type: "EnableUser", userName: "alice" })
      .then([{ type: "UserEnabled", data: { userId: "u1" } }]);
  });
  it("deletes a user (keys, memberships and attachments go with it); 404 for an unknown one", () => {
    given(account, alice, key("k1", { kind: "user", userId: "u1" }))
      .when({ type: "DeleteUser", userName: "alice" })
      .then([{ type: "UserDeleted", data: { userId: "u1" } }]);
    given(account).when({ type: "DeleteUser", userName: "nobody" }).thenRejects(404, "EntityNotExist.User");
  });
});

describe("decide: access keys", () => {
  it("at most 2 AccessKeys per user", () => {
    const k = (id: string) => key(id, { kind: "user", userId: "u1" });
    given(account, alice, k("k1"))
      .when({ type: "CreateAccessKey", accessKeyId: "k2", userName: "alice", secret: sealed })
      .then([
        {
          type: "AccessKeyCreated",
          data: { accessKeyId: "k2", owner: { kind: "user", userId: "u1" }, secret: sealed },
        },
      ]);
    const e = given(account, alice, k("k1"), k("k2"))
      .when({ type: "CreateAccessKey", accessKeyId: "k3", userName: "alice", secret: sealed })
      .thenRejects(409, "LimitExceeded.User.AccessKey");
    expect(e.message).toContain("at most 2");
  });
  it("a deleted key frees its slot", () => {
    const w1 = given(
      account,
      alice,
      key("k1", { kind: "user", userId: "u1" }),
      key("k2", { kind: "user", userId: "u1" }),
      {
        type: "AccessKeyDeleted",
        data: { accessKeyId: "k1" },
      },
    ).when({ type: "CreateAccessKey", accessKeyId: "k3", userName: "alice", secret: sealed }).events;
    expect(one(w1).type).toBe("AccessKeyCreated");
  });
  it("at most 2 AccessKeys for the account itself too", () => {
    given(account, key("r1", { kind: "root" }), key("r2", { kind: "root" }))
      .when({ type: "CreateAccessKey", accessKeyId: "r3", secret: sealed })
      .thenRejects(409, "LimitExceeded.User.AccessKey");
  });
  it("changes status; the same status changes nothing; unknown key 404", () => {
    given(account, alice, key("k1", { kind: "user", userId: "u1" }))
      .when({ type: "SetAccessKeyStatus", accessKeyId: "k1", status: "Inactive" })
      .then([{ type: "AccessKeyStatusChanged", data: { accessKeyId: "k1", status: "Inactive" } }]);
    given(account, alice, key("k1", { kind: "user", userId: "u1" }))
      .when({ type: "SetAccessKeyStatus", accessKeyId: "k1", status: "Active" })
      .then([]);
    given(account)
      .when({ type: "DeleteAccessKey", accessKeyId: "nope" })
      .thenRejects(404, "EntityNotExist.AccessKey");
  });
  it("never deactivates or deletes the account's last active key", () => {
    given(account, key("r1", { kind: "root" }))
      .when({ type: "DeleteAccessKey", accessKeyId: "r1" })
      .thenRejects(409, "DeleteConflict.AccessKey.LastRootKey");
    given(account, key("r1", { kind: "root" }))
      .when({ type: "SetAccessKeyStatus", accessKeyId: "r1", status: "Inactive" })
      .thenRejects(409, "DeleteConflict.AccessKey.LastRootKey");
    given(account, key("r1", { kind: "root" }), key("r2", { kind: "root" }))
      .when({ type: "DeleteAccessKey", accessKeyId: "r1" })
      .then([{ type: "AccessKeyDeleted", data: { accessKeyId: "r1" } }]);
  });
  it("a key of another account is not found", () => {
    given(account, key("k1", { kind: "root" }))
      .when({ type: "DeleteAccessKey", accessKeyId: "k1" }, { accountId: "6543210987654321" })
      .thenRejects(404, "EntityNotExist.Account");
  });
});

describe("decide: groups", () => {
  const g = (n: number) => group(`g${n}`, `group${n}`);
  const member = (n: number): NewEvent => ({
    type: "UserAddedToGroup",
    data: { userId: "u1", groupId: `g${n}` },
  });
  it("group names are unique", () => {
    given(account, g(1))
      .when({ type: "CreateGroup", groupId: "g2", groupName: "group1" })
      .thenRejects(409, "EntityAlreadyExists.Group");
  });
  it("a user is in at most 10 groups", () => {
    const groups = Array.from({ length: 11 }, (_, i) => g(i + 1));
    const ten = Array.from({ length: 10 }, (_, i) => member(i + 1));
    given(account, alice, ...groups, ...ten)
      .when({ type: "AddUserToGroup", userName: "alice", groupName: "group11" })
      .thenRejects(409, "LimitExceeded.User.Group");
    given(account, alice, ...groups, ...ten.slice(0, 9))
      .when({ type: "AddUserToGroup", userName: "alice", groupName: "group10" })
      .then([member(10)]);
  });
  it("adding twice is a conflict, removing a non-member is not found", () => {
    given(account, alice, g(1), member(1))
      .when({ type: "AddUserToGroup", userName: "alice", groupName: "group1" })
      .thenRejects(409, "EntityAlreadyExists.User.Group");
    given(account, alice, g(1))
      .when({ type: "RemoveUserFromGroup", userName: "alice", groupName: "group1" })
      .thenRejects(404, "EntityNotExist.User.Group");
  });
  it("a group with members or policies cannot be deleted", () => {
    given(account, alice, g(1), member(1))
      .when({ type: "DeleteGroup", groupName: "group1" })
      .thenRejects(409, "DeleteConflict.Group");
    given(account, g(1))
      .when({ type: "DeleteGroup", groupName: "group1" })
      .then([{ type: "GroupDeleted", data: { groupId: "g1" } }]);
  });
});

describe("decide: policies and versions", () => {
  it("creates a policy at v1 with the document in normal form", () => {
    const [e] = given(account).when({ type: "CreatePolicy", policyName: "p", document: doc() }).events;
    expect(e).toMatchObject({ type: "PolicyCreated", data: { policyName: "p", versionId: "v1" } });
  });
  it("rejects an invalid document with the JSON path of the error", () => {
    const e = given(account)
      .when({
        type: "CreatePolicy",
        policyName: "p",
        document: { Version: "1", Statement: [{ Effect: "Maybe", Action: "mq:PUB", Resource: "*" }] },
      })
      .thenRejects(400, "MalformedPolicyDocument");
    expect(e.path).toBe("document.Statement[0].Effect");
  });
  it("rejects an oversize document", () => {
    const big = doc("mq:PUB", `acs:mq:*:*:topic/${"x".repeat(7000)}`);
    given(account)
      .when({ type: "CreatePolicy", policyName: "p", document: big })
      .thenRejects(400, "MalformedPolicyDocument");
    given(account)
      .when({ type: "CreatePolicy", policyName: "p", document: doc() }, { limits: { maxDocumentChars: 20 } })
      .thenRejects(400, "MalformedPolicyDocument");
  });
  it("custom names are unique and may not shadow a system policy", () => {
    given(account, policy("p"))
      .when({ type: "CreatePolicy", policyName: "p", document: doc() })
      .thenRejects(409, "EntityAlreadyExists.Policy");
    given(account)
      .when({ type: "CreatePolicy", policyName: "AliyunMQFullAccess", document: doc() })
      .thenRejects(409, "EntityAlreadyExists.Policy");
  });
  it("at most maxCustomPolicies custom policies", () => {
    given(account, policy("a"), policy("b"))
      .when({ type: "CreatePolicy", policyName: "c", document: doc() }, { limits: { maxCustomPolicies: 2 } })
      .thenRejects(409, "LimitExceeded.Policy");
  });
  it("a new version gets the next number", () => {
    given(account, policy("p"))
      .when({ type: "CreatePolicyVersion", policyName: "p", document: doc("mq:SUB"), setAsDefault: true })
      .then([
        {
          type: "PolicyVersionCreated",
          data: { policyName: "p", versionId: "v2", document: doc("mq:SUB"), setAsDefault: true },
        },
      ]);
  });
  it("a 6th version removes the oldest non-default one", () => {
    // v1 is the default; v2..v5 are not: v2 goes.
    given(
      account,
      policy("p"),
      version("p", "v2"),
      version("p", "v3"),
      version("p", "v4"),
      version("p", "v5"),
    )
      .when({ type: "CreatePolicyVersion", policyName: "p", document: doc(), setAsDefault: false })
      .then([
        {
          type: "PolicyVersionCreated",
          data: {
            policyName: "p",
            versionId: "v6",
            document: doc(),
            setAsDefault: false,
            removedVersionId: "v2",
          },
        },
      ]);
    // v2 is the default: v1 is the oldest non-default.
    const w2 = given(
      account,
      policy("p"),
      version("p", "v2", true),
      version("p", "v3"),
      version("p", "v4"),
      version("p", "v5"),
    ).when({ type: "CreatePolicyVersion", policyName: "p", document: doc(), setAsDefault: true }).events;
    expect(one(w2).data).toMatchObject({ versionId: "v6", removedVersionId: "v1" });
  });
  it("version ids are never reused, even after the newest version was deleted", () => {
    const w3 = given(account, policy("p"), version("p", "v2"), {
      type: "PolicyVersionDeleted",
      data: { policyName: "p", versionId: "v2" },
    }).when({ type: "CreatePolicyVersion", policyName: "p", document: doc(), setAsDefault: false }).events;
    expect(one(w3).data).toMatchObject({ versionId: "v3" });
  });
  it("the default version cannot be deleted; others can", () => {
    given(account, policy("p"), version("p", "v2"))
      .when({ type: "DeletePolicyVersion", policyName: "p", versionId: "v1" })
      .thenRejects(409, "DeleteConflict.Policy.DefaultVersion");
    given(account, policy("p"), version("p", "v2"))
      .when({ type: "DeletePolicyVersion", policyName: "p", versionId: "v2" })
      .then([{ type: "PolicyVersionDeleted", data: { policyName: "p", versionId: "v2" } }]);
    given(account, policy("p"))
      .when({ type: "DeletePolicyVersion", policyName: "p", versionId: "v7" })
      .thenRejects(404, "EntityNotExist.Policy.Version");
  });
  it("sets the default version; the current default changes nothing", () => {
    given(account, policy("p"), version("p", "v2"))
      .when({ type: "SetDefaultPolicyVersion", policyName: "p", versionId: "v2" })
      .then([{ type: "PolicyDefaultVersionSet", data: { policyName: "p", versionId: "v2" } }]);
    given(account, policy("p"))
      .when({ type: "SetDefaultPolicyVersion", policyName: "p", versionId: "v1" })
      .then([]);
  });
  it("an attached policy cannot be deleted", () => {
    const att: NewEvent = {
      type: "PolicyAttached",
      data: { policyName: "p", policyType: "Custom", target: { kind: "user", userId: "u1" } },
    };
    const e = given(account, alice, policy("p"), att)
      .when({ type: "DeletePolicy", policyName: "p" })
      .thenRejects(409, "DeleteConflict.Policy.Attachment");
    expect(e.detail).toEqual({ attachedTo: ["user/alice"] });
    given(account, policy("p"))
      .when({ type: "DeletePolicy", policyName: "p" })
      .then([{ type: "PolicyDeleted", data: { policyName: "p" } }]);
  });
});

describe("decide: attachments", () => {
  it("attaches a system policy by name (type inferred) and a custom one", () => {
    given(account, alice)
      .when({
        type: "AttachPolicy",
        policyName: "AliyunMQPubOnlyAccess",
        target: { kind: "user", userName: "alice" },
      })
      .then([
        {
          type: "PolicyAttached",
          data: {
            policyName: "AliyunMQPubOnlyAccess",
            policyType: "System",
            target: { kind: "user", userId: "u1" },
          },
        },
      ]);
    given(account, group("g1", "ops"), policy("p"))
      .when({ type: "AttachPolicy", policyName: "p", target: { kind: "group", groupName: "ops" } })
      .then([
        {
          type: "PolicyAttached",
          data: { policyName: "p", policyType: "Custom", target: { kind: "group", groupId: "g1" } },
        },
      ]);
  });
  it("unknown policies and targets are not found", () => {
    given(account, alice)
      .when({ type: "AttachPolicy", policyName: "nope", target: { kind: "user", userName: "alice" } })
      .thenRejects(404, "EntityNotExist.Policy");
    given(account, alice)
      .when({
        type: "AttachPolicy",
        policyName: "Nope",
        policyType: "System",
        target: { kind: "user", userName: "alice" },
      })
      .thenRejects(404, "EntityNotExist.Policy");
    given(account)
      .when({
        type: "AttachPolicy",
        policyName: "AliyunMQFullAccess",
        target: { kind: "group", groupName: "x" },
      })
      .thenRejects(404, "EntityNotExist.Group");
  });
  it("attaching twice conflicts, detaching what is not attached is not found", () => {
    const att: NewEvent = {
      type: "PolicyAttached",
      data: {
        policyName: "AliyunMQFullAccess",
        policyType: "System",
        target: { kind: "user", userId: "u1" },
      },
    };
    given(account, alice, att)
      .when({
        type: "AttachPolicy",
        policyName: "AliyunMQFullAccess",
        target: { kind: "user", userName: "alice" },
      })
      .thenRejects(409, "EntityAlreadyExists.User.Policy");
    given(account, alice)
      .when({
        type: "DetachPolicy",
        policyName: "AliyunMQFullAccess",
        target: { kind: "user", userName: "alice" },
      })
      .thenRejects(404, "EntityNotExist.User.Policy");
    given(account, alice, att)
      .when({
        type: "DetachPolicy",
        policyName: "AliyunMQFullAccess",
        target: { kind: "user", userName: "alice" },
      })
      .then([{ type: "PolicyDetached", data: att.data as never }]);
  });
  it("at most 10 custom (and 20 system) policies per user or group", () => {
    const policies = Array.from({ length: 11 }, (_, i) => policy(`p${i}`));
    const attached = Array.from(
      { length: 10 },
      (_, i): NewEvent => ({
        type: "PolicyAttached",
        data: { policyName: `p${i}`, policyType: "Custom", target: { kind: "user", userId: "u1" } },
      }),
    );
    given(account, alice, ...policies, ...attached)
      .when({ type: "AttachPolicy", policyName: "p10", target: { kind: "user", userName: "alice" } })
      .thenRejects(409, "LimitExceeded.User.CustomPolicy");
    // System policies count separately.
    const w4 = given(account, alice, ...policies, ...attached).when({
      type: "AttachPolicy",
      policyName: "AliyunMQFullAccess",
      target: { kind: "user", userName: "alice" },
    }).events;
    expect(one(w4).type).toBe("PolicyAttached");
    given(account, alice)
      .when(
        {
          type: "AttachPolicy",
          policyName: "AliyunMQFullAccess",
          target: { kind: "user", userName: "alice" },
        },
        { limits: { maxSystemPoliciesPerTarget: 0 } },
      )
      .thenRejects(409, "LimitExceeded.User.SystemPolicy");
  });
});

describe("decide: MQTT topics, Group IDs, console grants", () => {
  const topic: NewEvent = { type: "TopicCreated", data: { instanceId: "mqtt-local", topic: "TopicA" } };
  it("topics are unique per instance", () => {
    given(account, topic)
      .when({ type: "CreateTopic", instanceId: "mqtt-local", topic: "TopicA" })
      .thenRejects(409, "EntityAlreadyExists.Topic");
    given(account, topic)
      .when({ type: "CreateTopic", instanceId: "mqtt-2", topic: "TopicA" })
      .then([{ type: "TopicCreated", data: { instanceId: "mqtt-2", topic: "TopicA" } }]);
    given(account)
      .when({ type: "DeleteTopic", instanceId: "mqtt-local", topic: "T" })
      .thenRejects(404, "EntityNotExist.Topic");
  });
  it("a Group ID is owned by its creator", () => {
    given(account, alice)
      .when({ type: "CreateGroupId", instanceId: "mqtt-local", groupId: "GID_a" }, asAlice)
      .then([
        {
          type: "GroupIdCreated",
          data: { instanceId: "mqtt-local", groupId: "GID_a", owner: { kind: "user", userId: "u1" } },
        },
      ]);
    given(account)
      .when({ type: "CreateGroupId", instanceId: "mqtt-local", groupId: "GID_r" })
      .then([
        {
          type: "GroupIdCreated",
          data: { instanceId: "mqtt-local", groupId: "GID_r", owner: { kind: "root" } },
        },
      ]);
  });
  it("only the creator and root may delete a RAM user's Group ID; names are unique", () => {
    const gid: NewEvent = {
      type: "GroupIdCreated",
      data: { instanceId: "mqtt-local", groupId: "GID_a", owner: { kind: "user", userId: "u1" } },
    };
    given(account, alice, bob, gid)
      .when({ type: "DeleteGroupId", instanceId: "mqtt-local", groupId: "GID_a" }, asBob)
      .thenRejects(403, "Forbidden.GroupIdOwner");
    given(account, alice, bob, gid)
      .when({ type: "DeleteGroupId", instanceId: "mqtt-local", groupId: "GID_a" }, asAlice)
      .then([{ type: "GroupIdDeleted", data: { instanceId: "mqtt-local", groupId: "GID_a" } }]);
    given(account, alice, bob, gid)
      .when({ type: "DeleteGroupId", instanceId: "mqtt-local", groupId: "GID_a" })
      .then([{ type: "GroupIdDeleted", data: { instanceId: "mqtt-local", groupId: "GID_a" } }]);
    given(account, alice, bob, gid)
      .when({ type: "CreateGroupId", instanceId: "mqtt-local", groupId: "GID_a" }, asBob)
      .thenRejects(409, "EntityAlreadyExists.GroupId");
  });
  it("console grants need the parent topic, add only missing perms, remove only present ones", () => {
    given(account, alice)
      .when({
        type: "AddConsoleGrant",
        userName: "alice",
        instanceId: "mqtt-local",
        topic: "TopicA",
        perms: ["PUB"],
      })
      .thenRejects(404, "EntityNotExist.Topic");
    const pub: NewEvent = {
      type: "ConsoleGrantAdded",
      data: { userId: "u1", instanceId: "mqtt-local", topic: "TopicA/x", perms: ["PUB"] },
    };
    given(account, alice, topic)
      .when({
        type: "AddConsoleGrant",
        userName: "alice",
        instanceId: "mqtt-local",
        topic: "TopicA/x",
        perms: ["PUB"],
      })
      .then([pub]);
    given(account, alice, topic, pub)
      .when({
        type: "AddConsoleGrant",
        userName: "alice",
        instanceId: "mqtt-local",
        topic: "TopicA/x",
        perms: ["SUB", "PUB"],
      })
      .then([
        {
          type: "ConsoleGrantAdded",
          data: { userId: "u1", instanceId: "mqtt-local", topic: "TopicA/x", perms: ["SUB"] },
        },
      ]);
    given(account, alice, topic, pub)
      .when({
        type: "AddConsoleGrant",
        userName: "alice",
        instanceId: "mqtt-local",
        topic: "TopicA/x",
        perms: ["PUB"],
      })
      .thenRejects(409, "EntityAlreadyExists.ConsoleGrant");
    given(account, alice, topic, pub)
      .when({
        type: "RemoveConsoleGrant",
        userName: "alice",
        instanceId: "mqtt-local",
        topic: "TopicA/x",
        perms: ["SUB"],
      })
      .thenRejects(404, "EntityNotExist.ConsoleGrant");
    given(account, alice, topic, pub)
      .when({
        type: "RemoveConsoleGrant",
        userName: "alice",
        instanceId: "mqtt-local",
        topic: "TopicA/x",
        perms: ["PUB", "SUB"],
      })
      .then([
        {
          type: "ConsoleGrantRemoved",
          data: { userId: "u1", instanceId: "mqtt-local", topic: "TopicA/x", perms: ["PUB"] },
        },
      ]);
  });
});
