/**
 * Every operation of the route table, in process (memory store, localhost
 * HTTP): each answer matches the response schema `/openapi.json` publishes
 * for it, and every operation is exercised at least once. Also: a write
 * refused by RAM appends nothing; AccessKey secrets are sealed in events.
 */
import { MemoryEventStore } from "@portcullis/event-store";
import { SecretBox } from "@portcullis/events";
import { InProcessPositionBoard, LiveProjection } from "@portcullis/feed";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bootstrapAccount } from "./bootstrap.ts";
import { AdminApiError, AdminClient } from "./client.ts";
import { routes } from "./routes.ts";
import { type AdminApi, startAdminApi } from "./server.ts";

const table = routes(() => {
  throw new Error("not used");
});
const store = new MemoryEventStore();
const { box } = SecretBox.generate();
let api: AdminApi;
let feed: LiveProjection;
let root: AdminClient;
let acct: string;
let rootCreds: { accessKeyId: string; accessKeySecret: string };
const seen = new Set<string>();

/** Call, then check the answer against the documented response schema of `operationId`. */
async function op<T>(operationId: string, call: () => Promise<T>): Promise<T> {
  const route = table.find((r) => r.operationId === operationId);
  if (!route) throw new Error(`no route ${operationId}`);
  const answer = await call();
  const parsed = route.response.safeParse(answer);
  if (!parsed.success)
    throw new Error(`${operationId}: answer does not match its schema: ${parsed.error.message}`);
  seen.add(operationId);
  return answer;
}

beforeAll(async () => {
  const acctInfo = await bootstrapAccount(store, box, { alias: "acme" });
  acct = acctInfo.accountId;
  feed = await LiveProjection.start(store);
  api = await startAdminApi({
    store,
    feed,
    box,
    board: new InProcessPositionBoard(),
    logger: pino({ level: "silent" }),
  });
  rootCreds = { accessKeyId: acctInfo.accessKeyId, accessKeySecret: acctInfo.accessKeySecret };
  root = new AdminClient({ endpoint: api.url, ...rootCreds });
});
afterAll(async () => {
  await api?.close();
  await feed?.close();
});

const doc = { Version: "1", Statement: [{ Effect: "Allow", Action: ["mq:PUB"], Resource: ["*"] }] };

describe("admin API in process: every operation answers what /openapi.json says", () => {
  it("runs each operation once and checks its answer", async () => {
    await op("GetCallerIdentity", () => root.whoami());
    await op("CreateUser", () => root.createUser("alice"));
    await op("ListUsers", () => root.listUsers());
    await op("GetUser", () => root.getUser("alice"));
    await op("UpdateUser", () => root.updateUser("alice", { displayName: "A" }));
    await op("DisableUser", () => root.disableUser("alice"));
    await op("EnableUser", () => root.enableUser("alice"));
    const k = await op("CreateAccessKey", () => root.createAccessKey("alice"));
    await op("ListAccessKeys", () => root.listAccessKeys("alice"));
    const rk = await op("CreateRootAccessKey", () => root.createAccessKey());
    await op("ListRootAccessKeys", () => root.listAccessKeys());
    await op("UpdateAccessKey", () => root.setAccessKeyStatus(k.accessKeyId, "Inactive"));
    await op("DeleteAccessKey", () => root.deleteAccessKey(rk.accessKeyId));
    await op("CreateGroup", () => root.createGroup("ops"));
    await op("ListGroups", () => root.listGroups());
    await op("GetGroup", () => root.getGroup("ops"));
    await op("AddUserToGroup", () => root.addUserToGroup("ops", "alice"));
    await op("RemoveUserFromGroup", () => root.removeUserFromGroup("ops", "alice"));
    await op("CreatePolicy", () => root.createPolicy("p", doc));
    await op("ListPolicies", () => root.listPolicies());
    await op("GetPolicy", () => root.getPolicy("p"));
    await op("CreatePolicyVersion", () => root.createPolicyVersion("p", doc));
    await op("GetPolicyVersion", () => root.getPolicyVersion("p", "v2"));
    await op("SetDefaultPolicyVersion", () => root.setDefaultPolicyVersion("p", "v2"));
    await op("DeletePolicyVersion", () => root.deletePolicyVersion("p", "v1"));
    await op("AttachPolicyToUser", () => root.attachPolicy("p", { user: "alice" }));
    await op("AttachPolicyToGroup", () => root.attachPolicy("AliyunMQFullAccess", { group: "ops" }));
    await op("ListPoliciesForUser", () => root.listPoliciesFor({ user: "alice" }));
    await op("ListPoliciesForGroup", () => root.listPoliciesFor({ group: "ops" }));
    await op("ListEntitiesForPolicy", () => root.listEntitiesForPolicy("p"));
    await op("DetachPolicyFromUser", () => root.detachPolicy("p", { user: "alice" }));
    await op("DetachPolicyFromGroup", () => root.detachPolicy("AliyunMQFullAccess", { group: "ops" }));
    await op("DeletePolicy", () => root.deletePolicy("p"));
    await op("DeleteGroup", () => root.deleteGroup("ops"));
    await op("CreateTopic", () => root.createTopic("t"));
    await op("ListTopic", () => root.listTopics());
    await op("CreateGroupId", () => root.createGroupId("GID_one"));
    await op("ListGroupId", () => root.listGroupIds());
    await op("DeleteGroupId", () => root.deleteGroupId("GID_one"));
    await op("AddConsoleGrant", () => root.addConsoleGrant("alice", "t", ["PUB"]));
    await op("ListConsoleGrant", () => root.listConsoleGrants("alice"));
    await op("RemoveConsoleGrant", () => root.removeConsoleGrant("alice", "t", ["PUB"]));
    await op("DeleteTopic", () => root.deleteTopic("t"));
    await op("SimulatePolicy", () =>
      root.simulate({
        principal: { kind: "user", userName: "alice" },
        action: "mq:PUB",
        resource: `acs:mq:local:${acct}:topic/mqtt-local/t`,
      }),
    );
    await op("DeleteUser", () => root.deleteUser("alice"));
    expect([...table.map((r) => r.operationId)].filter((id) => !seen.has(id))).toEqual([]);
  });

  it("a write refused by RAM appends nothing; a secret is sealed in its event", async () => {
    await root.createUser("bob");
    const key = await root.createAccessKey("bob");
    const bob = new AdminClient({ endpoint: api.url, ...key });
    const head = await store.head();
    const e = await bob.createUser("carol").catch((x: unknown) => x);
    expect(e).toBeInstanceOf(AdminApiError);
    expect((e as AdminApiError).status).toBe(403);
    expect(await store.head()).toBe(head);
    const events = [];
    for await (const ev of store.readAll()) events.push(ev);
    const created = events.find(
      (ev) =>
        ev.type === "AccessKeyCreated" &&
        (ev.data as { accessKeyId: string }).accessKeyId === key.accessKeyId,
    )!;
    expect(JSON.stringify(created)).not.toContain(key.accessKeySecret);
    expect((created.data as { secret: { alg: string } }).secret.alg).toBe("AES-256-GCM");
    expect(created.actor).toMatchObject({ kind: "root", accountId: acct });
  });

  it("no cross-account access: another account's root cannot see or touch this account's keys and users", async () => {
    await root.createUser("dave");
    const key = await root.createAccessKey("dave");
    const other = await bootstrapAccount(store, box, { alias: "other" });
    const them = new AdminClient({ endpoint: api.url, ...other });
    // Its feed has applied the new account once whoami answers with it.
    for (let i = 0; i < 100; i++) {
      const ok = await them.whoami().then(
        () => true,
        () => false,
      );
      if (ok) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    expect((await them.whoami()).accountId).toBe(other.accountId);
    expect((await them.listUsers()).users).toEqual([]);
    const status = async (p: Promise<unknown>) =>
      ((await p.catch((e: unknown) => e)) as AdminApiError).status;
    expect(await status(them.deleteAccessKey(key.accessKeyId))).toBe(404);
    expect(await status(them.setAccessKeyStatus(key.accessKeyId, "Inactive"))).toBe(404);
    expect(await status(them.getUser("dave"))).toBe(404);
    const d = await them.simulate({
      principal: { kind: "root" },
      action: "ram:DeleteUser",
      resource: `acs:ram:*:${acct}:user/dave`,
    });
    expect(d).toMatchObject({ decision: "ImplicitDeny", reason: "cross-account" });
    expect((await root.getUser("dave")).accessKeys).toEqual([expect.objectContaining({ status: "Active" })]);
  });
});

describe("admin API in process: restart", () => {
  it("a restarted admin plane rebuilds its index from the log: revisions line up, version ids are never reused", async () => {
    await root.createPolicy("q", doc);
    await root.createPolicyVersion("q", doc);
    await root.deletePolicyVersion("q", "v2");
    await api.close();
    await feed.close();
    feed = await LiveProjection.start(store);
    api = await startAdminApi({
      store,
      feed,
      box,
      board: new InProcessPositionBoard(),
      logger: pino({ level: "silent" }),
    });
    const again = new AdminClient({ endpoint: api.url, ...rootCreds });
    const v = await again.createPolicyVersion("q", doc);
    expect(v.versionId).toBe("v3");
    expect((await again.createUser("after-restart")).changed).toBe(true);
  });
});

describe("admin API: the nonce store", () => {
  it("answers 503 NonceStoreUnavailable (never accepts unchecked) when the nonce store fails", async () => {
    let up = false;
    const flaky = new AdminClient({
      endpoint: (
        await startAdminApi({
          store,
          feed,
          box,
          board: new InProcessPositionBoard(),
          logger: pino({ level: "silent" }),
          nonces: {
            check: async () => {
              if (!up) throw new Error("nonce store down");
              return "ok" as const;
            },
          },
        }).then((a) => {
          closeLater.push(a);
          return a;
        })
      ).url,
      ...rootCreds,
    });
    await expect(flaky.whoami()).rejects.toMatchObject({ status: 503, code: "NonceStoreUnavailable" });
    up = true;
    expect((await flaky.whoami()).accountId).toBe(acct);
  });
});
const closeLater: AdminApi[] = [];
afterAll(async () => {
  for (const a of closeLater) await a.close();
});
