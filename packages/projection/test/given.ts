/**
 * Given/when/then for the projection (STYLE.md):
 *
 *   given(accountCreated(), userCreated("u1"), …)
 *     .when(policyDetached(…))
 *     .then(({ projection, affected }) => { … });
 *
 * `given` records its events at positions 1..n and applies them to a fresh
 * projection; `when` records and applies more to the same projection and
 * collects what they affected; `then` runs checks. Decisions are asked through
 * `decide`, which also checks that the cached answer equals the uncached one.
 */
import type { EventEnvelope } from "@portcullis/events";
import { type Decision, mqInstanceArn, mqTopicArn, type RequestContext } from "@portcullis/policy";
import { expect } from "vitest";
import {
  type Affected,
  noneAffected,
  type PrincipalRef,
  Projection,
  type ProjectionOptions,
} from "../src/mod.ts";
import { ACCT, ev, FAKE_SECRET, Recorder } from "./log.ts";

/** The outcome of `when`: the projection after the events and what they affected. */
export interface Outcome {
  projection: Projection;
  /** Union of what the `when` events affected. */
  affected: Affected;
  /** What each `when` event affected, in order. */
  each: Affected[];
  /** Run checks on the outcome. (An Outcome is not a promise: do not `await` it.) */
  then(check: (o: Outcome) => void): void;
}

/** A projection built from the `given` events. */
export class Scenario {
  readonly projection: Projection;
  readonly recorder = new Recorder();

  constructor(events: readonly EventEnvelope[], opts: ProjectionOptions = {}) {
    this.projection = new Projection(opts);
    for (const e of events) this.projection.apply(this.recorder.record(e));
  }

  /** Apply more events (recorded after the given ones). */
  when(...events: EventEnvelope[]): Outcome {
    const each = events.map((e) => this.projection.apply(this.recorder.record(e)));
    const affected = noneAffected();
    for (const a of each)
      for (const k of ["principals", "accessKeys", "policies", "resources"] as const)
        for (const x of a[k]) affected[k].add(x);
    const o: Outcome = {
      projection: this.projection,
      affected,
      each,
      // biome-ignore lint/suspicious/noThenProperty: given/when/then is the house style (STYLE.md); guarded below.
      then: (check: (o: Outcome) => void, ...promiseMachinery: unknown[]) => {
        // `await outcome` would call then(resolve, reject) and loop forever; fail loudly instead.
        if (promiseMachinery.length > 0) throw new TypeError("an Outcome is not a promise: do not await it");
        check(o);
      },
    };
    return o;
  }

  /** The cached decision, checked against the uncached one. */
  decide(p: PrincipalRef, action: string, resource: string, context?: RequestContext): Decision {
    const d = this.projection.authorize(p, action, resource, context);
    expect(d).toEqual(this.projection.authorizeUncached(p, action, resource, context));
    return d;
  }
}

/** Start a scenario from these events (default projection options). */
export function given(...events: EventEnvelope[]): Scenario {
  return new Scenario(events);
}

/** Start a scenario with projection options. */
export function givenWith(opts: ProjectionOptions, ...events: EventEnvelope[]): Scenario {
  return new Scenario(events, opts);
}

// ---------------------------------------------------------------------------
// Principals, resources, documents

/** The root of an account. */
export const root = (accountId = ACCT): PrincipalRef => ({ accountId, kind: "root" });
/** A RAM user. */
export const user = (userId: string, accountId = ACCT): PrincipalRef => ({ accountId, kind: "user", userId });
/** `acs:mq:local:<acct>:topic/<inst>/<topic>`. */
export const topic = (t: string, inst = "i1", accountId = ACCT) =>
  mqTopicArn({ region: "local", accountId }, inst, t);
/** `acs:mq:local:<acct>:instance/<inst>`. */
export const instance = (inst = "i1", accountId = ACCT) =>
  mqInstanceArn({ region: "local", accountId }, inst);

/** A statement. */
export const allow = (action: string | string[], resource: string | string[] = "*") => ({
  Effect: "Allow" as const,
  Action: [action].flat(),
  Resource: [resource].flat(),
});
/** A Deny statement. */
export const deny = (action: string | string[], resource: string | string[] = "*") => ({
  Effect: "Deny" as const,
  Action: [action].flat(),
  Resource: [resource].flat(),
});
/** A policy document in normal form. */
export const doc = (...Statement: ReturnType<typeof allow | typeof deny>[]) => ({
  Version: "1" as const,
  Statement,
});

// ---------------------------------------------------------------------------
// Event shorthands (account ACCT unless `account` is given)

type Target = { kind: "user"; userId: string } | { kind: "group"; groupId: string };
/** `{ kind: "user" }` target. */
export const toUser = (userId: string): Target => ({ kind: "user", userId });
/** `{ kind: "group" }` target. */
export const toGroup = (groupId: string): Target => ({ kind: "group", groupId });

export const accountCreated = (account = ACCT, alias = "acme") =>
  ev("AccountCreated", { accountId: account, alias }, { account });
export const userCreated = (userId: string, userName = userId, account = ACCT) =>
  ev("UserCreated", { userId, userName }, { account });
export const userDisabled = (userId: string) => ev("UserDisabled", { userId });
export const userEnabled = (userId: string) => ev("UserEnabled", { userId });
export const userDeleted = (userId: string) => ev("UserDeleted", { userId });
export const groupCreated = (groupId: string, groupName = groupId) =>
  ev("GroupCreated", { groupId, groupName });
export const groupDeleted = (groupId: string) => ev("GroupDeleted", { groupId });
export const userAddedToGroup = (userId: string, groupId: string) =>
  ev("UserAddedToGroup", { userId, groupId });
export const userRemovedFromGroup = (userId: string, groupId: string) =>
  ev("UserRemovedFromGroup", { userId, groupId });
export const policyCreated = (policyName: string, document: unknown, account = ACCT) =>
  ev("PolicyCreated", { policyName, versionId: "v1", document }, { account });
export const policyVersionCreated = (
  policyName: string,
  versionId: string,
  document: unknown,
  setAsDefault: boolean,
  removedVersionId?: string,
) =>
  ev("PolicyVersionCreated", {
    policyName,
    versionId,
    document,
    setAsDefault,
    ...(removedVersionId !== undefined ? { removedVersionId } : {}),
  });
export const defaultVersionSet = (policyName: string, versionId: string) =>
  ev("PolicyDefaultVersionSet", { policyName, versionId });
export const policyVersionDeleted = (policyName: string, versionId: string) =>
  ev("PolicyVersionDeleted", { policyName, versionId });
export const policyDeleted = (policyName: string) => ev("PolicyDeleted", { policyName });
export const attached = (
  policyName: string,
  target: Target,
  policyType: "System" | "Custom" = "Custom",
  account = ACCT,
) => ev("PolicyAttached", { policyName, policyType, target }, { account });
export const detached = (policyName: string, target: Target, policyType: "System" | "Custom" = "Custom") =>
  ev("PolicyDetached", { policyName, policyType, target });
export const grantAdded = (userId: string, t: string, perms: ("PUB" | "SUB")[], instanceId = "i1") =>
  ev("ConsoleGrantAdded", { userId, instanceId, topic: t, perms });
export const grantRemoved = (userId: string, t: string, perms: ("PUB" | "SUB")[], instanceId = "i1") =>
  ev("ConsoleGrantRemoved", { userId, instanceId, topic: t, perms });
export const keyCreated = (accessKeyId: string, owner: string | "root", account = ACCT) =>
  ev(
    "AccessKeyCreated",
    {
      accessKeyId,
      owner: owner === "root" ? { kind: "root" } : { kind: "user", userId: owner },
      secret: { ...FAKE_SECRET },
    },
    { account },
  );
export const keyStatus = (accessKeyId: string, status: "Active" | "Inactive", account = ACCT) =>
  ev("AccessKeyStatusChanged", { accessKeyId, status }, { account });
export const keyDeleted = (accessKeyId: string, account = ACCT) =>
  ev("AccessKeyDeleted", { accessKeyId }, { account });
