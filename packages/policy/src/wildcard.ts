/**
 * Wildcard matching for RAM actions and resources: `*` matches any run of
 * characters (including `:` and `/`), `?` exactly one character.
 *
 * Patterns are compiled once into a specialised predicate. No regular
 * expression is ever built from user input: the general case splits the
 * pattern at `*` into literal segments and places each one at its leftmost
 * possible position (greedy, never revisiting an earlier star), so matching
 * costs at most O(|pattern| · |subject|) and usually O(|subject|) — a pattern
 * like `*a*a*a…b` against a long string of `a`s is rejected after one pass.
 */

/** A compiled wildcard pattern. */
export type WildcardMatcher = (subject: string) => boolean;

/** True when `pattern` contains a wildcard character (`*` or `?`). */
export function hasWildcard(pattern: string): boolean {
  return pattern.includes("*") || pattern.includes("?");
}

/** The literal characters of `pattern` before its first wildcard. */
export function literalPrefix(pattern: string): string {
  const star = pattern.indexOf("*");
  const q = pattern.indexOf("?");
  const cut = star < 0 ? q : q < 0 ? star : Math.min(star, q);
  return cut < 0 ? pattern : pattern.slice(0, cut);
}

const matchAll: WildcardMatcher = () => true;

/** Does `seg` (which may contain `?`) match `s` at offset `at`? */
function segmentAt(seg: string, s: string, at: number): boolean {
  for (let i = 0; i < seg.length; i++) {
    const c = seg.charCodeAt(i);
    if (c !== 63 /* ? */ && c !== s.charCodeAt(at + i)) return false;
  }
  return true;
}

/** Leftmost index >= from where `seg` matches in s, with last start <= limit; -1 if none. */
function findSegment(seg: string, hasQ: boolean, s: string, from: number, limit: number): number {
  if (!hasQ) {
    const i = s.indexOf(seg, from);
    return i >= 0 && i <= limit ? i : -1;
  }
  for (let at = from; at <= limit; at++) if (segmentAt(seg, s, at)) return at;
  return -1;
}

/** Compile a wildcard pattern into a predicate (case-sensitive). */
export function compileWildcard(pattern: string): WildcardMatcher {
  const starCount = pattern.split("*").length - 1;
  const hasQ = pattern.includes("?");
  if (starCount === 0 && !hasQ) return (s) => s === pattern;
  if (starCount === 0) {
    return (s) => s.length === pattern.length && segmentAt(pattern, s, 0);
  }
  // Collapse runs of stars: `a**b` = `a*b`.
  const parts = pattern.split("*");
  const first = parts[0]!;
  const last = parts[parts.length - 1]!;
  const middle = parts.slice(1, -1).filter((p) => p.length > 0);
  if (first === "" && last === "" && middle.length === 0) return matchAll;
  if (!hasQ && middle.length === 0) {
    if (last === "") return (s) => s.startsWith(first);
    if (first === "") return (s) => s.endsWith(last);
    const min = first.length + last.length;
    return (s) => s.length >= min && s.startsWith(first) && s.endsWith(last);
  }
  const firstQ = first.includes("?");
  const lastQ = last.includes("?");
  const midQ = middle.map((m) => m.includes("?"));
  let minLen = first.length + last.length;
  for (const m of middle) minLen += m.length;
  return (s) => {
    if (s.length < minLen) return false;
    if (first.length > 0 && !(firstQ ? segmentAt(first, s, 0) : s.startsWith(first))) return false;
    const end = s.length - last.length;
    if (last.length > 0 && !(lastQ ? segmentAt(last, s, end) : s.endsWith(last))) return false;
    // Each middle segment goes at its leftmost position in s[pos, end).
    let pos = first.length;
    for (let i = 0; i < middle.length; i++) {
      const seg = middle[i]!;
      const at = findSegment(seg, midQ[i]!, s, pos, end - seg.length);
      if (at < 0) return false;
      pos = at + seg.length;
    }
    return true;
  };
}

/** One-shot match of `subject` against `pattern` (compiles each call; prefer compileWildcard). */
export function wildcardMatch(pattern: string, subject: string): boolean {
  return compileWildcard(pattern)(subject);
}

/**
 * What remains of `pattern` after it has consumed the literal `prefix`: the
 * patterns Q such that `pattern` matches `prefix + rest` exactly when some Q
 * matches `rest` (a Brzozowski derivative over pattern positions). Empty when
 * `pattern` cannot match anything that starts with `prefix`.
 */
export function wildcardResiduals(pattern: string, prefix: string): string[] {
  const closure = (set: Set<number>) => {
    for (const pos of set) if (pattern[pos] === "*") set.add(pos + 1); // a star may match nothing
    return set;
  };
  let states = closure(new Set([0]));
  for (const c of prefix) {
    const next = new Set<number>();
    for (const pos of states) {
      const pc = pattern[pos];
      if (pc === "*") next.add(pos);
      else if (pc === "?" || pc === c) next.add(pos + 1);
    }
    states = closure(next);
    if (states.size === 0) return [];
  }
  return [...new Set([...states].sort((a, b) => a - b).map((pos) => pattern.slice(pos)))];
}
