/**
 * JSON string content in GBNF: the escaped-character rule, literals, and a regular-expression
 * subset (JSON Schema `pattern`, ECMAScript syntax with the `u` flag, as ajv runs it) compiled to
 * the JSON-escaped text of the strings it matches.
 *
 * Regex subset: literals and escapes (`\d \w \s \D \W \S \n \t \r \f \v \xHH \uHHHH \u{…}` and
 * escaped punctuation), `.`, classes `[…]` / `[^…]` with ranges, groups `(…)` / `(?:…)`, `|`,
 * quantifiers `* + ? {m} {m,} {m,n}` (lazy `?` suffix accepted), `^` at the start and `$` at the
 * end. An unanchored side may hold any text, as JSON Schema patterns match anywhere. Refused:
 * lookaround, backreferences, named groups, word boundaries. A character the pattern allows is
 * written unescaped when JSON allows that, as `\"` `\\` `\n` `\t` `\r` when it must be escaped, and
 * other control characters are left out (the grammar stays sound: every string it makes matches).
 */
import { MoerunError } from '../errors.js';
import { normalizeRanges } from './gbnf.js';

/** One character inside a JSON string: unescaped, or an escape (never a lone surrogate `\uD800`). */
export const stringCharRule =
  '[^"\\\\\\x7F\\x00-\\x1F] | "\\\\" (["\\\\/bfnrt] | "u" ([0-9a-cA-CeEfF] [0-9a-fA-F]{3} | [dD] [0-7] [0-9a-fA-F]{2}))';

/** A GBNF string literal for `text`. */
export function gbnfLiteral(text: string): string {
  let out = '"';
  for (const ch of text) {
    const cp = ch.codePointAt(0)!;
    if (ch === '"' || ch === '\\') out += '\\' + ch;
    else if (cp === 10) out += '\\n';
    else if (cp === 13) out += '\\r';
    else if (cp === 9) out += '\\t';
    else if (cp < 0x20 || cp === 0x7f) out += `\\x${cp.toString(16).padStart(2, '0')}`;
    else out += ch;
  }
  return out + '"';
}

const MAX_CP = 0x10ffff;
const DIGIT = [0x30, 0x39];
const WORD = normalizeRanges([0x30, 0x39, 0x41, 0x5a, 0x5f, 0x5f, 0x61, 0x7a]);
// \s in ECMAScript: whitespace and line terminators.
const SPACE = normalizeRanges([9, 13, 0x20, 0x20, 0xa0, 0xa0, 0x1680, 0x1680, 0x2000, 0x200a, 0x2028, 0x2029, 0x202f, 0x202f, 0x205f, 0x205f, 0x3000, 0x3000, 0xfeff, 0xfeff]);
const LINE_TERMINATORS = [10, 10, 13, 13, 0x2028, 0x2029];

function complement(ranges: readonly number[]): number[] {
  const out: number[] = [];
  let next = 0;
  for (let i = 0; i < ranges.length; i += 2) {
    if (ranges[i]! > next) out.push(next, ranges[i]! - 1);
    next = ranges[i + 1]! + 1;
  }
  if (next <= MAX_CP) out.push(next, MAX_CP);
  return out;
}

/** GBNF class text for a code point. */
function classChar(cp: number): string {
  if (cp < 0x20 || cp === 0x7f || '[]\\-^"'.includes(String.fromCodePoint(cp))) return `\\x${cp.toString(16).padStart(2, '0')}`;
  if (cp > 0xffff) return `\\U${cp.toString(16).padStart(8, '0')}`;
  if (cp > 0x7e) return `\\u${cp.toString(16).padStart(4, '0')}`;
  return String.fromCodePoint(cp);
}

/** A set of code points as JSON string content: unescaped where allowed, escaped where needed. */
function charsToGbnf(ranges: readonly number[]): string {
  const r = normalizeRanges(ranges);
  const has = (cp: number): boolean => {
    for (let i = 0; i < r.length; i += 2) if (cp >= r[i]! && cp <= r[i + 1]!) return true;
    return false;
  };
  // Remove what JSON must escape (controls, '"', '\\', DEL kept out like the string rule does) and surrogates.
  const banned = [0, 0x1f, 0x22, 0x22, 0x5c, 0x5c, 0x7f, 0x7f, 0xd800, 0xdfff];
  const plain = normalizeRanges(subtractRanges(r, banned));
  const alts: string[] = [];
  if (plain.length > 0) {
    let cls = '[';
    for (let i = 0; i < plain.length; i += 2) cls += plain[i] === plain[i + 1] ? classChar(plain[i]!) : `${classChar(plain[i]!)}-${classChar(plain[i + 1]!)}`;
    alts.push(cls + ']');
  }
  if (has(0x22)) alts.push('"\\\\\\""');
  if (has(0x5c)) alts.push('"\\\\\\\\"');
  if (has(10)) alts.push('"\\\\n"');
  if (has(9)) alts.push('"\\\\t"');
  if (has(13)) alts.push('"\\\\r"');
  if (alts.length === 0) throw new MoerunError('ERR_UNSUPPORTED', 'jsonSchema: a pattern class matches only characters JSON cannot write here');
  return alts.length === 1 ? alts[0]! : `(${alts.join(' | ')})`;
}

/** `ranges` without the code points of `banned` (both normalized). */
function subtractRanges(ranges: readonly number[], banned: readonly number[]): number[] {
  const keep = complement(normalizeRanges(banned));
  const out: number[] = [];
  for (let i = 0; i < ranges.length; i += 2) {
    for (let j = 0; j < keep.length; j += 2) {
      const lo = Math.max(ranges[i]!, keep[j]!), hi = Math.min(ranges[i + 1]!, keep[j + 1]!);
      if (lo <= hi) out.push(lo, hi);
    }
  }
  return out;
}

/** Compiles `pattern` to a GBNF expression for the JSON string content it matches (see file comment). */
export function regexToGbnf(pattern: string, path = ''): string {
  try {
    new RegExp(pattern, 'u');
  } catch (err) {
    throw new MoerunError('ERR_INVALID_ARGUMENT', `jsonSchema${path}: 'pattern' is not a valid regular expression: ${(err as Error).message}`);
  }
  const fail = (what: string, at: number): never => {
    throw new MoerunError('ERR_UNSUPPORTED', `jsonSchema${path}: pattern ${JSON.stringify(pattern)}: ${what} (at ${at}) is not supported`);
  };
  const cps = Array.from(pattern, (c) => c.codePointAt(0)!);
  let pos = 0;
  const peek = (): number | undefined => cps[pos];
  const ch = (s: string): number => s.codePointAt(0)!;

  let anchoredStart = false;
  let anchoredEnd = false;
  if (peek() === ch('^')) {
    anchoredStart = true;
    pos++;
  }

  const hex = (n: number): number => {
    const s = String.fromCodePoint(...cps.slice(pos, pos + n));
    if (!/^[0-9a-fA-F]+$/.test(s) || s.length !== n) fail('a malformed hex escape', pos);
    pos += n;
    return parseInt(s, 16);
  };
  /** After a backslash: a class (ranges) for \d \w \s and their negations, else one code point. */
  const escape = (): number[] | number => {
    const e = cps[pos++];
    if (e === undefined) return fail('a trailing backslash', pos);
    switch (String.fromCodePoint(e)) {
      case 'd': return [...DIGIT];
      case 'D': return complement(DIGIT);
      case 'w': return [...WORD];
      case 'W': return complement(WORD);
      case 's': return [...SPACE];
      case 'S': return complement(SPACE);
      case 'n': return 10;
      case 't': return 9;
      case 'r': return 13;
      case 'f': return 12;
      case 'v': return 11;
      case '0': return 0;
      case 'x': return hex(2);
      case 'u':
        if (peek() === ch('{')) {
          pos++;
          const start = pos;
          while (pos < cps.length && cps[pos] !== ch('}')) pos++;
          const v = parseInt(String.fromCodePoint(...cps.slice(start, pos)), 16);
          pos++;
          return v;
        }
        return hex(4);
      case 'b': case 'B': return fail('a word boundary', pos - 2);
      case 'k': return fail('a named backreference', pos - 2);
      default:
        if (e >= ch('1') && e <= ch('9')) return fail('a backreference', pos - 2);
        if (/[a-zA-Z]/.test(String.fromCodePoint(e))) return fail(`the escape \\${String.fromCodePoint(e)}`, pos - 2);
        return e;
    }
  };

  const classAtom = (): number[] => {
    // pos is just after '['
    let negated = false;
    if (peek() === ch('^')) {
      negated = true;
      pos++;
    }
    const ranges: number[] = [];
    while (pos < cps.length && cps[pos] !== ch(']')) {
      let lo: number[] | number;
      if (cps[pos] === ch('\\')) {
        pos++;
        lo = escape();
      } else lo = cps[pos++]!;
      if (typeof lo !== 'number') {
        ranges.push(...lo);
        continue;
      }
      if (cps[pos] === ch('-') && pos + 1 < cps.length && cps[pos + 1] !== ch(']')) {
        pos++;
        let hi: number[] | number;
        if (cps[pos] === ch('\\')) {
          pos++;
          hi = escape();
        } else hi = cps[pos++]!;
        if (typeof hi !== 'number') return fail('a range ending in a class escape', pos);
        ranges.push(lo, hi);
      } else ranges.push(lo, lo);
    }
    if (cps[pos] !== ch(']')) fail('an unterminated class', pos);
    pos++;
    const r = normalizeRanges(ranges);
    return negated ? complement(r) : r;
  };

  const atom = (): string => {
    const c = cps[pos]!;
    if (c === ch('(')) {
      pos++;
      if (peek() === ch('?')) {
        if (cps[pos + 1] === ch(':')) pos += 2;
        else fail('lookaround or a named group', pos - 1);
      }
      const inner = alternation();
      if (peek() !== ch(')')) fail("a missing ')'", pos);
      pos++;
      return `(${inner})`;
    }
    if (c === ch('[')) {
      pos++;
      return charsToGbnf(classAtom());
    }
    if (c === ch('.')) {
      pos++;
      return charsToGbnf(complement(LINE_TERMINATORS));
    }
    if (c === ch('\\')) {
      pos++;
      const e = escape();
      return charsToGbnf(typeof e === 'number' ? [e, e] : e);
    }
    if (c === ch('^')) return fail("'^' not at the start", pos);
    if (c === ch('$')) return fail("'$' not at the end", pos);
    pos++;  // a literal (new RegExp above refused a quantifier with nothing to repeat)
    return charsToGbnf([c, c]);
  };

  const quantified = (): string => {
    const a = atom();
    const c = peek();
    let q = '';
    if (c === ch('*') || c === ch('+') || c === ch('?')) {
      pos++;
      q = String.fromCodePoint(c);
    } else if (c === ch('{')) {
      const rest = String.fromCodePoint(...cps.slice(pos));
      const m = /^\{(\d+)(,(\d*))?\}/.exec(rest);
      if (m) {
        pos += m[0].length;
        const min = Number(m[1]);
        const max = m[2] === undefined ? min : m[3] === '' ? undefined : Number(m[3]);
        if (min > 2000 || (max !== undefined && max > 2000)) fail('a repetition count over 2000', pos);
        q = max === undefined ? `{${min},}` : `{${min},${max}}`;
      }
    }
    if (q && peek() === ch('?')) pos++;  // lazy: same language
    return q ? `(${a})${q}` : a;
  };

  const sequence = (): string => {
    const parts: string[] = [];
    while (pos < cps.length && cps[pos] !== ch('|') && cps[pos] !== ch(')')) {
      if (cps[pos] === ch('$') && pos === cps.length - 1) {
        anchoredEnd = true;
        pos++;
        break;
      }
      parts.push(quantified());
    }
    return parts.length === 0 ? '""' : parts.join(' ');
  };

  function alternation(): string {
    const alts = [sequence()];
    while (peek() === ch('|')) {
      pos++;
      alts.push(sequence());
    }
    return alts.join(' | ');
  }

  const body = alternation();
  if (pos < cps.length) fail(`unexpected '${String.fromCodePoint(cps[pos]!)}'`, pos);
  // '^a|b$' anchors each alternative on one side only in ECMAScript; anchoring all of them on
  // both sides makes fewer strings, every one of which still matches.
  const any = '(char)*';
  return `${anchoredStart ? '' : `${any} `}(${body})${anchoredEnd ? '' : ` ${any}`}`;
}
