// ============================================================================
// The two merge algorithms.
//
// SPM (`tokenizer.ggml.model = llama`): start from single codepoints, keep
// merging the adjacent pair whose concatenation is a token with the highest
// score (leftmost on ties); whatever is not a token at the end falls back to
// byte tokens <0xXX>.
//
// BPE (`gpt2`): per pre-tokenizer word, map bytes to printable chars (GPT-2
// byte-level), then keep merging the adjacent pair with the lowest merge rank
// (leftmost on ties). Results are cached per word.
// ============================================================================

import { MergeHeap } from './heap.js';
import { BYTE_TO_CHAR, pushUtf8 } from './unicode.js';
import type { Vocab } from './vocab.js';

/** Per-encoder cap on cached words/chunks; the cache is simply emptied when full. */
const MAX_CACHE_ENTRIES = 1 << 16;

/** Byte -> token id of its byte-fallback token, or -1. */
function buildSpmByteTokens(vocab: Vocab): Int32Array {
  const out = new Int32Array(256).fill(-1);
  for (let b = 0; b < 256; b++) {
    const hex = `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;
    let id = vocab.tokenToId.get(hex);
    if (id === undefined && b < 0x80) id = vocab.tokenToId.get(String.fromCharCode(b));
    out[b] = id ?? vocab.special.unk;
  }
  return out;
}

/** Symbol chain shared by both algorithms: start offset, length (UTF-16 units), links. */
class Symbols {
  start = new Int32Array(64);
  len = new Int32Array(64);
  prev = new Int32Array(64);
  next = new Int32Array(64);
  count = 0;

  reset(capacity: number): void {
    if (this.start.length < capacity) {
      const c = Math.max(capacity, this.start.length * 2);
      this.start = new Int32Array(c);
      this.len = new Int32Array(c);
      this.prev = new Int32Array(c);
      this.next = new Int32Array(c);
    }
    this.count = 0;
  }

  add(start: number, len: number): void {
    const i = this.count++;
    this.start[i] = start;
    this.len[i] = len;
    this.prev[i] = i - 1;
    this.next[i] = i + 1;
  }

  finish(): void {
    if (this.count > 0) this.next[this.count - 1] = -1;
  }

  /** Merges symbol `right` into `left` (its neighbour). */
  merge(left: number, right: number): void {
    this.len[left] += this.len[right];
    this.len[right] = 0;
    const nx = this.next[right];
    this.next[left] = nx;
    if (nx >= 0) this.prev[nx] = left;
  }
}

// ----------------------------------------------------------------------------
// SPM
// ----------------------------------------------------------------------------

/**
 * SentencePiece-style tokenizer (llama.cpp's llm_tokenizer_spm).
 *
 * llama.cpp runs the merge queue over a whole text fragment. Merges only ever
 * join neighbours into a vocabulary token, so a boundary between two
 * codepoints that appear next to each other in no token can never be crossed:
 * the text splits there into chunks that merge independently (the global
 * score/leftmost order restricted to one chunk is that chunk's own order).
 * We tokenize chunk by chunk and cache each chunk's ids, which for ordinary
 * text means one chunk per "▁word".
 */
/**
 * The merge loop SPM and BPE share: queue every adjacent pair that `tryAdd` accepts (with its
 * priority), then repeatedly merge the best one and queue the new neighbours. Entries made stale
 * by an earlier merge (a side already merged away, or a size that no longer matches) are skipped.
 */
function mergeBest(
  sym: Symbols,
  heap: MergeHeap,
  top: { left: number; right: number; size: number },
  tryAdd: (left: number, right: number) => void,
): void {
  for (let i = 1; i < sym.count; i++) tryAdd(i - 1, i);
  while (heap.length > 0) {
    heap.pop(top);
    const { left, right } = top;
    const ll = sym.len[left];
    const rl = sym.len[right];
    if (ll === 0 || rl === 0 || ll + rl !== top.size) continue;
    sym.merge(left, right);
    tryAdd(sym.prev[left], left);
    tryAdd(left, sym.next[left]);
  }
}

export class SpmEncoder {
  private readonly byteTokens: Int32Array;
  private readonly sym = new Symbols();
  private readonly heap = new MergeHeap();
  private readonly top = { left: 0, right: 0, size: 0 };
  private readonly cache = new Map<string, number[]>();

  constructor(private readonly vocab: Vocab) {
    this.byteTokens = buildSpmByteTokens(vocab);
  }

  /** Empties the chunk cache. */
  clearCache(): void {
    this.cache.clear();
  }

  /** Tokenizes already-escaped text (spaces as U+2581), appending ids to `out`. */
  encode(text: string, out: number[]): void {
    const pairs = this.vocab.spmPairs!;
    let start = 0;
    let prev = -1;
    for (let k = 0; k < text.length; ) {
      const cp = text.codePointAt(k)!;
      if (prev >= 0 && !pairs.has(prev * 0x110000 + cp)) {
        this.encodeChunk(text.slice(start, k), out);
        start = k;
      }
      prev = cp;
      k += cp > 0xffff ? 2 : 1;
    }
    if (start < text.length) this.encodeChunk(start === 0 ? text : text.slice(start), out);
  }

  private encodeChunk(chunk: string, out: number[]): void {
    let ids = this.cache.get(chunk);
    if (ids === undefined) {
      ids = [];
      this.encodeUncached(chunk, ids);
      if (this.cache.size >= MAX_CACHE_ENTRIES) this.cache.clear();
      this.cache.set(chunk, ids);
    }
    for (let i = 0; i < ids.length; i++) out.push(ids[i]);
  }

  private encodeUncached(text: string, out: number[]): void {
    const { tokenToId, scores } = this.vocab;
    const sym = this.sym;
    const heap = this.heap;
    sym.reset(text.length);
    heap.clear();
    for (let i = 0; i < text.length; ) {
      const c = text.charCodeAt(i);
      const n = c >= 0xd800 && c <= 0xdbff && i + 1 < text.length ? 2 : 1;
      sym.add(i, n);
      i += n;
    }
    sym.finish();
    if (sym.count === 0) return;

    const tryAdd = (left: number, right: number) => {
      if (left < 0 || right < 0) return;
      const size = sym.len[left] + sym.len[right];
      const id = tokenToId.get(text.substr(sym.start[left], size));
      if (id === undefined) return;
      heap.push(-scores[id], left, right, size);
    };
    mergeBest(sym, heap, this.top, tryAdd);

    const bytes: number[] = [];
    for (let i = 0; i !== -1; i = sym.next[i]) {
      const piece = text.substr(sym.start[i], sym.len[i]);
      const id = tokenToId.get(piece);
      if (id !== undefined) {
        out.push(id);
        continue;
      }
      bytes.length = 0;
      for (let k = 0; k < piece.length; ) {
        const cp = piece.codePointAt(k)!;
        pushUtf8(cp, bytes);
        k += cp > 0xffff ? 2 : 1;
      }
      for (const b of bytes) {
        const t = this.byteTokens[b];
        if (t >= 0) out.push(t);
      }
    }
  }
}

// ----------------------------------------------------------------------------
// BPE
// ----------------------------------------------------------------------------

/** Byte-level BPE tokenizer (llama.cpp's llm_tokenizer_bpe session, per word). */
export class BpeEncoder {
  private readonly cache = new Map<string, number[]>();
  private readonly sym = new Symbols();
  private readonly heap = new MergeHeap();
  private readonly top = { left: 0, right: 0, size: 0 };
  private readonly utf8: number[] = [];

  constructor(private readonly vocab: Vocab) {}

  /** Empties the word cache. */
  clearCache(): void {
    this.cache.clear();
  }

  /** Tokenizes one pre-tokenizer word, appending ids to `out`. */
  encodeWord(word: string, out: number[]): void {
    let ids = this.cache.get(word);
    if (ids === undefined) {
      ids = this.encodeUncached(word);
      if (this.cache.size >= MAX_CACHE_ENTRIES) this.cache.clear();
      this.cache.set(word, ids);
    }
    for (let i = 0; i < ids.length; i++) out.push(ids[i]);
  }

  private encodeUncached(word: string): number[] {
    const { tokenToId, mergeRanks } = this.vocab;
    // GPT-2 byte-level encoding: UTF-8 bytes -> one printable char each.
    const bytes = this.utf8;
    bytes.length = 0;
    for (let k = 0; k < word.length; ) {
      const cp = word.codePointAt(k)!;
      pushUtf8(cp, bytes);
      k += cp > 0xffff ? 2 : 1;
    }
    let enc = '';
    for (const b of bytes) enc += BYTE_TO_CHAR[b];

    const result: number[] = [];
    const whole = tokenToId.get(enc);
    if (enc.length === 1 || (this.vocab.ignoreMerges && whole !== undefined)) {
      if (whole !== undefined) result.push(whole);
      else this.pushFallback(enc, result);
      return result;
    }

    const sym = this.sym;
    const heap = this.heap;
    sym.reset(enc.length);
    heap.clear();
    for (let i = 0; i < enc.length; i++) sym.add(i, 1);
    sym.finish();

    const tryAdd = (left: number, right: number) => {
      if (left < 0 || right < 0) return;
      const a = enc.substr(sym.start[left], sym.len[left]);
      const b = enc.substr(sym.start[right], sym.len[right]);
      const rank = mergeRanks.get(a + ' ' + b);
      if (rank === undefined) return;
      heap.push(rank, left, right, a.length + b.length);
    };
    mergeBest(sym, heap, this.top, tryAdd);

    for (let i = 0; i !== -1; i = sym.next[i]) {
      const piece = enc.substr(sym.start[i], sym.len[i]);
      const id = tokenToId.get(piece);
      if (id !== undefined) result.push(id);
      else this.pushFallback(piece, result);
    }
    return result;
  }

  /**
   * A piece that is not a token: llama.cpp looks up each byte of its (encoded)
   * UTF-8 text as a one-byte token, which can only succeed for ASCII chars.
   */
  private pushFallback(piece: string, out: number[]): void {
    for (let k = 0; k < piece.length; k++) {
      const c = piece.charCodeAt(k);
      if (c < 0x80) {
        const id = this.vocab.tokenToId.get(piece[k]);
        if (id !== undefined) out.push(id);
      }
    }
  }
}
