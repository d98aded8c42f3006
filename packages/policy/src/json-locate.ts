/**
 * Find where JSON text goes wrong. `JSON.parse` in Node 20 does not always say
 * where (e.g. `Unexpected token ','`), so on failure we re-scan the text with a
 * small recursive-descent recogniser that stops at the first bad character.
 * Depth is bounded by an explicit stack, so hostile nesting cannot overflow.
 */

/** Offset of the first syntax error in `text`, or -1 when it is valid JSON. */
export function locateJsonError(text: string): number {
  let i = 0;
  const n = text.length;
  const ws = () => {
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === 32 || c === 9 || c === 10 || c === 13) i++;
      else break;
    }
  };
  const str = (): boolean => {
    i++; // opening quote
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === 34) {
        i++;
        return true;
      }
      if (c < 32) return false;
      if (c === 92) {
        const e = text[i + 1];
        if (e === "u") {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) return false;
          i += 6;
        } else if (e !== undefined && '"\\/bfnrt'.includes(e)) i += 2;
        else {
          i++;
          return false;
        }
      } else i++;
    }
    return false;
  };
  const NUM = /-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y;
  const num = (): boolean => {
    NUM.lastIndex = i;
    const m = NUM.exec(text);
    if (!m) return false;
    i += m[0].length;
    return true;
  };
  const lit = (w: string): boolean => {
    if (text.startsWith(w, i)) {
      i += w.length;
      return true;
    }
    return false;
  };
  // Explicit stack of open containers: "{" expects key, "[" expects value.
  const stack: string[] = [];
  /** 0: error; 1: a complete scalar; 2: a container opens at `i` (handled by the loop). */
  const value = (): 0 | 1 | 2 => {
    ws();
    const c = text[i];
    if (c === "{" || c === "[") return 2;
    let ok: boolean;
    if (c === '"') ok = str();
    else if (c === "t") ok = lit("true");
    else if (c === "f") ok = lit("false");
    else if (c === "n") ok = lit("null");
    else ok = num();
    return ok ? 1 : 0;
  };
  ws();
  if (i >= n) return i;
  for (;;) {
    let r = value();
    if (r === 0) return i;
    // Open containers.
    while (r === 2) {
      const open = text[i]!;
      i++;
      ws();
      if (open === "{") {
        if (text[i] === "}") {
          i++;
          break;
        }
        if (text[i] !== '"' || !str()) return i;
        ws();
        if (text[i] !== ":") return i;
        i++;
        stack.push("{");
        r = value();
        if (r === 0) return i;
      } else {
        ws();
        if (text[i] === "]") {
          i++;
          break;
        }
        stack.push("[");
        r = value();
        if (r === 0) return i;
      }
    }
    // Close containers / continue with the next member or element.
    for (;;) {
      ws();
      const top = stack[stack.length - 1];
      if (top === undefined) {
        return i < n ? i : -1;
      }
      const c = text[i];
      if (c === ",") {
        i++;
        ws();
        if (top === "{") {
          if (text[i] !== '"' || !str()) return i;
          ws();
          if (text[i] !== ":") return i;
          i++;
        }
        break; // parse the next value
      }
      if ((top === "{" && c === "}") || (top === "[" && c === "]")) {
        i++;
        stack.pop();
        continue;
      }
      return i;
    }
  }
}
