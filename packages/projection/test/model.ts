/**
 * The reference for the projection property tests: `HistoryModel` applies the
 * events of a generated history with its own plain bookkeeping (written from
 * SPEC §2, not from `evolve`: memberships live only on groups, a user's
 * effective policies are computed when asked), and `referenceAuthorize`
 * decides a request from it with the policy engine's one-shot
 * `evaluatePolicies`. `materialize` (history.ts) also uses the model to keep
 * histories coherent.
 */
import type { DomainEvent, EventEnvelope } from "@portcullis/events";
import {
  type CompiledPolicy,
  compilePolicySource,
  type Decision,
  evaluatePolicies,
  getSystemPolicy,
  mqInstanceArn,
  mqTopicArn,
  type PolicyRef,
  type Principal,
  type RequestContext,
} from "@portcullis/policy";
import type { PrincipalRef } from "../src/mod.ts";
import type { DocTemplate } from "./history.ts";

type Perm = "PUB" | "SUB";
interface MUser {
  name: string;
  disabled: boolean;
  /** `System:<name>` / `Custom:<name>`. */
  policies: Set<string>;
  /** `<instance>\0<topic>` → perms. */
  grants: Map<string, Set<Perm>>;
}
interface MGroup {
  name: string;
  members: Set<string>;
  policies: Set<string>;
}
interface MPolicy {
  /** versionId → document as written. */
  versions: Map<string, unknown>;
  defaultVersion: string;
  /** Number of the next version id (RAM never reuses one while the policy exists). */
  next: number;
}
interface MAccount {
  users: Map<string, MUser>;
  groups: Map<string, MGroup>;
  policies: Map<string, MPolicy>;
  topics: Set<string>;
  groupIds: Set<string>;
}
interface MKey {
  account: string;
  /** `root` or a user id. */
  owner: string;
  status: "Active" | "Inactive";
}

/**
 * The state of a history as plain bookkeeping, independent of `evolve`:
 * memberships live only on groups, a user's effective policies are computed
 * when asked. Applies the events `materialize` produces (coherent ones).
 */
export class HistoryModel {
  readonly accounts = new Map<string, MAccount>();
  readonly keys = new Map<string, MKey>();
  /** Every AccessKey id ever created (deleted ones included). */
  readonly keyIds: string[] = [];
  nameCounter = 0;

  /** Apply one event (as produced by `materialize`). */
  apply(event: EventEnvelope): void {
    const e = event as DomainEvent;
    const acct = e.accountId;
    const A = () => this.accounts.get(acct)!;
    switch (e.type) {
      case "AccountCreated":
        this.accounts.set(acct, {
          users: new Map(),
          groups: new Map(),
          policies: new Map(),
          topics: new Set(),
          groupIds: new Set(),
        });
        break;
      case "UserCreated":
        A().users.set(e.data.userId, {
          name: e.data.userName,
          disabled: false,
          policies: new Set(),
          grants: new Map(),
        });
        break;
      case "UserUpdated": {
        const u = A().users.get(e.data.userId)!;
        if (e.data.newUserName !== undefined) u.name = e.data.newUserName;
        break;
      }
      case "UserDisabled":
        A().users.get(e.data.userId)!.disabled = true;
        break;
      case "UserEnabled":
        A().users.get(e.data.userId)!.disabled = false;
        break;
      case "UserDeleted":
        A().users.delete(e.data.userId);
        for (const g of A().groups.values()) g.members.delete(e.data.userId);
        for (const [id, k] of this.keys)
          if (k.account === acct && k.owner === e.data.userId) this.keys.delete(id);
        break;
      case "AccessKeyCreated": {
        const owner = e.data.owner;
        this.keys.set(e.data.accessKeyId, {
          account: acct,
          owner: owner.kind === "root" ? "root" : owner.userId,
          status: "Active",
        });
        this.keyIds.push(e.data.accessKeyId);
        break;
      }
      case "AccessKeyStatusChanged":
        this.keys.get(e.data.accessKeyId)!.status = e.data.status;
        break;
      case "AccessKeyDeleted":
        this.keys.delete(e.data.accessKeyId);
        break;
      case "GroupCreated":
        A().groups.set(e.data.groupId, { name: e.data.groupName, members: new Set(), policies: new Set() });
        break;
      case "GroupDeleted":
        A().groups.delete(e.data.groupId);
        break;
      case "UserAddedToGroup":
        A().groups.get(e.data.groupId)!.members.add(e.data.userId);
        break;
      case "UserRemovedFromGroup":
        A().groups.get(e.data.groupId)!.members.delete(e.data.userId);
        break;
      case "PolicyCreated":
        A().policies.set(e.data.policyName, {
          versions: new Map([[e.data.versionId, e.data.document]]),
          defaultVersion: e.data.versionId,
          next: 2,
        });
        break;
      case "PolicyVersionCreated": {
        const p = A().policies.get(e.data.policyName)!;
        if (e.data.removedVersionId !== undefined) p.versions.delete(e.data.removedVersionId);
        p.versions.set(e.data.versionId, e.data.document);
        p.next = Number(e.data.versionId.slice(1)) + 1;
        if (e.data.setAsDefault) p.defaultVersion = e.data.versionId;
        break;
      }
      case "PolicyDefaultVersionSet":
        A().policies.get(e.data.policyName)!.defaultVersion = e.data.versionId;
        break;
      case "PolicyVersionDeleted":
        A().policies.get(e.data.policyName)!.versions.delete(e.data.versionId);
        break;
      case "PolicyDeleted": {
        A().policies.delete(e.data.policyName);
        const ref = `Custom:${e.data.policyName}`;
        for (const u of A().users.values()) u.policies.delete(ref);
        for (const g of A().groups.values()) g.policies.delete(ref);
        break;
      }
      case "PolicyAttached":
      case "PolicyDetached": {
        const t = e.data.target;
        const holder = t.kind === "user" ? A().users.get(t.userId)! : A().groups.get(t.groupId)!;
        const ref = `${e.data.policyType}:${e.data.policyName}`;
        if (e.type === "PolicyAttached") holder.policies.add(ref);
        else holder.policies.delete(ref);
        break;
      }
      case "ConsoleGrantAdded":
      case "ConsoleGrantRemoved": {
        const u = A().users.get(e.data.userId)!;
        const k = `${e.data.instanceId}\u0000${e.data.topic}`;
        const perms = u.grants.get(k) ?? new Set<Perm>();
        for (const p of e.data.perms) {
          if (e.type === "ConsoleGrantAdded") perms.add(p);
          else perms.delete(p);
        }
        if (perms.size > 0) u.grants.set(k, perms);
        else u.grants.delete(k);
        break;
      }
      case "TopicCreated":
        A().topics.add(`${e.data.instanceId}/${e.data.topic}`);
        break;
      case "TopicDeleted":
        A().topics.delete(`${e.data.instanceId}/${e.data.topic}`);
        break;
      case "GroupIdCreated":
        A().groupIds.add(`${e.data.instanceId}/${e.data.groupId}`);
        break;
      case "GroupIdDeleted":
        A().groupIds.delete(`${e.data.instanceId}/${e.data.groupId}`);
        break;
    }
  }

  /** Is the principal present and enabled? */
  isActive(p: PrincipalRef): boolean {
    const a = this.accounts.get(p.accountId);
    if (!a) return false;
    if (p.kind === "root") return true;
    const u = a.users.get(p.userId);
    return u !== undefined && !u.disabled;
  }

  /** Policy refs (`System:x`, `Custom:y`) reaching a user directly or through its groups. */
  effectiveRefs(account: string, userId: string): Set<string> {
    const a = this.accounts.get(account)!;
    const refs = new Set(a.users.get(userId)!.policies);
    for (const g of a.groups.values()) if (g.members.has(userId)) for (const r of g.policies) refs.add(r);
    return refs;
  }

  /** Whether an AccessKey exists, and if so whether it can authenticate (active key, enabled owner). */
  keyUsable(accessKeyId: string): boolean | undefined {
    const k = this.keys.get(accessKeyId);
    if (!k) return undefined;
    if (k.owner === "root") return k.status === "Active";
    const u = this.accounts.get(k.account)?.users.get(k.owner);
    if (!u) return undefined;
    return k.status === "Active" && !u.disabled;
  }
}

/** How console grants combine with RAM policies (the projection's `consoleGrants` option). */
export type GrantMode = "deny-wins" | "union";

/**
 * The reference decision for a request, from the model alone: inactive
 * principal → ImplicitDeny (`principal-inactive`); otherwise the default
 * versions of the policies reaching the user (directly or through groups),
 * evaluated with `evaluatePolicies`; console grants are one more policy of
 * Allow statements (`deny-wins`) or, in `union` mode, give the permission
 * whenever the RAM policies do not (seed 003: "a permission exists if RAM
 * policies or console grants give it").
 */
export function referenceAuthorize(
  m: HistoryModel,
  p: PrincipalRef,
  action: string,
  resource: string,
  context: RequestContext | undefined,
  mode: GrantMode = "deny-wins",
): Pick<Decision, "decision" | "reason" | "decidingStatements"> {
  if (!m.isActive(p))
    return { decision: "ImplicitDeny", reason: "principal-inactive", decidingStatements: [] };
  const req = { action, resource, ...(context ? { context } : {}) };
  if (p.kind === "root") return evaluatePolicies({ accountId: p.accountId, kind: "root" }, [], req);
  const a = m.accounts.get(p.accountId)!;
  const u = a.users.get(p.userId)!;
  const principal: Principal = { accountId: p.accountId, kind: "user", name: u.name };
  const ram: CompiledPolicy[] = [];
  for (const ref of m.effectiveRefs(p.accountId, p.userId)) {
    const [type, name] = ref.split(":", 2) as ["System" | "Custom", string];
    if (type === "System") {
      const sp = getSystemPolicy(name)!;
      ram.push(compiled(sp.document, { name, type, version: sp.version }));
    } else {
      const pol = a.policies.get(name);
      if (!pol) continue;
      ram.push(
        compiled(pol.versions.get(pol.defaultVersion) as object, { name, type, version: pol.defaultVersion }),
      );
    }
  }
  const grants = grantPolicy(p.accountId, u);
  if (!grants) return evaluatePolicies(principal, ram, req);
  if (mode === "deny-wins") return evaluatePolicies(principal, [...ram, grants], req);
  const d = evaluatePolicies(principal, ram, req);
  if (d.decision === "Allow") return d;
  const g = evaluatePolicies(principal, [grants], req);
  return g.decision === "Allow" ? g : d;
}

const compiledDocs = new WeakMap<object, Map<string, CompiledPolicy>>();
/** Validate and compile a document once per (document object, name, type, version). */
function compiled(doc: object, ref: PolicyRef): CompiledPolicy {
  let byRef = compiledDocs.get(doc);
  if (!byRef) {
    byRef = new Map();
    compiledDocs.set(doc, byRef);
  }
  const k = `${ref.type}\u0000${ref.name}\u0000${ref.version}`;
  let c = byRef.get(k);
  if (!c) {
    c = compilePolicySource(doc, ref);
    byRef.set(k, c);
  }
  return c;
}

/** Console grants as Allow statements: the topic (a parent topic with its sub-topics), plus access to the instance. */
function grantPolicy(account: string, u: MUser): CompiledPolicy | undefined {
  if (u.grants.size === 0) return undefined;
  const Statement: DocTemplate["Statement"] = [];
  const instances = new Set<string>();
  for (const [k, perms] of u.grants) {
    const [inst, topic] = k.split("\u0000") as [string, string];
    instances.add(inst);
    Statement.push({
      Effect: "Allow",
      Action: [...perms].map((x) => `mq:${x}`),
      // SPEC §4.1: a parent topic (one level) covers its sub-topics; a longer topic only itself.
      Resource: [
        mqTopicArn({ region: "*", accountId: account }, inst, topic),
        ...(topic.includes("/") ? [] : [mqTopicArn({ region: "*", accountId: account }, inst, `${topic}/*`)]),
      ],
    });
  }
  Statement.push({
    Effect: "Allow",
    Action: ["mq:MqttInstanceAccess"],
    Resource: [...instances].map((i) => mqInstanceArn({ region: "*", accountId: account }, i)),
  });
  return compilePolicySource(
    { Version: "1", Statement },
    { name: "console-grants", type: "ConsoleGrant", version: "v1" },
  );
}
