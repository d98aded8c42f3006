/**
 * The admin API end to end over HTTP, against a running `portcullis serve`
 * child process (SQLite store, real MQTT and AMQP edges): every operation,
 * RAM authorization of admin calls, signature failures, every error class,
 * concurrent admins, "revocation confirmed", restart keeping all state.
 */
import { readFileSync } from "node:fs";
import { AdminApiError, type AdminClient, signRequest } from "@portcullis/admin-api";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Serve, startServe } from "./helpers/serve.ts";

let gw: Serve;
let root: AdminClient;
let acct: string;

beforeAll(async () => {
  gw = await startServe();
  root = gw.admin;
  acct = gw.root.accountId;
});
afterAll(async () => {
  await gw?.stop();
});

/** The API error a call fails with (fails the test if it succeeds). */
async function failure(p: Promise<unknown>): Promise<AdminApiError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof AdminApiError) return e;
    throw e;
  }
  throw new Error("expected the call to fail");
}

/** A raw request signed as root, with a hook to tamper with it after signing. */
async function raw(
  method: string,
  path: string,
  o: {
    body?: string;
    contentType?: string;
    date?: Date;
    nonce?: string;
    secret?: string;
    accessKeyId?: string;
    tamper?: (h: Record<string, string>) => void;
  } = {},
) {
  const url = new URL(path, gw.adminUrl);
  const headers = signRequest({
    method,
    url: `${url.pathname}${url.search}`,
    host: url.host,
    ...(o.body !== undefined ? { body: o.body } : {}),
    accessKeyId: o.accessKeyId ?? gw.root.accessKeyId,
    accessKeySecret: o.secret ?? gw.root.accessKeySecret,
    ...(o.date ? { date: o.date } : {}),
    ...(o.nonce ? { nonce: o.nonce } : {}),
    ...(o.body !== undefined
      ? { extraHeaders: { "content-type": o.contentType ?? "application/json" } }
      : {}),
  });
  const { host: _h, ...send } = headers;
  o.tamper?.(send);
  const res = await fetch(url, { method, headers: send, ...(o.body !== undefined ? { body: o.body } : {}) });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : {}) as Record<string, unknown> };
}

/** Wait until the server behind `c` has applied `position` (another process appended it). */
async function caughtUp(c: AdminClient, position: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (((await c.whoami()).position as number) < position) {
    if (Date.now() > deadline) throw new Error(`server did not reach position ${position}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const doc = (actions: string[], resource = "*", effect: "Allow" | "Deny" = "Allow") => ({
  Version: "1",
  Statement: [{ Effect: effect, Action: actions, Resource: [resource] }],
});

describe("admin API: every operation", () => {
  it("whoami names the root account", async () => {
    const me = await root.whoami();
    expect(me).toMatchObject({
      accountId: acct,
      principal: { kind: "root" },
      region: "local",
      mqttInstanceId: "mqtt-local",
    });
  });

  it("users: create, get, list, update (rename), disable, enable, delete", async () => {
    const c = await root.createUser("u-alice", { displayName: "Alice" });
    expect(c).toMatchObject({ userName: "u-alice", displayName: "Alice", disabled: false, changed: true });
    expect(c.position).toBeGreaterThan(0);
    expect(await root.getUser("u-alice")).toMatchObject({
      userName: "u-alice",
      loginName: expect.stringMatching(/^u-alice@/),
    });
    expect((await root.listUsers()).users.map((u) => u.userName)).toContain("u-alice");
    const r = await root.updateUser("u-alice", { newUserName: "u-alicia" });
    expect(r).toMatchObject({ userName: "u-alicia", changed: true });
    expect(r.position).toBeGreaterThan(c.position);
    expect((await failure(root.getUser("u-alice"))).status).toBe(404);
    expect(await root.disableUser("u-alicia")).toMatchObject({ disabled: true, changed: true });
    expect(await root.disableUser("u-alicia")).toMatchObject({ disabled: true, changed: false });
    expect(await root.enableUser("u-alicia")).toMatchObject({ disabled: false, changed: true });
    const d = await root.deleteUser("u-alicia");
    expect(d.changed).toBe(true);
    expect((await failure(root.getUser("u-alicia"))).code).toBe("EntityNotExist.User");
  });

  it("access keys: create (secret once), list (no secret), deactivate (401 at once), activate, delete, at most 2", async () => {
    await root.createUser("u-keys");
    const k = await root.createAccessKey("u-keys");
    expect(k.accessKeyId).toMatch(/^LTAI[A-Za-z0-9]{20}$/);
    expect(k.accessKeySecret).toMatch(/^[A-Za-z0-9]{30}$/);
    const listed = await root.listAccessKeys("u-keys");
    expect(listed.accessKeys).toEqual([
      expect.objectContaining({ accessKeyId: k.accessKeyId, status: "Active" }),
    ]);
    expect(JSON.stringify(listed)).not.toContain(k.accessKeySecret);
    expect(JSON.stringify(await root.getUser("u-keys"))).not.toContain(k.accessKeySecret);
    // The new key signs requests (authenticated; not yet authorized for anything).
    const as = gw.client(k);
    expect(await as.whoami()).toMatchObject({ principal: { kind: "user", userName: "u-keys" } });
    await root.setAccessKeyStatus(k.accessKeyId, "Inactive");
    expect((await failure(as.whoami())).code).toBe("InvalidAccessKeyId.Inactive");
    await root.setAccessKeyStatus(k.accessKeyId, "Active");
    expect((await as.whoami()).accessKeyId).toBe(k.accessKeyId);
    await root.createAccessKey("u-keys");
    const third = await failure(root.createAccessKey("u-keys"));
    expect([third.status, third.code]).toEqual([409, "LimitExceeded.User.AccessKey"]);
    await root.deleteAccessKey(k.accessKeyId);
    expect((await failure(as.whoami())).code).toBe("InvalidAccessKeyId.NotFound");
    expect((await root.listAccessKeys("u-keys")).accessKeys).toHaveLength(1);
  });

  it("the account's own keys: root only; the last active one cannot go", async () => {
    const mine = await root.listAccessKeys();
    expect(mine.accessKeys.map((k) => k.accessKeyId)).toEqual([gw.root.accessKeyId]);
    const last = await failure(root.deleteAccessKey(gw.root.accessKeyId));
    expect([last.status, last.code]).toEqual([409, "DeleteConflict.AccessKey.LastRootKey"]);
    const second = await root.createAccessKey();
    expect(second.userName).toBeUndefined();
    expect((await gw.client(second).whoami()).principal).toMatchObject({ kind: "root" });
    await root.deleteAccessKey(second.accessKeyId);
  });

  it("groups and membership", async () => {
    await root.createUser("u-member");
    expect(await root.createGroup("ops", { comments: "operators" })).toMatchObject({
      groupName: "ops",
      members: [],
    });
    expect(await root.addUserToGroup("ops", "u-member")).toMatchObject({ members: ["u-member"] });
    expect((await failure(root.addUserToGroup("ops", "u-member"))).status).toBe(409);
    expect((await root.getUser("u-member")).groups).toEqual(["ops"]);
    expect((await root.listGroups()).groups.map((g) => g.groupName)).toContain("ops");
    const blocked = await failure(root.deleteGroup("ops"));
    expect([blocked.status, blocked.code]).toEqual([409, "DeleteConflict.Group"]);
    expect(await root.removeUserFromGroup("ops", "u-member")).toMatchObject({ members: [] });
    expect((await root.deleteGroup("ops")).changed).toBe(true);
    expect((await failure(root.getGroup("ops"))).status).toBe(404);
  });

  it("policies: create, versions (≤ 5, oldest non-default removed), default, delete version, attach/detach, delete", async () => {
    const p = await root.createPolicy("pol-a", doc(["mq:PUB"]), { description: "first" });
    expect(p).toMatchObject({
      policyType: "Custom",
      defaultVersion: "v1",
      versions: [{ versionId: "v1", isDefault: true }],
    });
    for (let i = 2; i <= 5; i++) await root.createPolicyVersion("pol-a", doc(["mq:SUB"]));
    const sixth = await root.createPolicyVersion("pol-a", doc(["mq:*"]), { setAsDefault: true });
    expect(sixth.versionId).toBe("v6");
    expect((sixth.versions as { versionId: string }[]).map((v) => v.versionId)).toEqual([
      "v1",
      "v3",
      "v4",
      "v5",
      "v6",
    ]);
    expect(sixth.defaultVersion).toBe("v6");
    expect((await root.getPolicyVersion("pol-a", "v1")).document).toEqual(doc(["mq:PUB"]));
    const def = await failure(root.deletePolicyVersion("pol-a", "v6"));
    expect([def.status, def.code]).toEqual([409, "DeleteConflict.Policy.DefaultVersion"]);
    await root.setDefaultPolicyVersion("pol-a", "v1");
    expect((await root.deletePolicyVersion("pol-a", "v6")).changed).toBe(true);
    expect((await root.getPolicy("pol-a")).defaultVersion).toBe("v1");
    // Attach to a user and a group; system policies too.
    await root.createUser("u-pol");
    await root.createGroup("g-pol");
    await root.attachPolicy("pol-a", { user: "u-pol" });
    await root.attachPolicy("AliyunMQSubOnlyAccess", { user: "u-pol" });
    await root.attachPolicy("pol-a", { group: "g-pol" });
    expect(await root.listEntitiesForPolicy("pol-a")).toEqual({ users: ["u-pol"], groups: ["g-pol"] });
    expect((await root.getUser("u-pol")).policies).toEqual([
      { policyName: "AliyunMQSubOnlyAccess", policyType: "System" },
      { policyName: "pol-a", policyType: "Custom" },
    ]);
    const inUse = await failure(root.deletePolicy("pol-a"));
    expect([inUse.status, inUse.code]).toEqual([409, "DeleteConflict.Policy.Attachment"]);
    await root.detachPolicy("pol-a", { user: "u-pol" });
    await root.detachPolicy("pol-a", { group: "g-pol" });
    await root.detachPolicy("AliyunMQSubOnlyAccess", { user: "u-pol" });
    expect((await root.deletePolicy("pol-a")).changed).toBe(true);
    expect((await failure(root.getPolicy("pol-a"))).status).toBe(404);
  });

  it("system policies are listed and readable, never writable", async () => {
    const sys = await root.listPolicies("System");
    expect(sys.policies.map((p) => p.policyName)).toEqual(
      expect.arrayContaining(["AliyunMQFullAccess", "AliyunRAMFullAccess"]),
    );
    expect((await root.getPolicy("AliyunMQPubOnlyAccess")).policyType).toBe("System");
    expect((await failure(root.createPolicy("AliyunMQFullAccess", doc(["mq:*"])))).status).toBe(409);
    expect((await failure(root.deletePolicy("AliyunMQFullAccess"))).status).toBe(400);
  });

  it("MQTT topics, Group IDs (owned by their creator) and console grants", async () => {
    expect(await root.createTopic("TopicA")).toMatchObject({ instanceId: "mqtt-local", topic: "TopicA" });
    expect((await failure(root.createTopic("TopicA"))).code).toBe("EntityAlreadyExists.Topic");
    expect((await root.listTopics()).topics).toContain("TopicA");
    await root.createGroupId("GID_root");
    // A RAM user's Group ID is its own.
    await root.createUser("u-gid");
    await root.createUser("u-gid2");
    for (const u of ["u-gid", "u-gid2"]) await root.attachPolicy("AliyunMQFullAccess", { user: u });
    const a = gw.client(await root.createAccessKey("u-gid"));
    const b = gw.client(await root.createAccessKey("u-gid2"));
    expect((await a.createGroupId("GID_alice")).owner).toMatchObject({ kind: "user", userName: "u-gid" });
    expect((await b.listGroupIds()).groupIds.map((g) => g.groupId)).toEqual(["GID_root"]);
    expect((await a.listGroupIds()).groupIds.map((g) => g.groupId)).toEqual(["GID_alice", "GID_root"]);
    const steal = await failure(b.deleteGroupId("GID_alice"));
    expect([steal.status, steal.code]).toEqual([403, "Forbidden.GroupIdOwner"]);
    expect((await a.deleteGroupId("GID_alice")).changed).toBe(true);
    // Console grants.
    const g = await root.addConsoleGrant("u-gid", "TopicA/devices", ["PUB", "SUB"]);
    expect(g.consoleGrants).toEqual([
      { instanceId: "mqtt-local", topic: "TopicA/devices", perms: ["PUB", "SUB"] },
    ]);
    expect((await failure(root.addConsoleGrant("u-gid", "NoSuchTopic", ["PUB"]))).code).toBe(
      "EntityNotExist.Topic",
    );
    const r = await root.removeConsoleGrant("u-gid", "TopicA/devices", ["SUB"]);
    expect(r.consoleGrants).toEqual([{ instanceId: "mqtt-local", topic: "TopicA/devices", perms: ["PUB"] }]);
    expect((await root.listConsoleGrants("u-gid")).consoleGrants).toHaveLength(1);
    expect((await root.deleteTopic("TopicA")).changed).toBe(true);
  });

  it("simulate: the decision object at head and at a past position (replay)", async () => {
    await root.createUser("u-sim");
    const before = (await root.whoami()).position as number;
    await root.createPolicy("pol-sim", doc(["mq:PUB"], `acs:mq:*:${acct}:topic/mqtt-local/sim`));
    await root.attachPolicy("pol-sim", { user: "u-sim" });
    const ask = {
      principal: { kind: "user" as const, userName: "u-sim" },
      action: "mq:PUB",
      resource: `acs:mq:local:${acct}:topic/mqtt-local/sim/x`,
    };
    const now = await root.simulate(ask);
    expect(now).toMatchObject({
      decision: "Allow",
      decidingStatements: [{ policy: "pol-sim", version: "v1", statement: 0 }],
    });
    const then = await root.simulate({ ...ask, position: before });
    expect(then).toMatchObject({ decision: "ImplicitDeny", position: before });
    expect(then.message).toMatch(/not allowed to perform `mq:PUB`/);
    const future = await failure(root.simulate({ ...ask, position: 10 ** 9 }));
    expect([future.status, future.path]).toEqual([400, "body.position"]);
    const other = await root.simulate({
      ...ask,
      resource: "acs:mq:local:6543210987654321:topic/mqtt-local/sim",
    });
    expect(other).toMatchObject({ decision: "ImplicitDeny", reason: "cross-account" });
  });
});

describe("admin API: calls are authorized by the caller's RAM policies", () => {
  let creator: AdminClient;
  beforeAll(async () => {
    await root.createUser("u-creator");
    await root.createPolicy("only-create-user", doc(["ram:CreateUser"], `acs:ram:*:${acct}:user/*`));
    await root.attachPolicy("only-create-user", { user: "u-creator" });
    creator = gw.client(await root.createAccessKey("u-creator"));
  });

  it("a user with only ram:CreateUser can create users", async () => {
    expect(await creator.createUser("made-by-creator")).toMatchObject({
      userName: "made-by-creator",
      changed: true,
    });
  });

  it("… and nothing else: 403 with RAM's AccessDenied detail (ImplicitDeny)", async () => {
    const calls: [string, () => Promise<unknown>, string, string][] = [
      [
        "delete user",
        () => creator.deleteUser("made-by-creator"),
        "ram:DeleteUser",
        `acs:ram:*:${acct}:user/made-by-creator`,
      ],
      ["list users", () => creator.listUsers(), "ram:ListUsers", `acs:ram:*:${acct}:user/*`],
      [
        "access key",
        () => creator.createAccessKey("made-by-creator"),
        "ram:CreateAccessKey",
        `acs:ram:*:${acct}:user/made-by-creator`,
      ],
      ["group", () => creator.createGroup("g-x"), "ram:CreateGroup", `acs:ram:*:${acct}:group/g-x`],
      [
        "policy",
        () => creator.createPolicy("p-x", doc(["mq:PUB"])),
        "ram:CreatePolicy",
        `acs:ram:*:${acct}:policy/p-x`,
      ],
      [
        "attach",
        () => creator.attachPolicy("AliyunRAMFullAccess", { user: "u-creator" }),
        "ram:AttachPolicyToUser",
        `acs:ram:*:${acct}:user/u-creator`,
      ],
      [
        "topic",
        () => creator.createTopic("T1"),
        "mq:CreateTopic",
        `acs:mq:local:${acct}:topic/mqtt-local/T1`,
      ],
      [
        "gid",
        () => creator.createGroupId("GID_xyz1"),
        "mq:CreateGroupId",
        `acs:mq:local:${acct}:group/mqtt-local/GID_xyz1`,
      ],
      [
        "grant",
        () => creator.addConsoleGrant("made-by-creator", "T1", ["PUB"]),
        "mq:AddConsoleGrant",
        `acs:mq:local:${acct}:topic/mqtt-local/T1`,
      ],
      ["root keys", () => creator.createAccessKey(), "ram:CreateAccessKey", `acs:ram:*:${acct}:root`],
    ];
    for (const [what, call, action, resource] of calls) {
      const e = await failure(call());
      expect([what, e.status, e.code]).toEqual([what, 403, "AccessDenied"]);
      expect(e.body.accessDeniedDetail).toMatchObject({
        AuthAction: action,
        AuthResource: resource,
        NoPermissionType: "ImplicitDeny",
        AuthPrincipalType: "SubUser",
        AuthPrincipalDisplayName: "user `u-creator`",
      });
      expect((e.body.decision as { decision: string }).decision).toBe("ImplicitDeny");
    }
    // Nothing was written by the refused calls.
    expect((await root.listGroups()).groups.map((g) => g.groupName)).not.toContain("g-x");
  });

  it("an explicit Deny wins over AliyunRAMFullAccess (ExplicitDeny, with the deny's policy type)", async () => {
    await root.createUser("u-admin");
    await root.attachPolicy("AliyunRAMFullAccess", { user: "u-admin" });
    await root.createPolicy("no-deletes", doc(["ram:Delete*"], "*", "Deny"));
    await root.attachPolicy("no-deletes", { user: "u-admin" });
    const a = gw.client(await root.createAccessKey("u-admin"));
    await a.createUser("by-admin");
    const e = await failure(a.deleteUser("by-admin"));
    expect(e.status).toBe(403);
    expect(e.body.accessDeniedDetail).toMatchObject({
      NoPermissionType: "ExplicitDeny",
      PolicyType: "Custom",
    });
    expect(e.message).toMatch(/explicitly denied by Statement\[0\] of Custom policy `no-deletes`/);
    // Revoking is immediate: detach the grant and the next call is refused.
    await root.detachPolicy("AliyunRAMFullAccess", { user: "u-admin" });
    expect((await failure(a.createUser("by-admin-2"))).body.accessDeniedDetail).toMatchObject({
      NoPermissionType: "ImplicitDeny",
    });
  });
});

describe("admin API: request signatures", () => {
  const stamp = () => ({ nonce: `n${Math.random().toString(36).slice(2)}${Date.now()}`.padEnd(20, "x") });
  it("a correctly signed raw request works", async () => {
    expect((await raw("GET", "/v1/account", stamp())).status).toBe(200);
  });
  it("401 for a bad signature", async () => {
    const r = await raw("GET", "/v1/account", { ...stamp(), secret: "not-the-secret" });
    expect([r.status, r.body.code]).toEqual([401, "SignatureDoesNotMatch"]);
  });
  it("401 for a stale or future timestamp", async () => {
    const old = await raw("GET", "/v1/account", { ...stamp(), date: new Date(Date.now() - 10 * 60_000) });
    expect([old.status, old.body.code]).toEqual([401, "RequestExpired"]);
    expect(old.body.message).toMatch(/away from the server's clock/);
    const future = await raw("GET", "/v1/account", { ...stamp(), date: new Date(Date.now() + 10 * 60_000) });
    expect(future.body.code).toBe("RequestExpired");
  });
  it("401 for a replayed request (same nonce, same signature)", async () => {
    const s = stamp();
    const date = new Date();
    const body = JSON.stringify({ userName: "u-replay" });
    expect((await raw("POST", "/v1/users", { ...s, date, body })).status).toBe(201);
    const again = await raw("POST", "/v1/users", { ...s, date, body });
    expect([again.status, again.body.code]).toEqual([401, "ReplayedRequest"]);
  });
  it("401 for a tampered body, an unknown key, a missing signature", async () => {
    const body = JSON.stringify({ userName: "u-tamper" });
    const t = await raw("POST", "/v1/users", {
      ...stamp(),
      body,
      tamper: (h) => {
        h["x-pc-content-sha256"] = "0".repeat(64);
      },
    });
    expect([t.status, t.body.code]).toEqual([401, "ContentHashMismatch"]);
    const u = await raw("GET", "/v1/account", { ...stamp(), accessKeyId: "LTAInosuchkey00000000000" });
    expect(u.body.code).toBe("InvalidAccessKeyId.NotFound");
    const res = await fetch(new URL("/v1/account", gw.adminUrl));
    expect([res.status, ((await res.json()) as { code: string }).code]).toEqual([
      401,
      "MissingAuthentication",
    ]);
  });
});

describe("admin API: errors", () => {
  it("400 for malformed JSON, wrong types, unknown fields — with the path, and nothing written", async () => {
    const head = (await root.whoami()).position as number;
    const bad = await raw("POST", "/v1/users", { body: '{"userName": "x",' });
    expect([bad.status, bad.body.code, bad.body.path]).toEqual([400, "MalformedJSON", "body"]);
    const wrongType = await raw("POST", "/v1/users", { body: JSON.stringify({ userName: 42 }) });
    expect([wrongType.status, wrongType.body.path]).toEqual([400, "body.userName"]);
    const unknown = await raw("POST", "/v1/users", { body: JSON.stringify({ userName: "ok", admin: true }) });
    expect([unknown.status, unknown.body.path]).toEqual([400, "body.admin"]);
    const missing = await raw("POST", "/v1/users", { body: "" });
    expect([missing.status, missing.body.path]).toEqual([400, "body"]);
    const badName = await raw("POST", "/v1/users", { body: JSON.stringify({ userName: "no spaces" }) });
    expect([badName.status, badName.body.path]).toEqual([400, "body.userName"]);
    const policy = await failure(
      root.createPolicy("p-bad", {
        Version: "1",
        Statement: [
          {
            Effect: "Allow",
            Action: "mq:PUB",
            Resource: "*",
            Condition: { Bool: { "acs:SecureTransport": ["true", "false"] } },
          },
        ],
      }),
    );
    expect([policy.status, policy.code]).toEqual([400, "MalformedPolicyDocument"]);
    expect(policy.path).toMatch(/^body\.document\.Statement\[0\]\.Condition/);
    const wrongArray = await raw("POST", `/v1/users/u-x/console-grants`, {
      body: JSON.stringify({ topic: "t", perms: "PUB" }),
    });
    expect([wrongArray.status, wrongArray.body.path]).toEqual([400, "body.perms"]);
    const q = await raw("POST", "/v1/users?waitEnforced=maybe", {
      body: JSON.stringify({ userName: "u-q" }),
    });
    expect([q.status, q.body.path]).toEqual([400, "query.waitEnforced"]);
    expect((await root.whoami()).position).toBe(head);
  });
  it("404 for unknown entities and routes, 409 for name conflicts, 413 for an oversize body", async () => {
    expect((await failure(root.getUser("nobody"))).status).toBe(404);
    expect((await failure(root.request("GET", "/v1/nothing-here"))).status).toBe(404);
    await root.createUser("u-dup");
    const dup = await failure(root.createUser("u-dup"));
    expect([dup.status, dup.code]).toEqual([409, "EntityAlreadyExists.User"]);
    const big = await raw("POST", "/v1/users", {
      body: JSON.stringify({ userName: "u-big", displayName: "x".repeat(70_000) }),
    });
    expect([big.status, big.body.code]).toEqual([413, "PayloadTooLarge"]);
  });
});

describe("admin API: concurrent admins", () => {
  it("no lost update: two admin processes on one store, concurrent writes all land, limits hold under races", async () => {
    await root.createUser("u-admin2");
    await root.attachPolicy("AliyunRAMFullAccess", { user: "u-admin2" });
    const key = await root.createAccessKey("u-admin2");
    // A second `serve` on the same data dir: another admin plane appending to the same SQLite store.
    await using gw2 = await startServe({ dataDir: gw.dataDir, keepDataDir: true });
    const other = gw2.client(key);
    const names = Array.from({ length: 16 }, (_, i) => `conc-${i}`);
    const results = await Promise.all(names.map((n, i) => (i % 2 ? root : other).createUser(n)));
    const positions = results.map((r) => r.position);
    expect(new Set(positions).size).toBe(names.length);
    // gw learns of gw2's appends through the store: wait until it has applied the last one.
    await caughtUp(root, Math.max(...positions));
    const users = (await root.listUsers()).users.map((u) => u.userName);
    for (const n of names) expect(users).toContain(n);
    // The same name from both admins at once: exactly one wins.
    const race = await Promise.allSettled([
      root.createUser("conc-same"),
      other.createUser("conc-same"),
      root.createUser("conc-same"),
    ]);
    expect(race.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    for (const r of race)
      if (r.status === "rejected") expect((r.reason as AdminApiError).code).toBe("EntityAlreadyExists.User");
    // At most 2 AccessKeys, even when 5 are asked for at once.
    const keys = await Promise.allSettled(
      Array.from({ length: 5 }, (_, i) => (i % 2 ? root : other).createAccessKey("conc-0")),
    );
    expect(keys.filter((r) => r.status === "fulfilled")).toHaveLength(2);
    await caughtUp(
      root,
      Math.max(...keys.flatMap((r) => (r.status === "fulfilled" ? [r.value.position] : []))),
    );
    expect((await root.listAccessKeys("conc-0")).accessKeys).toHaveLength(2);
    // Group limit: 12 groups, concurrent adds → exactly 10.
    const groups = await Promise.all(Array.from({ length: 12 }, (_, i) => root.createGroup(`conc-g${i}`)));
    await caughtUp(other, Math.max(...groups.map((g) => g.position)));
    const adds = await Promise.allSettled(
      Array.from({ length: 12 }, (_, i) => (i % 2 ? root : other).addUserToGroup(`conc-g${i}`, "conc-1")),
    );
    expect(adds.filter((r) => r.status === "fulfilled")).toHaveLength(10);
    for (const r of adds)
      if (r.status === "rejected") expect((r.reason as AdminApiError).code).toBe("LimitExceeded.User.Group");
    await caughtUp(
      root,
      Math.max(...adds.flatMap((r) => (r.status === "fulfilled" ? [r.value.position] : []))),
    );
    expect((await root.getUser("conc-1")).groups).toHaveLength(10);
    // The races were real: appends were refused by optimistic concurrency and re-decided.
    const conflicts = async (url: string) =>
      Number(
        /portcullis_admin_append_conflicts_total (\d+)/.exec(
          await (await fetch(new URL("/metrics", url))).text(),
        )?.[1],
      );
    expect((await conflicts(gw.adminUrl)) + (await conflicts(gw2.adminUrl))).toBeGreaterThan(0);
  });
});

describe("admin API: revocation confirmed, health, metrics, OpenAPI", () => {
  it("waitEnforced waits for every live edge and names them", async () => {
    const w = await root.with({ waitEnforced: true }).createUser("u-wait");
    expect(w.enforcement?.confirmed).toBe(true);
    expect(w.enforcement?.edges.map((e) => e.kind).sort()).toEqual(["amqp", "mqtt"]);
    for (const e of w.enforcement!.edges) expect(e.position).toBeGreaterThanOrEqual(w.position);
    const viaHeader = await raw("POST", "/v1/users/u-wait/disable", {
      tamper: (h) => {
        h["x-pc-wait-enforced"] = "true";
      },
    });
    expect(viaHeader.status).toBe(200);
    expect(viaHeader.body.enforcement).toMatchObject({ confirmed: true });
    const plain = await root.request("POST", "/v1/users/u-wait/enable");
    expect(plain.enforcement).toBeUndefined();
  });
  it("/healthz, /readyz and /metrics answer without credentials", async () => {
    expect((await fetch(new URL("/healthz", gw.adminUrl))).status).toBe(200);
    const ready = await fetch(new URL("/readyz", gw.adminUrl));
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ ready: true, stale: false });
    const m = await (await fetch(new URL("/metrics", gw.adminUrl))).text();
    expect(m).toMatch(
      /portcullis_admin_http_requests_total\{method="POST",route="\/v1\/users",status="201"\} \d+/,
    );
    expect(m).toMatch(/portcullis_admin_auth_failures_total\{code="SignatureDoesNotMatch"\} [1-9]/);
    expect(m).toMatch(/portcullis_admin_append_conflicts_total \d+/);
    expect(m).toMatch(/portcullis_admin_feed_position [1-9]/);
  });
  it("/openapi.json describes every route: each one exists (401 unsigned, not 404)", async () => {
    const spec = (await (await fetch(new URL("/openapi.json", gw.adminUrl))).json()) as {
      openapi: string;
      paths: Record<string, Record<string, { operationId?: string; security?: unknown[] }>>;
    };
    expect(spec.openapi).toBe("3.1.0");
    const ops = Object.entries(spec.paths).flatMap(([p, ms]) =>
      Object.entries(ms).map(([m, op]) => ({ p, m, op })),
    );
    const v1 = ops.filter((o) => o.p.startsWith("/v1"));
    expect(v1.length).toBeGreaterThanOrEqual(45);
    for (const { p, m, op } of v1) {
      expect(op.operationId).toBeTruthy();
      const url = p.replace(/\{(\w+)\}/g, (_, n: string) =>
        n === "versionId" ? "v1" : n === "groupId" ? "GID_xyz" : `x${n}`,
      );
      const res = await fetch(new URL(url, gw.adminUrl), { method: m.toUpperCase() });
      expect([`${m} ${p}`, res.status]).toEqual([`${m} ${p}`, 401]);
    }
  });
});

describe("logs", () => {
  it("carry every admin request but no secret and no signature", async () => {
    await root.createUser("u-log");
    const k = await root.createAccessKey("u-log");
    await gw.client(k).whoami();
    // The last request's id appears in the log once it is written.
    const last = await failure(root.getUser("u-log-nobody"));
    const requestId = String(last.body.requestId);
    let log = "";
    for (let i = 0; i < 100 && !log.includes(requestId); i++) {
      await new Promise((r) => setTimeout(r, 50));
      log = readFileSync(gw.logFile, "utf8");
    }
    expect(log).toContain(requestId);
    expect(log).toMatch(/"route":"\/v1\/users\/:userName\/access-keys".*"status":201/);
    expect(log).not.toContain(k.accessKeySecret);
    expect(log).not.toContain(gw.root.accessKeySecret);
    expect(log).not.toMatch(/Signature=[0-9a-f]{64}/);
  });
});

describe("portcullis serve: restart keeps all state", () => {
  it("users, keys, policies, topics, Group IDs and positions survive a restart", async () => {
    await root.createUser("u-persist");
    await root.createPolicy("pol-persist", doc(["mq:SUB"]));
    await root.attachPolicy("pol-persist", { user: "u-persist" });
    const key = await root.createAccessKey("u-persist");
    await root.createTopic("persist");
    const before = await root.getUser("u-persist");
    const head = (await root.whoami()).position as number;
    gw = await gw.restart();
    root = gw.admin;
    expect((await root.whoami()).position).toBe(head);
    expect(await root.getUser("u-persist")).toEqual(before);
    expect((await root.listTopics()).topics).toContain("persist");
    expect((await gw.client(key).whoami()).principal).toMatchObject({ userName: "u-persist" });
    expect(gw.root.accountId).toBe(acct);
  });
});
