/**
 * Examples for the wildcard matcher (SPEC §3): `*` matches any run of characters,
 * `:` and `/` included, `?` exactly one character, the whole string must match,
 * and matching is case-sensitive. The property test against a reference DP is in
 * `properties.test.ts`; these cases name the shapes the matcher specialises.
 */
import { describe, expect, it } from "vitest";
import { compileWildcard, wildcardMatch } from "../src/mod.ts";

/** [pattern, subject, expected] */
type Case = [string, string, boolean];

function table(cases: Case[]): void {
  for (const [pattern, subject, expected] of cases) {
    it(`\`${pattern}\` ${expected ? "matches" : "does not match"} \`${subject}\``, () => {
      expect(compileWildcard(pattern)(subject)).toBe(expected);
      expect(wildcardMatch(pattern, subject)).toBe(expected);
    });
  }
}

describe("compileWildcard", () => {
  describe("exact (no wildcard)", () => {
    table([
      ["mq:PUB", "mq:PUB", true],
      ["mq:PUB", "mq:PUBX", false],
      ["mq:PUB", "xmq:PUB", false],
      ["mq:PUB", "mq:pub", false], // case-sensitive
      ["mq:PUB", "", false],
    ]);
  });

  describe("empty pattern", () => {
    table([
      ["", "", true],
      ["", "a", false],
    ]);
  });

  describe("prefix `p*`", () => {
    table([
      ["mq:*", "mq:", true],
      ["mq:*", "mq:PUB", true],
      ["mq:*", "mq:a/b:c", true],
      ["mq:*", "m:PUB", false],
      ["mq:*", "amq:PUB", false],
      ["acs:mq:*", "acs:mq:local:1234567890123456:topic/i/a", true],
    ]);
  });

  describe("suffix `*s`", () => {
    table([
      ["*PUB", "PUB", true],
      ["*PUB", "mq:PUB", true],
      ["*PUB", "PUBX", false],
      ["*/messages/*", "/vhosts/v/queues/q/messages/*", true],
    ]);
  });

  describe("prefix and suffix `p*s`", () => {
    table([
      ["a*b", "ab", true],
      ["a*b", "axxb", true],
      ["a*b", "a/b", true],
      ["a*b", "a", false],
      ["a*b", "b", false],
      ["a*b", "ba", false],
      ["a*a", "a", false], // prefix and suffix may not overlap
      ["a*a", "aa", true],
    ]);
  });

  describe("middle segments", () => {
    table([
      ["a*b*c", "abc", true],
      ["a*b*c", "aXbYc", true],
      ["a*b*c", "acbc", true],
      ["a*b*c", "acb", false],
      ["a*b*c", "abcb", false],
      ["*ab*abc", "ababc", true],
      ["*aab", "aaab", true], // a naive greedy matcher without backtracking gets this wrong
      ["*a*b", "aXaYb", true],
      ["*a*b*", "bbba", false],
      ["acs:mq:*:*:topic/*/a/*", "acs:mq:local:1234567890123456:topic/mqtt-local/a/b", true],
      ["acs:mq:*:*:topic/*/a/*", "acs:mq:local:1234567890123456:topic/mqtt-local/b/a", false],
    ]);
  });

  describe("`*` crosses `:` and `/`", () => {
    table([
      ["acs:*", "acs:mq:local:1:topic/a/b", true],
      ["acs:mq:*:topic/a", "acs:mq:local:1234567890123456:topic/a", true],
      ["*:*", "a/b", false],
      ["*/*", "a:b/c:d", true],
    ]);
  });

  describe("`?` is exactly one character", () => {
    table([
      ["?", "a", true],
      ["?", "", false],
      ["?", "ab", false],
      ["?", ":", true],
      ["?", "/", true],
      ["a?c", "abc", true],
      ["a?c", "a/c", true],
      ["a?c", "ac", false],
      ["a?c", "a*c", true], // a literal `*` in the subject is just a character
      ["??", "ab", true],
      ["??", "a", false],
      ["m?:P*", "mq:PUB", true],
      ["m?:P*", "mqtt:PUB", false],
      ["*?", "", false],
      ["*?", "a", true],
      ["?*", "a", true],
      ["?*?", "a", false],
      ["?*?", "ab", true],
      ["*a?b*", "xxa/bxx", true],
      ["*a?b*", "xxabxx", false],
    ]);
  });

  describe("runs of stars are one star", () => {
    table([
      ["a**b", "ab", true],
      ["a**b", "aXYb", true],
      ["***", "", true],
      ["***", "anything:at/all", true],
      ["**a**", "a", true],
      ["**a**", "b", false],
      ["*?*?*", "ab", true],
      ["*?*?*", "a", false],
    ]);
  });

  it("a compiled matcher can be reused", () => {
    const m = compileWildcard("topic/*/a");
    expect(["topic/i/a", "topic/i/b", "topic/j/k/a", "topic/a"].map(m)).toEqual([true, false, true, false]);
  });
});
