/**
 * Validate stage: `validatePolicy` checks a parsed value against the policy
 * language of SPEC §3 and returns the document in normal form, every error with
 * its JSON path, and warnings (unknown actions of known services, unknown
 * condition keys of known services). Nothing here throws on bad input.
 */

import { parseArn } from "./arn.ts";
import { canonicalConditionKey, isKnownAction, isKnownService } from "./catalog.ts";
import { checkConditionValue, OPERATORS, suggestOperator } from "./conditions.ts";
import type { PolicyIssue } from "./errors.ts";
import type { ConditionValue, PolicyDocument, Statement } from "./types.ts";

/** Configurable limits (SPEC §2). */
export interface PolicyLimits {
  /** Maximum document size in characters of its compact JSON form. Default 6,144. */
  maxDocumentChars?: number;
}

/** Default document size limit (SPEC §2). */
export const DEFAULT_MAX_DOCUMENT_CHARS = 6144;

/** Outcome of validation: the document in normal form when there are no errors. */
export type ValidationResult =
  | { ok: true; document: PolicyDocument; warnings: PolicyIssue[] }
  | { ok: false; errors: PolicyIssue[]; warnings: PolicyIssue[] };

const STATEMENT_KEYS = new Set([
  "Sid",
  "Effect",
  "Action",
  "NotAction",
  "Resource",
  "NotResource",
  "Condition",
]);
const ACTION_RE = /^[A-Za-z0-9*?_-]+:[A-Za-z0-9*?_-]+$/;
const SERVICE_RE = /^[a-z0-9*?-]+$/;
const REGION_RE = /^[A-Za-z0-9*?_-]*$/;
const ACCOUNT_RE = /^[0-9*?]+$/;
const KEY_RE = /^[A-Za-z0-9_-]+:[A-Za-z0-9_.-]+$/;

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/** `a.b` for plain names, `a["x:y"]` otherwise (JSON path member access). */
const member = (path: string, key: string) =>
  /^[A-Za-z_$][\w$]*$/.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;

const tick = (s: unknown) => `\`${typeof s === "string" ? s : JSON.stringify(s)}\``;

/** Deeper documents are refused; real policies are about 5 levels deep. */
const MAX_DEPTH = 32;

/** Nesting depth of a JSON-like value, computed iteratively; stops counting past `limit`. */
function nestingDepth(value: unknown, limit: number): number {
  let max = 0;
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [v, d] = stack.pop()!;
    if (typeof v !== "object" || v === null) continue;
    if (d > max) max = d;
    if (max > limit) return max;
    for (const child of Array.isArray(v) ? v : Object.values(v)) stack.push([child, d + 1]);
  }
  return max;
}

/** Validate a parsed value as a policy document. */
export function validatePolicy(value: unknown, limits: PolicyLimits = {}): ValidationResult {
  const errors: PolicyIssue[] = [];
  const warnings: PolicyIssue[] = [];
  const err = (path: string, code: string, message: string) => errors.push({ path, code, message });
  const warn = (path: string, code: string, message: string) => warnings.push({ path, code, message });

  if (!isObject(value)) {
    err("$", "not-an-object", "a policy must be a JSON object with `Version` and `Statement`");
    return { ok: false, errors, warnings };
  }
  // Measure depth without recursion first: everything below (JSON.stringify for
  // the size and for messages) recurses, and hostile nesting must not blow the stack.
  const depth = nestingDepth(value, MAX_DEPTH);
  if (depth > MAX_DEPTH) {
    err("$", "too-deep", `document is nested more than ${MAX_DEPTH} levels deep`);
    return { ok: false, errors, warnings };
  }
  const max = limits.maxDocumentChars ?? DEFAULT_MAX_DOCUMENT_CHARS;
  let size: number;
  try {
    size = JSON.stringify(value).length;
  } catch {
    err("$", "not-json", "a policy must be plain JSON data");
    return { ok: false, errors, warnings };
  }
  if (size > max) err("$", "document-too-large", `document is ${size} characters, over the limit of ${max}`);

  for (const k of Object.keys(value)) {
    if (k !== "Version" && k !== "Statement")
      err(member("$", k).replace(/^\$\.?/, ""), "unknown-element", `unknown element ${tick(k)}`);
  }
  if (!Object.hasOwn(value, "Version"))
    err("Version", "missing-version", '`Version` is required and must be "1"');
  else if (value.Version !== "1")
    err("Version", "bad-version", `\`Version\` must be "1", not ${JSON.stringify(value.Version)}`);

  const statements: Statement[] = [];
  const rawStmts = value.Statement;
  if (rawStmts === undefined) err("Statement", "missing-statement", "`Statement` is required");
  else if (Array.isArray(rawStmts)) {
    if (rawStmts.length === 0) err("Statement", "empty-statement", "`Statement` must not be empty");
    rawStmts.forEach((s, i) => {
      const st = validateStatement(s, `Statement[${i}]`, err, warn, errors);
      if (st) statements.push(st);
    });
  } else if (isObject(rawStmts)) {
    const st = validateStatement(rawStmts, "Statement", err, warn, errors);
    if (st) statements.push(st);
  } else err("Statement", "bad-statement", "`Statement` must be an object or an array of objects");

  if (errors.length > 0) return { ok: false, errors, warnings };
  return { ok: true, document: { Version: "1", Statement: statements }, warnings };
}

type Report = (path: string, code: string, message: string) => void;

function stringList(v: unknown, path: string, name: string, err: Report): string[] | undefined {
  if (typeof v === "string") return [v];
  if (Array.isArray(v)) {
    if (v.length === 0) {
      err(path, "empty-list", `\`${name}\` must not be empty`);
      return undefined;
    }
    const out: string[] = [];
    v.forEach((x, i) => {
      if (typeof x === "string") out.push(x);
      else err(`${path}[${i}]`, "not-a-string", `each \`${name}\` entry must be a string, not ${tick(x)}`);
    });
    return out.length === v.length ? out : undefined;
  }
  err(path, "not-a-string", `\`${name}\` must be a string or an array of strings`);
  return undefined;
}

function validateStatement(
  s: unknown,
  path: string,
  err: Report,
  warn: Report,
  errors: readonly PolicyIssue[],
): Statement | undefined {
  if (!isObject(s)) {
    err(path, "bad-statement", "a statement must be a JSON object");
    return undefined;
  }
  const before = errors.length;
  for (const k of Object.keys(s)) {
    if (!STATEMENT_KEYS.has(k)) err(member(path, k), "unknown-element", `unknown element ${tick(k)}`);
  }
  const out: Statement = { Effect: "Allow" };
  if (s.Effect === "Allow" || s.Effect === "Deny") out.Effect = s.Effect;
  else if (s.Effect === undefined)
    err(`${path}.Effect`, "missing-effect", "`Effect` is required (`Allow` or `Deny`)");
  else err(`${path}.Effect`, "bad-effect", `\`Effect\` must be \`Allow\` or \`Deny\`, not ${tick(s.Effect)}`);
  if (s.Sid !== undefined) {
    if (typeof s.Sid === "string") out.Sid = s.Sid;
    else err(`${path}.Sid`, "not-a-string", "`Sid` must be a string");
  }

  const hasA = Object.hasOwn(s, "Action");
  const hasNA = Object.hasOwn(s, "NotAction");
  if (hasA === hasNA)
    err(
      path,
      hasA ? "both-action" : "missing-action",
      "a statement needs exactly one of `Action` and `NotAction`",
    );
  for (const name of ["Action", "NotAction"] as const) {
    if (!Object.hasOwn(s, name)) continue;
    const list = stringList(s[name], `${path}.${name}`, name, err);
    if (!list) continue;
    for (const [i, a] of list.entries()) checkAction(a, listPath(s[name], `${path}.${name}`, i), err, warn);
    out[name] = list;
  }

  const hasR = Object.hasOwn(s, "Resource");
  const hasNR = Object.hasOwn(s, "NotResource");
  if (hasR === hasNR)
    err(
      path,
      hasR ? "both-resource" : "missing-resource",
      "a statement needs exactly one of `Resource` and `NotResource`",
    );
  for (const name of ["Resource", "NotResource"] as const) {
    if (!Object.hasOwn(s, name)) continue;
    const list = stringList(s[name], `${path}.${name}`, name, err);
    if (!list) continue;
    for (const [i, r] of list.entries()) checkResource(r, listPath(s[name], `${path}.${name}`, i), err);
    out[name] = list;
  }

  if (s.Condition !== undefined) {
    const cond = checkCondition(s.Condition, `${path}.Condition`, err, warn);
    if (cond) out.Condition = cond;
  }
  return errors.length === before ? out : undefined;
}

function listPath(raw: unknown, path: string, i: number): string {
  return Array.isArray(raw) ? `${path}[${i}]` : path;
}

function checkAction(a: string, path: string, err: Report, warn: Report): void {
  if (a === "*") return;
  if (!ACTION_RE.test(a)) {
    err(
      path,
      "malformed-action",
      `malformed action ${tick(a)}: expected \`<service>:<Action>\`, e.g. \`mq:PUB\``,
    );
    return;
  }
  const [svc, name] = a.split(":") as [string, string];
  if (
    !svc.includes("*") &&
    !svc.includes("?") &&
    isKnownService(svc) &&
    !name.includes("*") &&
    !name.includes("?")
  ) {
    if (!isKnownAction(a))
      warn(
        path,
        "unknown-action",
        `unknown action ${tick(a)} of service \`${svc.toLowerCase()}\`; it grants nothing`,
      );
  }
}

function checkResource(r: string, path: string, err: Report): void {
  if (r === "*") return;
  if (/[\u0000-\u001f\u007f]/.test(r)) {
    err(path, "malformed-arn", `malformed ARN ${tick(r)}: control characters are not allowed`);
    return;
  }
  const arn = parseArn(r);
  const hint = "expected `acs:<service>:<region>:<account-id>:<relative-id>` or `*`";
  if (!arn) {
    // A wildcard may stand for the rest of the ARN, e.g. `acs:mq:*`.
    if (r.startsWith("acs:") && r.endsWith("*") && SERVICE_RE.test(r.slice(4).split(":")[0] ?? "")) return;
    err(path, "malformed-arn", `malformed ARN ${tick(r)}: ${hint}`);
    return;
  }
  if (!SERVICE_RE.test(arn.service))
    err(path, "malformed-arn", `malformed ARN ${tick(r)}: bad service ${tick(arn.service)}`);
  else if (!REGION_RE.test(arn.region))
    err(path, "malformed-arn", `malformed ARN ${tick(r)}: bad region ${tick(arn.region)}`);
  else if (!ACCOUNT_RE.test(arn.accountId))
    err(
      path,
      "malformed-arn",
      `malformed ARN ${tick(r)}: account id ${tick(arn.accountId)} must be digits or \`*\``,
    );
  else if (arn.relative === "")
    err(path, "malformed-arn", `malformed ARN ${tick(r)}: empty resource id; ${hint}`);
}

function checkCondition(
  c: unknown,
  path: string,
  err: Report,
  warn: Report,
): Record<string, Record<string, ConditionValue[]>> | undefined {
  if (!isObject(c)) {
    err(path, "bad-condition", "`Condition` must be an object of `{ Operator: { Key: value } }`");
    return undefined;
  }
  const out: Record<string, Record<string, ConditionValue[]>> = {};
  for (const op of Object.keys(c)) {
    const opPath = member(path, op);
    if (!OPERATORS.has(op)) {
      const s = suggestOperator(op);
      err(opPath, "unknown-operator", `unknown operator ${tick(op)}${s ? `; did you mean \`${s}\`?` : ""}`);
      continue;
    }
    const block = c[op];
    if (!isObject(block) || Object.keys(block).length === 0) {
      err(opPath, "bad-condition", `\`${op}\` must be a non-empty object of \`{ Key: value | [values] }\``);
      continue;
    }
    const keys: Record<string, ConditionValue[]> = {};
    for (const key of Object.keys(block)) {
      const keyPath = member(opPath, key);
      if (!KEY_RE.test(key)) {
        err(keyPath, "malformed-key", `malformed condition key ${tick(key)}: expected \`<service>:<Key>\``);
        continue;
      }
      const svc = key.split(":")[0]!.toLowerCase();
      if ((svc === "acs" || isKnownService(svc)) && !canonicalConditionKey(key))
        warn(keyPath, "unknown-condition-key", `unknown condition key ${tick(key)}`);
      const raw = block[key];
      const values = Array.isArray(raw) ? raw : [raw];
      if (values.length === 0) {
        err(keyPath, "empty-list", "a condition key needs at least one value");
        continue;
      }
      if (op === "Bool" && values.length !== 1) {
        err(keyPath, "bool-multiple", "`Bool` takes exactly one value");
        continue;
      }
      let ok = true;
      values.forEach((v, i) => {
        const problem = checkConditionValue(op, v);
        if (problem) {
          ok = false;
          err(Array.isArray(raw) ? `${keyPath}[${i}]` : keyPath, "bad-condition-value", problem);
        }
      });
      if (ok) keys[key] = values as ConditionValue[];
    }
    out[op] = keys;
  }
  return out;
}
