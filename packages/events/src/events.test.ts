import { describe, expect, it } from "vitest";
import {
  EVENT_TYPES,
  EventValidationError,
  newEvent,
  SecretBox,
  SecretError,
  safeEqual,
  validateEvent,
} from "./mod.ts";

const acct = "1234567890123456";
const root = { kind: "root", accountId: acct } as const;

describe("event catalog", () => {
  it("has every event of SPEC §5", () => {
    const spec =
      "AccountCreated, UserCreated, UserUpdated, UserDisabled, UserDeleted, AccessKeyCreated, AccessKeyStatusChanged, AccessKeyDeleted, GroupCreated, GroupDeleted, UserAddedToGroup, UserRemovedFromGroup, PolicyCreated, PolicyVersionCreated, PolicyDefaultVersionSet, PolicyVersionDeleted, PolicyDeleted, PolicyAttached, PolicyDetached, ConsoleGrantAdded, ConsoleGrantRemoved, TopicCreated, TopicDeleted, GroupIdCreated, GroupIdDeleted";
    for (const t of spec.split(", ")) expect(EVENT_TYPES).toContain(t);
  });

  it("accepts a valid event and returns it at the current schema version", () => {
    const e = newEvent(
      "UserCreated",
      1,
      acct,
      root,
      { userId: "u-1", userName: "alice" },
      { reason: "onboarding" },
    );
    expect(validateEvent(e)).toMatchObject({
      type: "UserCreated",
      data: { userName: "alice" },
      reason: "onboarding",
    });
  });

  it("rejects bad data with the field path", () => {
    const e = newEvent("PolicyAttached", 1, acct, root, {
      policyName: "p",
      policyType: "Custom",
      target: { kind: "user" },
    });
    expect(() => validateEvent(e)).toThrow(EventValidationError);
    try {
      validateEvent(e);
    } catch (err) {
      expect((err as EventValidationError).issues.map((i) => i.path)).toContain("data.target.userId");
    }
  });

  it("rejects an invalid policy document inside PolicyCreated with its JSON path", () => {
    const e = newEvent("PolicyCreated", 1, acct, root, {
      policyName: "p",
      versionId: "v1",
      document: { Version: "1", Statement: [{ Effect: "Allow", Action: "mq:PUB" }] },
    });
    expect(() => validateEvent(e)).toThrow(/Statement\[0\]: a statement needs exactly one of `Resource`/);
  });

  it("rejects unknown types, bad envelopes and newer schema versions", () => {
    expect(() => validateEvent(newEvent("Nope", 1, acct, root, {}))).toThrow(/unknown event type `Nope`/);
    expect(() => validateEvent({ type: "UserCreated" })).toThrow(EventValidationError);
    expect(() => validateEvent(newEvent("UserDeleted", 7, acct, root, { userId: "u" }))).toThrow(
      /newer than this build/,
    );
    expect(() => validateEvent(newEvent("UserDeleted", 1, "42", root, { userId: "u" }))).toThrow(/16 digits/);
  });

  it("upcasts v1 console grants (`perm`) to v2 (`perms`)", () => {
    const old = newEvent("ConsoleGrantAdded", 1, acct, root, {
      userId: "u",
      instanceId: "mqtt-local",
      topic: "T",
      perm: "PUB+SUB",
    });
    const before = structuredClone(old);
    const e = validateEvent(old);
    expect(e.schemaVersion).toBe(2);
    expect(e.data).toEqual({ userId: "u", instanceId: "mqtt-local", topic: "T", perms: ["PUB", "SUB"] });
    // A new object: the input is left as it was (validation builds its result in its own copy).
    expect(e).not.toBe(old);
    expect(old).toEqual(before);
  });
});

describe("secrets", () => {
  it("seals with AES-256-GCM so the clear secret appears nowhere in the event", () => {
    const { box } = SecretBox.generate();
    const secret = "s3cr3t-VALUE-1234567890";
    const sealed = box.seal(secret, "LTAIkey1");
    const e = validateEvent(
      newEvent("AccessKeyCreated", 1, acct, root, {
        accessKeyId: "LTAIkey1",
        owner: { kind: "root" },
        secret: sealed,
      }),
    );
    expect(JSON.stringify(e)).not.toContain(secret);
    expect(box.open(sealed, "LTAIkey1")).toBe(secret);
  });

  it("refuses the wrong key, the wrong context and tampering", () => {
    const { box } = SecretBox.generate();
    const sealed = box.seal("x", "k1");
    expect(() => SecretBox.generate().box.open(sealed, "k1")).toThrow(SecretError);
    expect(() => box.open(sealed, "k2")).toThrow(SecretError);
    const ct = Buffer.from(sealed.ciphertext, "base64");
    ct[0]! ^= 1;
    expect(() => box.open({ ...sealed, ciphertext: ct.toString("base64") }, "k1")).toThrow(SecretError);
  });

  it("compares in constant time and handles different lengths", () => {
    expect(safeEqual("abc", "abc")).toBe(true);
    expect(safeEqual("abc", "abd")).toBe(false);
    expect(safeEqual("abc", "abcd")).toBe(false);
  });
});
