/**
 * Fuzzing the parse and validate stages (STYLE.md, "fuzz the parsers"). Whatever
 * comes in — random JSON values, policies with one part broken, random text,
 * truncated documents, hostile nesting — `parsePolicy` and `validatePolicy`
 * never throw; they answer `{ ok }`, every error has a non-empty path, code and
 * message, and an accepted document compiles and evaluates without throwing.
 *
 * | fuzz target | input | runs |
 * |---|---|---|
 * | `validatePolicy` | `fc.jsonValue()` | 500 |
 * | `validatePolicy` | policy-shaped records, each field valid or random | 1000 |
 * | `validatePolicy` + `parsePolicy` | valid policies with 1–4 mutations | 1000 |
 * | `parsePolicy` | random text, JSON text, edits and every prefix of valid texts | 500 + 500 + 300 |
 * | `parsePolicy` + `validatePolicy` | nesting 10,000 deep | examples |
 * | `compileWildcard` | pathological patterns on 100,000-char subjects | examples |
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  amqpExchangeMessagesArn,
  amqpQueueMessagesArn,
  compilePolicy,
  compilePolicySource,
  compileWildcard,
  evaluatePolicies,
  mqInstanceArn,
  mqTopicArn,
  type PolicyIssue,
  parsePolicy,
  ramArn,
  type ValidationResult,
  validatePolicy,
} from "../src/mod.ts";

const ACCT = "1234567890123456";
const SCOPE = { region: "local", accountId: ACCT };
const USER = { accountId: ACCT, kind: "user" as const, name: "fuzz" };
const PROBES = [
  { action: "mq:PUB", resource: mqTopicArn(SCOPE, "mqtt-local", "a/b") },
  { action: "mq:MqttInstanceAccess", resource: mqInstanceArn(SCOPE, "mqtt-local") },
  {
    action: "amqp:BasicPublish",
    resource: amqpExchangeMessagesArn(SCOPE, "/", "ex", "k"),
    context: { "acs:SourceIp": "10.1.2.3", "mq:Qos": 1, "acs:CurrentTime": "2024-01-01T00:00:00Z" },
  },
  { action: "amqp:BasicConsume", resource: amqpQueueMessagesArn(SCOPE, "v", "q") },
  { action: "ram:CreateUser", resource: ramArn(ACCT, "user", "bob") },
];
const TIMEOUT = 20_000;

function checkIssue(i: PolicyIssue): void {
  expect(typeof i.path).toBe("string");
  expect(i.path.length).toBeGreaterThan(0);
  expect(typeof i.message).toBe("string");
  expect(i.message.length).toBeGreaterThan(0);
  expect(typeof i.code).toBe("string");
  expect(i.code.length).toBeGreaterThan(0);
}

/** The contract of every validation result; an accepted document compiles and evaluates. */
function checkResult(r: ValidationResult): void {
  expect(typeof r.ok).toBe("boolean");
  expect(Array.isArray(r.warnings)).toBe(true);
  r.warnings.forEach(checkIssue);
  if (!r.ok) {
    expect(r.errors.length).toBeGreaterThan(0);
    r.errors.forEach(checkIssue);
    return;
  }
  expect(r.document.Version).toBe("1");
  expect(r.document.Statement.length).toBeGreaterThan(0);
  const compiled = compilePolicy(r.document, { name: "fuzz", type: "Custom", version: "v1" });
  expect(compiled.statements.length).toBe(r.document.Statement.length);
  for (const probe of PROBES) {
    const d = evaluatePolicies(USER, [compiled], probe);
    expect(["Allow", "ExplicitDeny", "ImplicitDeny"]).toContain(d.decision);
  }
}

/** Validate the value, and parse its JSON text: both must keep the contract. */
function checkValue(v: unknown): void {
  checkResult(validatePolicy(v));
  const text = JSON.stringify(v);
  if (text !== undefined) checkResult(parsePolicy(text));
}

// ---------------------------------------------------------------------------
// Generators.

const VALID_DOCS: unknown[] = [
  { Version: "1", Statement: [{ Effect: "Allow", Action: "mq:PUB", Resource: "*" }] },
  {
    Version: "1",
    Statement: {
      Sid: "pub",
      Effect: "Deny",
      NotAction: ["mq:SUB", "amqp:Basic*"],
      NotResource: [`acs:mq:*:${ACCT}:topic/mqtt-local/a/*`, "acs:mq:*:*:TopicA", "acs:mq:*:*:mqtt-local%b"],
      Condition: {
        IpAddress: { "acs:SourceIp": ["10.0.0.0/8", "2001:db8::/32"] },
        Bool: { "acs:SecureTransport": "true" },
        NumericLessThanEquals: { "mq:Qos": 1 },
      },
    },
  },
  {
    Version: "1",
    Statement: [
      {
        Effect: "Allow",
        Action: ["amqp:CreatExchange", "amqp:GetVhost"],
        Resource: ["acs:amqp:*:*:/vhosts/%2F/*", "acs:amqp:*:*:/instances/amqp-*/vhosts/v1"],
        Condition: {
          StringLike: { "amqp:RoutingKey": ["orders.*", "?"] },
          DateLessThan: { "acs:CurrentTime": "2030-01-01T00:00:00Z" },
          StringNotEqualsIgnoreCase: { "app:Tier": "free" },
        },
      },
      { Effect: "Deny", Action: "ram:*", Resource: `acs:ram:*:${ACCT}:user/*` },
    ],
  },
];

const atom = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.string({ unit: "grapheme", maxLength: 20 }),
  fc.string({ unit: "binary", maxLength: 20 }),
  fc.constantFrom(
    "",
    "*",
    "1",
    "Allow",
    "Deny",
    "mq:PUB",
    "acs:mq:*:*:*",
    "acs:",
    "::",
    "__proto__",
    "constructor",
    "\u0000",
    "\ud800",
    "10.0.0.0/33",
    "2024-02-30",
    "x".repeat(10_000),
    "😀".repeat(3_000),
  ),
  fc.constantFrom(0, -0, 1, 1e308, -1.5, true, false, null, [], {}),
);

/** A value that is one of the valid forms of a field, or anything at all. */
const orJunk = <T>(valid: fc.Arbitrary<T>) =>
  fc.oneof({ arbitrary: valid, weight: 3 }, { arbitrary: atom as fc.Arbitrary<unknown>, weight: 1 });
const stringOrList = (values: string[]) =>
  orJunk(
    fc.oneof(fc.constantFrom(...values), fc.array(orJunk(fc.constantFrom(...values)), { maxLength: 3 })),
  );
const OPS = [
  "StringEquals",
  "StringNotLike",
  "NumericEquals",
  "DateGreaterThan",
  "Bool",
  "IpAddress",
  "NotIpAddress",
  "stringequals",
  "Foo",
];
const KEYS = [
  "acs:SourceIp",
  "mq:Qos",
  "acs:CurrentTime",
  "acs:SecureTransport",
  "mq:Foo",
  "app:x",
  "nocolon",
  "__proto__",
];
const conditionish = orJunk(
  fc.dictionary(
    fc.constantFrom(...OPS),
    orJunk(fc.dictionary(fc.constantFrom(...KEYS), orJunk(fc.oneof(atom, fc.array(atom, { maxLength: 3 }))))),
    { maxKeys: 3 },
  ),
);
const statementish = fc.record(
  {
    Sid: orJunk(fc.string()),
    Effect: orJunk(fc.constantFrom("Allow", "Deny", "allow")),
    Action: stringOrList(["mq:PUB", "mq:*", "*", "amqp:CreatExchange", "mq", "mq:PUB:x", "m q:P"]),
    NotAction: stringOrList(["mq:SUB", "*:*"]),
    Resource: stringOrList([
      "*",
      "acs:mq:*:*:*",
      "acs:mq:*",
      "acs:MQ:*:*:x",
      "acs:mq:*:abc:x",
      "acs:mq:*:*:",
      "x",
    ]),
    NotResource: stringOrList(["acs:amqp:*:*:/vhosts/*"]),
    Condition: conditionish,
    Extra: atom,
  },
  { requiredKeys: [] },
);
const policyish = fc.record(
  {
    Version: orJunk(fc.constantFrom("1", "2", 1)),
    Statement: orJunk(fc.oneof(statementish, fc.array(statementish, { maxLength: 4 }))),
    Id: atom,
  },
  { requiredKeys: [] },
);

// Mutations of valid documents.

type Json = unknown;
type Path = (string | number)[];

/** Every path to a value inside `v` (the root included). */
function paths(v: Json, at: Path = []): Path[] {
  const out: Path[] = [at];
  if (Array.isArray(v)) {
    for (const [i, x] of v.entries()) out.push(...paths(x, [...at, i]));
  } else if (v !== null && typeof v === "object")
    for (const [k, x] of Object.entries(v)) out.push(...paths(x, [...at, k]));
  return out;
}

/** Define an own, enumerable property (also for `__proto__`, which plain assignment would not create). */
function define(o: object, k: string | number, v: Json): void {
  Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
}

/** A deep copy of `root` with `f` applied to the value at `path` (f returns undefined to delete it). */
function edit(root: Json, path: Path, f: (v: Json) => Json | undefined): Json {
  if (path.length === 0) return f(root);
  const [head, ...rest] = path;
  if (Array.isArray(root)) {
    const copy = [...root];
    const next = edit(copy[head as number], rest, f);
    if (next === undefined && rest.length === 0) copy.splice(head as number, 1);
    else copy[head as number] = next;
    return copy;
  }
  const copy: Record<string, Json> = {};
  for (const [k, v] of Object.entries(root as Record<string, Json>)) {
    if (k !== head) define(copy, k, v);
    else {
      const next = edit(v, rest, f);
      if (next !== undefined || rest.length > 0) define(copy, k, next);
    }
  }
  return copy;
}

function nest(v: Json, depth: number, asArray: boolean): Json {
  let out = v;
  for (let i = 0; i < depth; i++) out = asArray ? [out] : { a: out };
  return out;
}

type Mutation = (v: Json) => Json | undefined;
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.constant<Mutation>(() => undefined), // drop the key / element
  atom.map(
    (a): Mutation =>
      () =>
        a,
  ), // replace with anything
  fc.constantFrom<Mutation>(
    (v) => (typeof v === "string" ? 1 : typeof v === "number" ? String(v) : "x"), // wrong type
    (v) => [v, v], // a list where a value was
    (v) => ({ value: v }),
    () => null,
    (v) => (typeof v === "string" ? v.repeat(2_000) : v), // huge string
    (v) => (typeof v === "string" ? `${v}\u0000\u202e😀\ud800` : v), // unicode, lone surrogate
    (v) => (typeof v === "string" ? v.slice(0, Math.floor(v.length / 2)) : v), // cut
    (v) => (typeof v === "string" ? v.toUpperCase() : v),
  ),
  fc.tuple(fc.integer({ min: 1, max: 200 }), fc.boolean()).map(
    ([d, asArray]): Mutation =>
      (v) =>
        nest(v, d, asArray),
  ), // deep nesting
  fc.constantFrom("__proto__", "constructor", "prototype", "toString", "hasOwnProperty").map(
    (k): Mutation =>
      (v) => {
        if (v === null || typeof v !== "object" || Array.isArray(v)) return v;
        const copy: Record<string, Json> = {};
        for (const [key, x] of Object.entries(v)) define(copy, key, x);
        define(copy, k, { Effect: "Allow", Action: "*", Resource: "*" });
        return copy;
      },
  ),
);
const mutatedDoc = fc
  .tuple(
    fc.constantFrom(...VALID_DOCS),
    fc.array(fc.tuple(fc.nat(), mutation), { minLength: 1, maxLength: 4 }),
  )
  .map(([doc, edits]) => {
    let v: Json = doc;
    for (const [at, m] of edits) {
      const all = paths(v);
      v = edit(v, all[at % all.length]!, m);
    }
    return v;
  });

const validTexts = VALID_DOCS.flatMap((d) => [JSON.stringify(d), JSON.stringify(d, null, 2)]);

// ---------------------------------------------------------------------------

describe("validatePolicy and parsePolicy never throw", () => {
  it("the seed documents are valid (the mutations start from valid policies)", () => {
    for (const d of VALID_DOCS) {
      const r = validatePolicy(d);
      expect(r.ok, JSON.stringify(r)).toBe(true);
      checkResult(r);
    }
  });

  it(
    "random JSON values",
    () => {
      fc.assert(fc.property(fc.jsonValue(), checkValue), { numRuns: 500 });
    },
    TIMEOUT,
  );

  it(
    "policy-shaped values with random fields",
    () => {
      fc.assert(fc.property(policyish, checkValue), { numRuns: 1000 });
    },
    TIMEOUT,
  );

  it(
    "valid policies with keys dropped or replaced, wrong types, huge strings, deep nesting, __proto__ keys, unicode",
    () => {
      fc.assert(fc.property(mutatedDoc, checkValue), { numRuns: 1000 });
    },
    TIMEOUT,
  );

  it(
    "random text and JSON text",
    () => {
      fc.assert(
        fc.property(fc.string({ unit: "binary", maxLength: 200 }), (t) => checkResult(parsePolicy(t))),
        { numRuns: 500 },
      );
      fc.assert(
        fc.property(fc.json(), (t) => checkResult(parsePolicy(t))),
        { numRuns: 500 },
      );
    },
    TIMEOUT,
  );

  it(
    "every prefix of a valid document's text, and random edits of it",
    () => {
      for (const text of validTexts) {
        for (let i = 0; i <= text.length; i++) checkResult(parsePolicy(text.slice(0, i)));
      }
      const edited = fc
        .tuple(
          fc.constantFrom(...validTexts),
          fc.array(fc.tuple(fc.nat(), fc.nat(3), fc.string({ unit: "binary", maxLength: 3 })), {
            minLength: 1,
            maxLength: 4,
          }),
        )
        .map(([t, edits]) => {
          for (const [at, del, ins] of edits) {
            const i = at % (t.length + 1);
            t = t.slice(0, i) + ins + t.slice(i + del);
          }
          return t;
        });
      fc.assert(
        fc.property(edited, (t) => checkResult(parsePolicy(t))),
        { numRuns: 300 },
      );
    },
    TIMEOUT,
  );

  it("over-long documents are refused, not parsed", () => {
    checkResult(parsePolicy(`{"Version":"1","Statement":[${" ".repeat(200_000)}]}`));
    checkResult(parsePolicy(`"${"x".repeat(200_000)}"`));
    const r = validatePolicy({
      Version: "1",
      Statement: [{ Effect: "Allow", Action: "*", Resource: `acs:mq:*:*:${"a".repeat(10_000)}` }],
    });
    expect(r.ok).toBe(false);
    checkResult(r);
  });

  // Hostile nesting: 10,000 levels is ~20,000 characters of text, well under the
  // size guard of parsePolicyText, so it reaches JSON.parse and validation. Each
  // place a deep value can sit is its own case, so a fix can be checked place by place.
  const DEPTH = 10_000;
  const deep = (asArray: boolean) => nest(1, DEPTH, asArray);
  const statement = (extra: Record<string, unknown>) => ({
    Effect: "Allow",
    Action: "*",
    Resource: "*",
    ...extra,
  });
  for (const asArray of [true, false]) {
    const kind = asArray ? "arrays" : "objects";
    it(`${kind} nested ${DEPTH} deep as JSON text`, () => {
      const inner = asArray
        ? `${"[".repeat(DEPTH)}${"]".repeat(DEPTH)}`
        : `${'{"a":'.repeat(DEPTH)}1${"}".repeat(DEPTH)}`;
      checkResult(parsePolicy(`{"Version":"1","Statement":${inner}}`));
    });
    const places: [string, () => unknown][] = [
      ["Statement", () => ({ Version: "1", Statement: deep(asArray) })],
      [
        "Statement[0].Condition",
        () => ({ Version: "1", Statement: [statement({ Condition: deep(asArray) })] }),
      ],
    ];
    if (asArray) {
      // Values the validator quotes back in its messages.
      places.push(
        ["Version", () => ({ Version: deep(true), Statement: [statement({})] })],
        ["Statement[0].Effect", () => ({ Version: "1", Statement: [statement({ Effect: deep(true) })] })],
        [
          "Statement[0].Action[0]",
          () => ({ Version: "1", Statement: [statement({ Action: [deep(true)] })] }),
        ],
      );
    }
    for (const [where, make] of places) {
      it(`${kind} nested ${DEPTH} deep at ${where}, as a value`, () => {
        checkResult(validatePolicy(make()));
      });
    }
  }

  it("a policy with a `__proto__` statement key or condition key does not pollute prototypes", () => {
    const text =
      '{"Version":"1","__proto__":{"x":1},"Statement":{"Effect":"Allow","Action":"*","Resource":"*",' +
      '"__proto__":{"polluted":true},"Condition":{"StringEquals":{"__proto__":"x"}}}}';
    const r = parsePolicy(text);
    expect(r.ok).toBe(false);
    checkResult(r);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(({} as Record<string, unknown>).x).toBeUndefined();
  });

  it("compilePolicySource throws only PolicyValidationError", () => {
    fc.assert(
      fc.property(fc.oneof(mutatedDoc, policyish), (v) => {
        try {
          compilePolicySource(v, { name: "fuzz", type: "Custom", version: "v1" });
        } catch (e) {
          expect((e as Error).name).toBe("PolicyValidationError");
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe("pathological wildcards finish (the test timeout catches a hang)", () => {
  const long = "a".repeat(100_000);

  it(
    "`*a*a…*ab` (200 stars) against 100,000 `a`s",
    () => {
      const m = compileWildcard(`${"*a".repeat(200)}b`);
      expect(m(long)).toBe(false);
      expect(m(`${long}b`)).toBe(true);
      expect(m(`${"ab".repeat(50_000)}`)).toBe(true);
    },
    TIMEOUT,
  );

  it(
    "`*aaaa…?b` against long subjects",
    () => {
      const m = compileWildcard(`*${"a".repeat(50)}?b`);
      expect(m(long)).toBe(false);
      expect(m(`${long}xb`)).toBe(true);
      expect(m(`${long}b`)).toBe(true); // the `?` takes the last `a`
      expect(m(`${"a".repeat(49)}xb`.repeat(2_000))).toBe(false);
    },
    TIMEOUT,
  );

  it(
    "`*?*?…` and middle `?` segments against long subjects",
    () => {
      expect(compileWildcard("*?".repeat(300))(long)).toBe(true);
      expect(compileWildcard(`*${"a?".repeat(100)}*b*`)(long)).toBe(false);
      expect(compileWildcard(`*${"a?".repeat(100)}*a`)(long)).toBe(true);
    },
    TIMEOUT,
  );

  it(
    "a StringLike condition with a pathological pattern against a long context value",
    () => {
      const p = compilePolicySource(
        {
          Version: "1",
          Statement: {
            Effect: "Allow",
            Action: "*",
            Resource: "*",
            Condition: { StringLike: { "mq:ClientId": `${"*a".repeat(200)}b` } },
          },
        },
        { name: "p", type: "Custom", version: "v1" },
      );
      const req = { action: "mq:PUB", resource: PROBES[0]!.resource, context: { "mq:ClientId": long } };
      expect(evaluatePolicies(USER, [p], req).decision).toBe("ImplicitDeny");
    },
    TIMEOUT,
  );
});
