/**
 * GBNF, llama.cpp's grammar text form, parsed into rules of alternatives of symbol sequences.
 *
 * Accepted: `name ::= alternatives` rules (a rule ends at a newline unless inside parentheses),
 * `|` alternation, `( … )` groups, `*` `+` `?` `{m}` `{m,}` `{m,n}` repetition, string literals
 * `"…"`, character classes `[a-z]` / `[^…]` with ranges, `.` (any character), rule references,
 * `#` comments, and the escapes `\x..` `\u....` `\U........` `\t` `\r` `\n` `\\` `\"` `\[` `\]` `\-`.
 * Repetition applies to the last symbol, and a string literal is one symbol (`"ab"*` repeats
 * "ab"), as in llama.cpp. Token references (`<|tok|>`, `<[id]>`) are not supported.
 */
import { MoerunError } from '../errors.js';

/** A set of code points: sorted, disjoint, inclusive ranges `[lo0, hi0, lo1, hi1, …]`, optionally negated. */
export interface CharClass {
  readonly ranges: readonly number[];
  readonly negated: boolean;
}

/** One symbol of a sequence: a character class or a reference to a rule (by index). */
export type GbnfSymbol = { readonly kind: 'chars'; readonly chars: CharClass } | { readonly kind: 'rule'; readonly rule: number };

/** A rule: its name and its alternatives (each a sequence of symbols; an empty one matches ""). */
export interface GbnfRule {
  readonly name: string;
  readonly alternatives: GbnfSymbol[][];
}

/** A parsed grammar: rules by index, and the index of the start rule. */
export interface ParsedGrammar {
  readonly rules: readonly GbnfRule[];
  readonly root: number;
}

/** llama.cpp's limit on repetition counts and on rules a nested repetition generates. */
const MAX_REPETITIONS = 2000;

/** A code point class that matches everything (`.`). */
export const ANY_CHAR: CharClass = { ranges: [0, 0x10ffff], negated: false };

function grammarError(message: string, src: string, pos: number): MoerunError {
  const line = src.slice(0, pos).split('\n').length;
  const near = src.slice(pos, pos + 24).replace(/\n/g, '\\n');
  return new MoerunError('ERR_INVALID_ARGUMENT', `grammar: ${message} at line ${line} near "${near}"`);
}

const isWordChar = (c: string | undefined): boolean => c !== undefined && /[a-zA-Z0-9-]/.test(c);
const isDigit = (c: string | undefined): boolean => c !== undefined && c >= '0' && c <= '9';

/** Normalizes ranges (any order, overlapping) to sorted disjoint ones. */
export function normalizeRanges(ranges: readonly number[]): number[] {
  const pairs: [number, number][] = [];
  for (let i = 0; i < ranges.length; i += 2) pairs.push([ranges[i]!, ranges[i + 1]!]);
  pairs.sort((a, b) => a[0] - b[0]);
  const out: number[] = [];
  for (const [lo, hi] of pairs) {
    if (lo > hi) continue;
    if (out.length > 0 && lo <= out[out.length - 1]! + 1) out[out.length - 1] = Math.max(out[out.length - 1]!, hi);
    else out.push(lo, hi);
  }
  return out;
}

/**
 * Parses GBNF text. `root` names the start rule (default `root`).
 * @throws MoerunError `ERR_INVALID_ARGUMENT` naming the line and the text where parsing failed,
 *   an undefined rule, or a missing start rule.
 */
export function parseGbnf(src: string, root = 'root'): ParsedGrammar {
  if (typeof src !== 'string') throw new MoerunError('ERR_INVALID_ARGUMENT', `grammar: expected GBNF text (a string) but received ${typeof src}`);
  const names = new Map<string, number>();
  const rules: (GbnfSymbol[][] | undefined)[] = [];
  const ruleNames: string[] = [];
  let pos = 0;

  const symbolId = (name: string): number => {
    let id = names.get(name);
    if (id === undefined) {
      id = ruleNames.length;
      names.set(name, id);
      ruleNames.push(name);
      rules.push(undefined);
    }
    return id;
  };
  /** A fresh rule named after the one being parsed, for a group or a repetition. */
  const generatedId = (base: string): number => {
    const id = ruleNames.length;
    const name = `${base}_${id}`;
    names.set(name, id);
    ruleNames.push(name);
    rules.push(undefined);
    return id;
  };

  const skipSpace = (newlineOk: boolean): void => {
    while (pos < src.length) {
      const c = src[pos]!;
      if (c === ' ' || c === '\t' || (newlineOk && (c === '\r' || c === '\n'))) pos++;
      else if (c === '#') while (pos < src.length && src[pos] !== '\r' && src[pos] !== '\n') pos++;
      else break;
    }
  };
  const parseName = (): string => {
    const start = pos;
    while (isWordChar(src[pos])) pos++;
    if (pos === start) throw grammarError('expecting a name', src, pos);
    return src.slice(start, pos);
  };
  const parseHex = (n: number): number => {
    const hex = src.slice(pos, pos + n);
    if (hex.length !== n || !/^[0-9a-fA-F]+$/.test(hex)) throw grammarError(`expecting ${n} hex digits`, src, pos);
    pos += n;
    return parseInt(hex, 16);
  };
  /** One (possibly escaped) character of a literal or class, as a code point. */
  const parseChar = (): number => {
    if (pos >= src.length) throw grammarError('unexpected end of input', src, pos);
    if (src[pos] === '\\') {
      const e = src[pos + 1];
      pos += 2;
      switch (e) {
        case 'x': return parseHex(2);
        case 'u': return parseHex(4);
        case 'U': return parseHex(8);
        case 't': return 9;
        case 'r': return 13;
        case 'n': return 10;
        case '\\': case '"': case '[': case ']': case '-': return e.charCodeAt(0);
        default: throw grammarError('unknown escape', src, pos - 2);
      }
    }
    const cp = src.codePointAt(pos)!;
    pos += cp > 0xffff ? 2 : 1;
    return cp;
  };
  const parseInt10 = (): number => {
    const start = pos;
    while (isDigit(src[pos])) pos++;
    if (pos === start) throw grammarError('expecting an integer', src, pos);
    return Number(src.slice(start, pos));
  };

  /**
   * Rewrites the last symbol (seq[lastStart..]) as repeated min..max times (max Infinity: no
   * limit): S{m,n} = S×m then n-m nested optional rules S' ::= S S'' | "" (S* = S' ::= S S' | "").
   */
  const repeat = (ruleName: string, seq: GbnfSymbol[], lastStart: number, min: number, max: number): void => {
    if (lastStart >= seq.length) throw grammarError('expecting an item before the repetition', src, pos);
    if (min > MAX_REPETITIONS) throw grammarError(`repetition count ${min} exceeds ${MAX_REPETITIONS}`, src, pos);
    if (max !== Infinity && max > MAX_REPETITIONS) max = Infinity;  // llama.cpp: a huge max means unbounded
    if (max < min) throw grammarError(`repetition {${min},${max}} has max < min`, src, pos);
    const item = seq.slice(lastStart);
    seq.length = lastStart;
    for (let i = 0; i < min; i++) seq.push(...item);
    if (max === Infinity) {
      const id = generatedId(ruleName);
      rules[id] = [[...item, { kind: 'rule', rule: id }], []];
      seq.push({ kind: 'rule', rule: id });
    } else if (max > min) {
      let inner = -1;
      for (let i = 0; i < max - min; i++) {
        const id = generatedId(ruleName);
        rules[id] = [inner < 0 ? [...item] : [...item, { kind: 'rule', rule: inner }], []];
        inner = id;
      }
      seq.push({ kind: 'rule', rule: inner });
    }
  };

  const parseSequence = (ruleName: string, nested: boolean): GbnfSymbol[] => {
    const seq: GbnfSymbol[] = [];
    let lastStart = 0;
    while (pos < src.length) {
      const c = src[pos]!;
      if (c === '"') {
        pos++;
        lastStart = seq.length;
        while (src[pos] !== '"') {
          if (pos >= src.length) throw grammarError('unexpected end of input in a string literal', src, pos);
          const cp = parseChar();
          seq.push({ kind: 'chars', chars: { ranges: [cp, cp], negated: false } });
        }
        pos++;
        skipSpace(nested);
      } else if (c === '[') {
        pos++;
        const negated = src[pos] === '^';
        if (negated) pos++;
        const ranges: number[] = [];
        while (src[pos] !== ']') {
          if (pos >= src.length) throw grammarError('unexpected end of input in a character class', src, pos);
          const lo = parseChar();
          let hi = lo;
          if (src[pos] === '-' && src[pos + 1] !== ']') {
            if (pos + 1 >= src.length) throw grammarError('unexpected end of input in a character class', src, pos);
            pos++;
            hi = parseChar();
          }
          ranges.push(lo, hi);
        }
        pos++;
        lastStart = seq.length;
        seq.push({ kind: 'chars', chars: { ranges: normalizeRanges(ranges), negated } });
        skipSpace(nested);
      } else if (c === '<' || c === '!') {
        throw grammarError('token references (<...>) are not supported', src, pos);
      } else if (isWordChar(c)) {
        const name = parseName();
        lastStart = seq.length;
        seq.push({ kind: 'rule', rule: symbolId(name) });
        skipSpace(nested);
      } else if (c === '(') {
        pos++;
        skipSpace(true);
        const id = generatedId(ruleName);
        rules[id] = parseAlternates(ruleName, true);
        if (src[pos] !== ')') throw grammarError("expecting ')'", src, pos);
        pos++;
        lastStart = seq.length;
        seq.push({ kind: 'rule', rule: id });
        skipSpace(nested);
      } else if (c === '.') {
        pos++;
        lastStart = seq.length;
        seq.push({ kind: 'chars', chars: ANY_CHAR });
        skipSpace(nested);
      } else if (c === '*' || c === '+' || c === '?') {
        pos++;
        skipSpace(nested);
        repeat(ruleName, seq, lastStart, c === '+' ? 1 : 0, c === '?' ? 1 : Infinity);
      } else if (c === '{') {
        pos++;
        skipSpace(nested);
        const min = parseInt10();
        skipSpace(nested);
        let max = min;
        if (src[pos] === ',') {
          pos++;
          skipSpace(nested);
          max = isDigit(src[pos]) ? parseInt10() : Infinity;
          skipSpace(nested);
        }
        if (src[pos] !== '}') throw grammarError("expecting '}'", src, pos);
        pos++;
        skipSpace(nested);
        repeat(ruleName, seq, lastStart, min, max);
      } else {
        break;
      }
    }
    return seq;
  };

  const parseAlternates = (ruleName: string, nested: boolean): GbnfSymbol[][] => {
    const alts = [parseSequence(ruleName, nested)];
    while (src[pos] === '|') {
      pos++;
      skipSpace(true);
      alts.push(parseSequence(ruleName, nested));
    }
    return alts;
  };

  skipSpace(true);
  while (pos < src.length) {
    const name = parseName();
    skipSpace(false);
    if (src.slice(pos, pos + 3) !== '::=') throw grammarError("expecting '::='", src, pos);
    pos += 3;
    skipSpace(true);
    const id = symbolId(name);
    rules[id] = parseAlternates(name, false);  // a second definition replaces the first, as in llama.cpp
    if (src[pos] === '\r') pos += src[pos + 1] === '\n' ? 2 : 1;
    else if (src[pos] === '\n') pos++;
    else if (pos < src.length) throw grammarError('expecting a newline or the end', src, pos);
    skipSpace(true);
  }

  for (let id = 0; id < rules.length; id++) {
    if (rules[id] === undefined) throw new MoerunError('ERR_INVALID_ARGUMENT', `grammar: undefined rule identifier '${ruleNames[id]}'`);
  }
  const rootId = names.get(root);
  if (rootId === undefined) throw new MoerunError('ERR_INVALID_ARGUMENT', `grammar: no rule named '${root}' (the start rule)`);
  const parsed: ParsedGrammar = {
    rules: rules.map((alternatives, i) => ({ name: ruleNames[i]!, alternatives: alternatives! })),
    root: rootId,
  };
  checkLeftRecursion(parsed);
  return parsed;
}

/**
 * Refuses left recursion (a rule that can reach itself without consuming a character), which a
 * top-down matcher cannot run; llama.cpp refuses it too.
 */
function checkLeftRecursion(g: ParsedGrammar): void {
  const n = g.rules.length;
  const nullable = new Array<boolean>(n).fill(false);
  for (let changed = true; changed; ) {
    changed = false;
    for (let r = 0; r < n; r++) {
      if (nullable[r]) continue;
      if (g.rules[r]!.alternatives.some((alt) => alt.every((s) => s.kind === 'rule' && nullable[s.rule]))) {
        nullable[r] = true;
        changed = true;
      }
    }
  }
  // left[r]: rules r can start with before consuming anything.
  const left = g.rules.map((rule) => {
    const out: number[] = [];
    for (const alt of rule.alternatives) {
      for (const s of alt) {
        if (s.kind === 'chars') break;
        out.push(s.rule);
        if (!nullable[s.rule]) break;
      }
    }
    return out;
  });
  const color = new Uint8Array(n);  // 0 unvisited, 1 on the path, 2 done
  const visit = (r: number): void => {
    color[r] = 1;
    for (const next of left[r]!) {
      if (color[next] === 1) throw new MoerunError('ERR_INVALID_ARGUMENT', `grammar: left recursion in rule '${g.rules[next]!.name}' (not supported, as in llama.cpp)`);
      if (color[next] === 0) visit(next);
    }
    color[r] = 2;
  };
  for (let r = 0; r < n; r++) if (color[r] === 0) visit(r);
}
