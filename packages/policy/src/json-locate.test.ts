import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { locateJsonError } from "./json-locate.ts";

describe("locateJsonError", () => {
  it.each([
    ['{\n  "Version": "1",\n  "Statement": [,]\n}', 36],
    ['{"a":1,}', 7],
    ["[1 2]", 3],
    ['{"a" 1}', 5],
    ["[1{}]", 2],
    ["{}x", 2],
    ["", 0],
    ['{"a":tru}', 5],
  ])("finds the first bad character of %j at %i", (text, at) => {
    expect(locateJsonError(text)).toBe(at);
  });

  it("agrees with JSON.parse on what is valid (valid JSON, mutated JSON, random text)", () => {
    const mutated = fc
      .tuple(fc.json(), fc.nat(), fc.constantFrom("", ",", "{", "}", "[", "]", ":", '"', "x", " "))
      .map(([j, at, ins]) => j.slice(0, at % (j.length + 1)) + ins + j.slice(at % (j.length + 1)));
    fc.assert(
      fc.property(fc.oneof(fc.json(), mutated, fc.string()), (text) => {
        let valid = true;
        try {
          JSON.parse(text);
        } catch {
          valid = false;
        }
        expect(locateJsonError(text) === -1).toBe(valid);
      }),
      { numRuns: 3000 },
    );
  });

  it("survives deep nesting without recursion", () => {
    expect(locateJsonError("[".repeat(200_000))).toBe(200_000);
    expect(locateJsonError(`${"[".repeat(100_000)}${"]".repeat(100_000)}`)).toBe(-1);
  });
});
