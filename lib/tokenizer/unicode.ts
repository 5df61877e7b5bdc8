// ============================================================================
// Unicode helpers for the tokenizers.
//
// llama.cpp classifies every codepoint into one general category (N, L, P, M,
// S, or "other") plus a separate whitespace flag, and its pre-tokenizer regexes
// only ever ask those questions. We answer them with the JS engine's own Unicode
// property tables (`\p{L}` etc.), computed lazily per codepoint and cached.
// The whitespace set is llama.cpp's (Python's `str.isspace` set), which differs
// from JS `\s`: it has U+0085 and lacks U+FEFF.
// ============================================================================

/** Category codes used in the "collapsed" text (one UTF-16 unit per codepoint). */
export const CAT_OTHER = 0xd0;
export const CAT_NUMBER = 0xd1;
export const CAT_LETTER = 0xd2;
export const CAT_PUNCT = 0xd3;
export const CAT_MARK = 0xd4;
export const CAT_SYMBOL = 0xd5;
/** Collapsed stand-in for non-ASCII whitespace (vertical tab, which `\s` matches). */
export const CAT_SPACE = 0x0b;

const WHITESPACE = new Set<number>([
  0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x20, 0x85, 0xa0, 0x1680, 0x2000, 0x2001, 0x2002, 0x2003, 0x2004,
  0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000,
]);

/** True if llama.cpp treats the codepoint as whitespace. */
export function isWhitespace(cp: number): boolean {
  return WHITESPACE.has(cp);
}

const RE_N = /^\p{N}$/u;
const RE_L = /^\p{L}$/u;
const RE_P = /^\p{P}$/u;
const RE_M = /^\p{M}$/u;
const RE_S = /^\p{S}$/u;

// Lazily filled: 0 = not computed yet, otherwise the collapsed code for the codepoint.
let collapsedTable: Uint8Array | undefined;

function computeCollapsed(cp: number): number {
  if (cp < 0x80) return cp;
  if (WHITESPACE.has(cp)) return CAT_SPACE;
  if (cp >= 0xd800 && cp <= 0xdfff) return CAT_OTHER; // lone surrogate
  const s = String.fromCodePoint(cp);
  if (RE_L.test(s)) return CAT_LETTER;
  if (RE_N.test(s)) return CAT_NUMBER;
  if (RE_P.test(s)) return CAT_PUNCT;
  if (RE_M.test(s)) return CAT_MARK;
  if (RE_S.test(s)) return CAT_SYMBOL;
  return CAT_OTHER;
}

/**
 * The collapsed code of a codepoint: ASCII stays itself, non-ASCII whitespace
 * becomes U+000B, everything else becomes one of the CAT_* codes (0xD0..0xD5).
 */
export function collapsedCode(cp: number): number {
  if (cp < 0x80) return cp;
  const table = (collapsedTable ??= new Uint8Array(0x110000));
  let c = table[cp];
  if (c === 0) {
    c = computeCollapsed(cp);
    table[cp] = c;
  }
  return c;
}

/** Category predicates on the collapsed code (ASCII handled by char class). */
export function isLetterCp(cp: number): boolean {
  if (cp < 0x80) return (cp >= 0x41 && cp <= 0x5a) || (cp >= 0x61 && cp <= 0x7a);
  return collapsedCode(cp) === CAT_LETTER;
}

// ----------------------------------------------------------------------------
// UTF-8
// ----------------------------------------------------------------------------

export const utf8Encoder = new TextEncoder();

/** Appends the UTF-8 bytes of one codepoint to `out`. Lone surrogates encode as U+FFFD. */
export function pushUtf8(cp: number, out: number[]): void {
  if (cp < 0x80) {
    out.push(cp);
  } else if (cp < 0x800) {
    out.push(0xc0 | (cp >> 6), 0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    if (cp >= 0xd800 && cp <= 0xdfff) cp = 0xfffd;
    out.push(0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f));
  } else {
    out.push(
      0xf0 | (cp >> 18),
      0x80 | ((cp >> 12) & 0x3f),
      0x80 | ((cp >> 6) & 0x3f),
      0x80 | (cp & 0x3f),
    );
  }
}

/** Number of bytes in the UTF-8 sequence introduced by `lead` (1 for continuation/invalid bytes). */
export function utf8SeqLen(lead: number): number {
  if (lead < 0x80) return 1;
  if (lead >= 0xf0 && lead <= 0xf7) return 4;
  if (lead >= 0xe0) return lead <= 0xef ? 3 : 1;
  if (lead >= 0xc0) return 2;
  return 1;
}

// ----------------------------------------------------------------------------
// GPT-2 byte-level mapping: every byte gets a printable codepoint.
// ----------------------------------------------------------------------------

/** byte -> the single UTF-16 char that stands for it in byte-level BPE vocabularies. */
export const BYTE_TO_CHAR: readonly string[] = (() => {
  const map = new Array<string>(256);
  const direct = (b: number) =>
    (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    map[b] = direct(b) ? String.fromCharCode(b) : String.fromCharCode(256 + n++);
  }
  return map;
})();

/** codepoint -> byte, the inverse of BYTE_TO_CHAR (-1 where the codepoint is not a byte stand-in). */
export const CHAR_TO_BYTE: Int16Array = (() => {
  const inv = new Int16Array(512).fill(-1);
  for (let b = 0; b < 256; b++) inv[BYTE_TO_CHAR[b].charCodeAt(0)] = b;
  return inv;
})();
