// ============================================================================
// Detokenization: token -> bytes ("piece"), and the clean_up_tokenization_spaces
// post-pass that BPE vocabularies apply (llama.cpp's llama_detokenize).
//
// The space cleanup is written as three streaming passes, each holding back the
// few bytes whose fate depends on bytes not seen yet, so that a streaming
// detokenizer and a one-shot detokenize share one implementation and agree
// byte for byte.
// ============================================================================

import { CHAR_TO_BYTE, utf8Encoder } from './unicode.js';
import { Attr, type Vocab } from './vocab.js';

const EMPTY = new Uint8Array(0);
const SPECIAL_ATTRS = Attr.Unknown | Attr.Control;

/** Renders token pieces as bytes, caching the rendering of each token. */
export class PieceTable {
  // Rendered tokens, filled as they are used (a Map: an array of 150k slots would cost a fresh
  // megabyte, and its page faults, while the model loads).
  private readonly cache = new Map<number, Uint8Array>();

  constructor(private readonly vocab: Vocab) {}

  /**
   * The bytes of one token. With `special` false, control and unknown tokens
   * render as nothing (llama_token_to_piece with special=false).
   */
  bytes(id: number, special: boolean): Uint8Array {
    const attr = this.vocab.attrs[id];
    if (!special && (attr & SPECIAL_ATTRS) !== 0) return EMPTY;
    let b = this.cache.get(id);
    if (b === undefined) {
      b = this.render(id);
      this.cache.set(id, b);
    }
    return b;
  }

  private render(id: number): Uint8Array {
    const { vocab } = this;
    const attr = vocab.attrs[id];
    const text = vocab.tokens.at(id);
    if (vocab.type === 'none') return EMPTY;
    if (attr & (SPECIAL_ATTRS | Attr.UserDefined)) return utf8Encoder.encode(text);
    if (attr & Attr.Normal) {
      if (vocab.type === 'bpe') return decodeByteLevel(text);
      return utf8Encoder.encode(text.replaceAll('\u2581', ' '));
    }
    if (attr & Attr.Byte) {
      const v = parseInt(text.slice(3, 5), 16);
      return Uint8Array.of(Number.isNaN(v) ? 0 : v);
    }
    return EMPTY;
  }
}

/** GPT-2 byte-level text -> bytes; an unmapped char becomes "[UNK_BYTE_0x..<text>]" like llama.cpp. */
function decodeByteLevel(text: string): Uint8Array {
  const out: number[] = [];
  for (let k = 0; k < text.length; ) {
    const cp = text.codePointAt(k)!;
    const n = cp > 0xffff ? 2 : 1;
    const b = cp < CHAR_TO_BYTE.length ? CHAR_TO_BYTE[cp] : -1;
    if (b >= 0) {
      out.push(b);
    } else {
      const hex = Array.from(utf8Encoder.encode(text.slice(k, k + n)), (x) => x.toString(16).padStart(2, '0')).join('');
      for (const x of utf8Encoder.encode(`[UNK_BYTE_0x${hex}${text}]`)) out.push(x);
    }
    k += n;
  }
  return Uint8Array.from(out);
}

// ----------------------------------------------------------------------------
// clean_up_tokenization_spaces, streaming
// ----------------------------------------------------------------------------

const SP = 0x20;
const APOS = 0x27;

/**
 * One of llama.cpp's three cleanup passes:
 *   1: " ?" " !" " ." " ," lose the space;
 *   2: " ' " becomes "'";
 *   3: " 's" " 'm" " 're" " 've" lose the space.
 * `hold` is the last output byte, kept back because a later byte may delete it.
 */
class CleanPass {
  private q: number[] = [];
  private hold = -1;
  /** previous input byte; 0 after pass 2 swallowed a space (llama.cpp writes '\0' there). */
  private prev = -1;

  constructor(private readonly kind: 1 | 2 | 3) {}

  push(bytes: ArrayLike<number>, out: number[], ended: boolean): void {
    for (let i = 0; i < bytes.length; i++) this.q.push(bytes[i]);
    this.run(out, ended);
    if (ended) {
      if (this.hold >= 0) out.push(this.hold);
      this.hold = -1;
      this.prev = -1;
      this.q.length = 0;
    }
  }

  private run(out: number[], ended: boolean): void {
    const q = this.q;
    let h = 0;
    while (h < q.length) {
      const x = q[h];
      let drop = false;
      let skip = 0;
      if (this.kind === 1) {
        drop = this.prev === SP && (x === 0x3f || x === 0x21 || x === 0x2e || x === 0x2c);
      } else if (x === APOS && this.prev === SP) {
        if (h + 1 >= q.length) {
          if (!ended) break; // need one byte of lookahead
        } else if (this.kind === 2) {
          if (q[h + 1] === SP) {
            drop = true;
            skip = 1;
          }
        } else {
          const x1 = q[h + 1];
          if (x1 === 0x73 || x1 === 0x6d) {
            drop = true; // 's 'm
          } else if (x1 === 0x72 || x1 === 0x76) {
            if (h + 2 >= q.length) {
              if (!ended) break;
            } else if (q[h + 2] === 0x65) {
              drop = true; // 're 've
            }
          }
        }
      }
      if (drop) this.hold = -1;
      if (this.hold >= 0) out.push(this.hold);
      this.hold = x;
      this.prev = skip ? 0 : x;
      h += 1 + skip;
    }
    if (h > 0) q.splice(0, h);
  }
}

/** The three cleanup passes chained; feed bytes in, get cleaned bytes out. */
export class SpaceCleaner {
  private readonly p1 = new CleanPass(1);
  private readonly p2 = new CleanPass(2);
  private readonly p3 = new CleanPass(3);
  private readonly b1: number[] = [];
  private readonly b2: number[] = [];

  /** Pushes bytes; `ended` flushes everything held back and resets the state. */
  push(bytes: ArrayLike<number>, ended: boolean): number[] {
    const b1 = this.b1, b2 = this.b2;
    b1.length = 0;
    b2.length = 0;
    const out: number[] = [];
    this.p1.push(bytes, b1, ended);
    this.p2.push(b1, b2, ended);
    this.p3.push(b2, out, ended);
    return out;
  }
}
