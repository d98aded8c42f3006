/**
 * Parse stage: JSON text → value, with syntax errors located by line and
 * column, and `parsePolicy` = parse then validate. Nothing here throws on bad input.
 */

import type { PolicyIssue } from "./errors.ts";
import { locateJsonError } from "./json-locate.ts";
import {
  DEFAULT_MAX_DOCUMENT_CHARS,
  type PolicyLimits,
  type ValidationResult,
  validatePolicy,
} from "./validate.ts";

/** Outcome of parsing JSON text. */
export type ParseResult = { ok: true; value: unknown } | { ok: false; error: PolicyIssue };

/** Parse JSON text, reporting a syntax error with its line and column. */
export function parsePolicyText(text: string, limits: PolicyLimits = {}): ParseResult {
  const max = limits.maxDocumentChars ?? DEFAULT_MAX_DOCUMENT_CHARS;
  // Whitespace does not count against the limit, but refuse absurd inputs before parsing them.
  if (text.length > max * 16) {
    return {
      ok: false,
      error: {
        path: "$",
        code: "document-too-large",
        message: `document is ${text.length} characters, over the limit of ${max}`,
      },
    };
  }
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    const m = /position (\d+)/.exec(msg);
    const pos = m ? Number(m[1]) : locateJsonError(text);
    let where = "";
    if (pos >= 0) {
      const before = text.slice(0, pos);
      const line = before.split("\n").length;
      const col = pos - before.lastIndexOf("\n");
      where = ` at line ${line}, column ${col}`;
    }
    return {
      ok: false,
      error: {
        path: "$",
        code: "invalid-json",
        message: `invalid JSON${where}: ${msg.replace(/^JSON\.parse: /, "")}`,
      },
    };
  }
}

/** Parse and validate in one step. */
export function parsePolicy(text: string, limits: PolicyLimits = {}): ValidationResult {
  const parsed = parsePolicyText(text, limits);
  if (!parsed.ok) return { ok: false, errors: [parsed.error], warnings: [] };
  return validatePolicy(parsed.value, limits);
}
