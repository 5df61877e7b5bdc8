/**
 * Which tokens a grammar allows next: a vocabulary index (a code-point trie of every token, built
 * once per tokenizer) walked against a matcher state, and the per-generation token matcher.
 *
 * The walk visits the trie in preorder; a subtree whose prefix the grammar rejects is skipped
 * whole, so tokens sharing a prefix share its work, and each step is a memoized state transition
 * (a Map lookup once warm). A state's mask is cached, so a state seen again (a JSON schema's
 * grammar has few) costs nothing. Tokens that are not whole UTF-8 characters (byte tokens,
 * fragments of multi-byte characters) are checked one by one at the byte level.
 */
import type { Tokenizer } from '../tokenizer/index.js';
import { advanceBytes, type GrammarProgram, type MatcherState, UTF8_NONE, type Utf8Partial } from './matcher.js';

/** States whose masks a vocabulary keeps per grammar before it starts over (bounds memory: 19 KB each at 150k tokens). */
const MAX_CACHED_MASKS = 2048;

/** Every token of one vocabulary, arranged for mask computation. */
export class VocabIndex {
  readonly nVocab: number;
  /** Uint32 words of a mask (bit t of word t >> 5: token t allowed). */
  readonly maskWords: number;
  /** End-of-generation tokens: allowed exactly when the grammar is complete. */
  readonly eog: Int32Array;
  /** Token bytes, flat: token t is bytes[offsets[t] .. offsets[t + 1]]; empty for control tokens. */
  private readonly bytes: Uint8Array;
  private readonly offsets: Int32Array;

  // The trie of tokens that decode to whole code points, in preorder: node i holds code point
  // cps[i] at depth depths[i] (1 = first character), its subtree ends before node ends[i], and the
  // tokens spelled by the path to it are tokenIds[tokenStarts[i] .. tokenStarts[i + 1]].
  private readonly cps: Int32Array;
  private readonly depths: Int32Array;
  private readonly ends: Int32Array;
  private readonly tokenStarts: Int32Array;
  private readonly tokenIds: Int32Array;
  private readonly maxDepth: number;
  /** Tokens whose bytes are not whole UTF-8 characters. */
  private readonly oddTokens: Int32Array;

  private readonly masks = new WeakMap<GrammarProgram, Map<MatcherState, Uint32Array>>();

  constructor(tokenizer: Tokenizer) {
    const n = tokenizer.vocabSize;
    this.nVocab = n;
    this.maskWords = (n + 31) >>> 5;
    const eog: number[] = [];
    const pieces: Uint8Array[] = [];
    let total = 0;
    for (let t = 0; t < n; t++) {
      if (tokenizer.isEog(t)) eog.push(t);
      // Control tokens render as nothing and never advance a grammar, so they are never allowed.
      const b = tokenizer.isEog(t) ? new Uint8Array(0) : tokenizer.pieces.bytes(t, false);
      pieces.push(b);
      total += b.length;
    }
    this.eog = Int32Array.from(eog);
    this.bytes = new Uint8Array(total);
    this.offsets = new Int32Array(n + 1);
    for (let t = 0, o = 0; t < n; t++) {
      this.bytes.set(pieces[t]!, o);
      o += pieces[t]!.length;
      this.offsets[t + 1] = o;
    }

    // Decode each token; sort the decodable ones by code points so the trie comes out in preorder.
    const spelled: { id: number; cps: number[] }[] = [];
    const odd: number[] = [];
    for (let t = 0; t < n; t++) {
      const b = pieces[t]!;
      if (b.length === 0) continue;
      const cps = decodeWhole(b);
      if (cps) spelled.push({ id: t, cps });
      else odd.push(t);
    }
    spelled.sort((a, b) => {
      const m = Math.min(a.cps.length, b.cps.length);
      for (let i = 0; i < m; i++) if (a.cps[i] !== b.cps[i]) return a.cps[i]! - b.cps[i]!;
      return a.cps.length - b.cps.length || a.id - b.id;
    });
    const cps: number[] = [];
    const depths: number[] = [];
    const ends: number[] = [];
    const tokenStarts: number[] = [];
    const tokenIds: number[] = [];
    const path: number[] = [];  // node indices of the current path, by depth - 1
    let maxDepth = 0;
    for (const { id, cps: word } of spelled) {
      let common = 0;
      while (common < path.length && common < word.length && cps[path[common]!] === word[common]) common++;
      while (path.length > common) ends[path.pop()!] = cps.length;
      for (let d = common; d < word.length; d++) {
        path.push(cps.length);
        cps.push(word[d]!);
        depths.push(d + 1);
        ends.push(-1);
        tokenStarts.push(tokenIds.length);
      }
      maxDepth = Math.max(maxDepth, word.length);
      tokenIds.push(id);  // attached to the last node, path[word.length - 1], which is the newest
    }
    while (path.length > 0) ends[path.pop()!] = cps.length;
    tokenStarts.push(tokenIds.length);
    this.cps = Int32Array.from(cps);
    this.depths = Int32Array.from(depths);
    this.ends = Int32Array.from(ends);
    this.tokenStarts = Int32Array.from(tokenStarts);
    this.tokenIds = Int32Array.from(tokenIds);
    this.maxDepth = maxDepth;
    this.oddTokens = Int32Array.from(odd);
  }

  /** Token t's bytes (a view). */
  tokenBytes(t: number): Uint8Array {
    return this.bytes.subarray(this.offsets[t]!, this.offsets[t + 1]!);
  }

  /** Trie nodes (for the bench's report). */
  get trieNodes(): number {
    return this.cps.length;
  }

  /** The cached mask of `state` (no character pending), if it was computed before. */
  cachedMask(program: GrammarProgram, state: MatcherState): Uint32Array | undefined {
    return this.masks.get(program)?.get(state);
  }

  /**
   * The tokens the grammar allows after `state` (plus `partial`, a character begun by the last
   * token): a bitset of nVocab bits. Cached per state when no character is pending.
   */
  mask(program: GrammarProgram, state: MatcherState, partial: Readonly<Utf8Partial>): Uint32Array {
    const pending = partial.remaining > 0;
    let cache = this.masks.get(program);
    if (!pending) {
      const hit = cache?.get(state);
      if (hit) return hit;
    }
    const bits = new Uint32Array(this.maskWords);
    if (pending) {
      // Rare (the last token ended inside a character): every token must finish it first.
      for (let t = 0; t < this.nVocab; t++) {
        const b = this.tokenBytes(t);
        if (b.length > 0 && advanceBytes(program, state, partial, b) !== null) bits[t >>> 5]! |= 1 << (t & 31);
      }
      return bits;
    }
    this.walk(program, state, bits);
    for (const t of this.oddTokens) {
      if (advanceBytes(program, state, UTF8_NONE, this.tokenBytes(t)) !== null) bits[t >>> 5]! |= 1 << (t & 31);
    }
    if (state.complete) for (const t of this.eog) bits[t >>> 5]! |= 1 << (t & 31);
    if (!cache) {
      cache = new Map();
      this.masks.set(program, cache);
    }
    if (cache.size >= MAX_CACHED_MASKS) cache.clear();
    cache.set(state, bits);
    return bits;
  }

  /** Sets the bits of every trie token the grammar accepts from `root`. */
  private walk(program: GrammarProgram, root: MatcherState, bits: Uint32Array): void {
    const { cps, depths, ends, tokenStarts, tokenIds } = this;
    const stateAt: MatcherState[] = new Array(this.maxDepth + 1);
    stateAt[0] = root;
    const n = cps.length;
    for (let i = 0; i < n; ) {
      const d = depths[i]!;
      const next = program.advance(stateAt[d - 1]!, cps[i]!);
      if (next === null) {
        i = ends[i]!;
        continue;
      }
      stateAt[d] = next;
      for (let k = tokenStarts[i]!, e = tokenStarts[i + 1]!; k < e; k++) {
        const t = tokenIds[k]!;
        bits[t >>> 5]! |= 1 << (t & 31);
      }
      i++;
    }
  }
}

/** The code points of `bytes` if they are whole, valid UTF-8 characters; else undefined. */
function decodeWhole(bytes: Uint8Array): number[] | undefined {
  const out: number[] = [];
  for (let i = 0; i < bytes.length; ) {
    const b = bytes[i]!;
    let cp: number;
    let extra: number;
    if (b < 0x80) [cp, extra] = [b, 0];
    else if (b >= 0xc2 && b <= 0xdf) [cp, extra] = [b & 0x1f, 1];
    else if (b >= 0xe0 && b <= 0xef) [cp, extra] = [b & 0x0f, 2];
    else if (b >= 0xf0 && b <= 0xf4) [cp, extra] = [b & 0x07, 3];
    else return undefined;
    for (let k = 1; k <= extra; k++) {
      const c = bytes[i + k];
      if (c === undefined || (c & 0xc0) !== 0x80) return undefined;
      cp = (cp << 6) | (c & 0x3f);
    }
    if (cp < [0, 0x80, 0x800, 0x10000][extra]! || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return undefined;
    out.push(cp);
    i += extra + 1;
  }
  return out;
}

const indexes = new WeakMap<Tokenizer, VocabIndex>();

/** The vocabulary index of a tokenizer, built on first use. */
export function vocabIndexOf(tokenizer: Tokenizer): VocabIndex {
  let v = indexes.get(tokenizer);
  if (!v) {
    v = new VocabIndex(tokenizer);
    indexes.set(tokenizer, v);
  }
  return v;
}

/**
 * One generation's position in a grammar: accepts tokens, and says which tokens may come next.
 */
export class TokenMatcher {
  private state: MatcherState;
  private partial: Readonly<Utf8Partial> = UTF8_NONE;

  constructor(
    private readonly program: GrammarProgram,
    private readonly vocab: VocabIndex,
  ) {
    this.state = program.start();
  }

  /** The output so far is a complete match (end of generation is allowed). */
  get complete(): boolean {
    return this.state.complete && this.partial.remaining === 0;
  }

  /** Complete, and nothing may follow: generation must end here. */
  get finished(): boolean {
    return this.complete && !this.state.canContinue;
  }

  /** Whether token t may come next. */
  allows(t: number): boolean {
    if (t < 0 || t >= this.vocab.nVocab) return false;
    const b = this.vocab.tokenBytes(t);
    if (b.length === 0) return this.complete && this.vocab.eog.includes(t);
    return advanceBytes(this.program, this.state, this.partial, b) !== null;
  }

  /** Appends token t (which must be allowed); an end-of-generation token changes nothing. */
  accept(t: number): void {
    const b = this.vocab.tokenBytes(t);
    if (b.length === 0) return;
    const r = advanceBytes(this.program, this.state, this.partial, b);
    if (r === null) throw new Error(`grammar: token ${t} is not allowed here`);
    this.state = r.state;
    this.partial = r.partial;
  }

  /** The mask of the current state if it was computed before (no work otherwise). */
  cachedMask(): Uint32Array | undefined {
    return this.partial.remaining > 0 ? undefined : this.vocab.cachedMask(this.program, this.state);
  }

  /** The bitset of tokens allowed next (nVocab bits; shared, do not modify). */
  mask(): Uint32Array {
    return this.vocab.mask(this.program, this.state, this.partial);
  }
}
