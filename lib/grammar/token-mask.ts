/**
 * Which tokens a grammar allows next: a vocabulary index (a code-point trie of every token, built
 * once per tokenizer) walked against a matcher state, and the per-generation token matcher.
 *
 * The walk visits the trie in preorder; a subtree whose prefix the grammar rejects is skipped
 * whole, so tokens sharing a prefix share its work, and each step is a memoized state transition.
 * A state's mask is cached, so a state seen again (a JSON schema's
 * grammar has few) costs nothing. Tokens that are not whole UTF-8 characters (byte tokens,
 * fragments of multi-byte characters) are checked one by one at the byte level.
 */
import { SliceClock } from '../slices.js';
import type { Tokenizer } from '../tokenizer/index.js';
import { CHAR_TO_BYTE, utf8Encoder } from '../tokenizer/unicode.js';
import { Attr } from '../tokenizer/vocab.js';
import { advanceBytes, type GrammarProgram, type MatcherState, UTF8_NONE, type Utf8Partial } from './matcher.js';

/** Masks a vocabulary keeps, all grammars together, before it starts over (19 KB each at 150k tokens: ~20 MB). */
const MAX_CACHED_MASKS = 1024;

/** Every token of one vocabulary, arranged for mask computation. Build with {@link vocabIndexOf}. */
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

  private masks = new WeakMap<GrammarProgram, Map<MatcherState, Uint32Array>>();
  private cachedCount = 0;

  /** @internal Use {@link vocabIndexOf} / {@link vocabIndexOfAsync}. */
  constructor(parts: VocabParts) {
    this.nVocab = parts.offsets.length - 1;
    this.maskWords = (this.nVocab + 31) >>> 5;
    ({ eog: this.eog, bytes: this.bytes, offsets: this.offsets, cps: this.cps, depths: this.depths, ends: this.ends } = parts);
    ({ tokenStarts: this.tokenStarts, tokenIds: this.tokenIds, maxDepth: this.maxDepth, oddTokens: this.oddTokens } = parts);
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
   * token), as a bitset of nVocab bits, computed in small steps (a generator: run it in slices
   * with a SliceClock, or to its end). Cached per state when no character is pending.
   */
  *maskSteps(program: GrammarProgram, state: MatcherState, partial: Readonly<Utf8Partial>): Generator<void, Uint32Array, void> {
    const pending = partial.remaining > 0;
    if (!pending) {
      const hit = this.cachedMask(program, state);
      if (hit) return hit;
    }
    const bits = new Uint32Array(this.maskWords);
    if (pending) {
      // Rare (the last token ended inside a character): every token must finish it first.
      for (let t = 0; t < this.nVocab; t++) {
        const b = this.tokenBytes(t);
        if (b.length > 0 && advanceBytes(program, state, partial, b) !== null) bits[t >>> 5]! |= 1 << (t & 31);
        if ((t & 1023) === 1023) yield;
      }
      return bits;
    }
    yield* this.walk(program, state, bits);
    for (let i = 0; i < this.oddTokens.length; i++) {
      const t = this.oddTokens[i]!;
      if (advanceBytes(program, state, UTF8_NONE, this.tokenBytes(t)) !== null) bits[t >>> 5]! |= 1 << (t & 31);
      if ((i & 255) === 255) yield;
    }
    if (state.complete) for (const t of this.eog) bits[t >>> 5]! |= 1 << (t & 31);
    if (this.cachedCount >= MAX_CACHED_MASKS) {
      this.masks = new WeakMap();
      this.cachedCount = 0;
    }
    let cache = this.masks.get(program);
    if (!cache) {
      cache = new Map();
      this.masks.set(program, cache);
    }
    cache.set(state, bits);
    this.cachedCount++;
    return bits;
  }

  /** {@link maskSteps} in one go. */
  mask(program: GrammarProgram, state: MatcherState, partial: Readonly<Utf8Partial>): Uint32Array {
    return drain(this.maskSteps(program, state, partial));
  }

  /** Sets the bits of every trie token the grammar accepts from `root`. */
  private *walk(program: GrammarProgram, root: MatcherState, bits: Uint32Array): Generator<void, void, void> {
    const { cps, depths, ends, tokenStarts, tokenIds } = this;
    const stateAt: MatcherState[] = new Array(this.maxDepth + 1);
    stateAt[0] = root;
    const n = cps.length;
    let budget = WALK_STEP;
    for (let i = 0; i < n; ) {
      if (--budget === 0) {
        budget = WALK_STEP;
        yield;
      }
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

/** Trie nodes a mask walk visits between yields (about 0.1-0.3 ms). */
const WALK_STEP = 4096;

/** What a {@link VocabIndex} is made of. */
interface VocabParts {
  eog: Int32Array;
  bytes: Uint8Array;
  offsets: Int32Array;
  cps: Int32Array;
  depths: Int32Array;
  ends: Int32Array;
  tokenStarts: Int32Array;
  tokenIds: Int32Array;
  maxDepth: number;
  oddTokens: Int32Array;
}

function drain<T>(steps: Generator<void, T, void>): T {
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

/**
 * Every token's bytes, flat: what `tokenizer.pieces.bytes(t, false)` gives (the one definition of
 * a token's text), with a fast path for normal tokens that skips a typed array per token (1.5 s
 * for 150k tokens otherwise). End-of-generation tokens are empty: they never advance a grammar.
 */
function* renderVocab(tokenizer: Tokenizer): Generator<void, { bytes: Uint8Array; offsets: Int32Array; eog: Int32Array }, void> {
  const { vocab } = tokenizer;
  const n = tokenizer.vocabSize;
  const offsets = new Int32Array(n + 1);
  let bytes = new Uint8Array(n * 8);
  let used = 0;
  const eog: number[] = [];
  const room = (k: number): void => {
    if (used + k <= bytes.length) return;
    const grown = new Uint8Array(Math.max(bytes.length * 2, used + k));
    grown.set(bytes.subarray(0, used));
    bytes = grown;
  };
  const byteLevel = vocab.type === 'bpe';
  for (let t = 0; t < n; t++) {
    if (tokenizer.isEog(t)) eog.push(t);
    else if (vocab.attrs[t] === Attr.Normal && (byteLevel || vocab.type === 'spm')) {
      const text = vocab.tokens.at(t);
      const start = used;
      room(text.length * 4);
      let ok = true;
      if (byteLevel) {
        for (let k = 0; k < text.length; k++) {
          const c = text.charCodeAt(k);
          const b = c < CHAR_TO_BYTE.length ? CHAR_TO_BYTE[c]! : -1;
          if (b < 0) {
            ok = false;  // an unmapped character: PieceTable renders it specially
            break;
          }
          bytes[used++] = b;
        }
      } else {
        used += utf8Encoder.encodeInto(text.replaceAll('\u2581', ' '), bytes.subarray(used)).written;
      }
      if (!ok) {
        used = start;
        const b = tokenizer.pieces.bytes(t, false);
        room(b.length);
        bytes.set(b, used);
        used += b.length;
      }
    } else {
      const b = tokenizer.pieces.bytes(t, false);
      room(b.length);
      bytes.set(b, used);
      used += b.length;
    }
    offsets[t + 1] = used;
    if ((t & 1023) === 1023) yield;
  }
  return { bytes: bytes.slice(0, used), offsets, eog: Int32Array.from(eog) };
}

/** Builds a vocabulary's index in small steps (see {@link vocabIndexOfAsync}). */
function* buildVocabIndex(tokenizer: Tokenizer): Generator<void, VocabIndex, void> {
  const { bytes, offsets, eog } = yield* renderVocab(tokenizer);
  const n = offsets.length - 1;

  // Insert every token that decodes to whole code points into a trie: children as linked lists,
  // searched in place except for the root's (thousands of first characters), found by a Map.
  let cap = 1 << 16;
  let nodeCp = new Int32Array(cap);
  let firstChild = new Int32Array(cap).fill(-1);
  let nextSibling = new Int32Array(cap).fill(-1);
  let firstToken = new Int32Array(cap).fill(-1);
  const nextToken = new Int32Array(n).fill(-1);
  const rootChildren = new Map<number, number>();
  let nodes = 1;  // node 0: the root
  const odd: number[] = [];
  const grow = (): void => {
    cap *= 2;
    const g = (a: Int32Array, fill: number): Int32Array<ArrayBuffer> => {
      const b = new Int32Array(cap).fill(fill);
      b.set(a);
      return b;
    };
    [nodeCp, firstChild, nextSibling, firstToken] = [g(nodeCp, 0), g(firstChild, -1), g(nextSibling, -1), g(firstToken, -1)];
  };
  const cps: number[] = [];
  for (let t = 0; t < n; t++) {
    if ((t & 511) === 511) yield;
    const b = bytes.subarray(offsets[t]!, offsets[t + 1]!);
    if (b.length === 0) continue;
    if (!decodeWhole(b, cps)) {
      odd.push(t);
      continue;
    }
    let node = 0;
    for (const cp of cps) {
      let child = node === 0 ? (rootChildren.get(cp) ?? -1) : firstChild[node]!;
      if (node !== 0) while (child >= 0 && nodeCp[child] !== cp) child = nextSibling[child]!;
      if (child < 0) {
        if (nodes === cap) grow();
        child = nodes++;
        nodeCp[child] = cp;
        nextSibling[child] = firstChild[node]!;
        firstChild[node] = child;
        if (node === 0) rootChildren.set(cp, child);
      }
      node = child;
    }
    nextToken[t] = firstToken[node]!;
    firstToken[node] = t;
  }

  // Lay the trie out in preorder (iterative depth-first walk), with subtree ends.
  const out = nodes - 1;
  const pCps = new Int32Array(out);
  const pDepths = new Int32Array(out);
  const pEnds = new Int32Array(out);
  const tokenStarts = new Int32Array(out + 1);
  const tokenIds: number[] = [];
  let maxDepth = 0;
  let next = 0;
  // Stack of (node, depth, preorder index) frames; a frame is closed when its children are done.
  const stackNode: number[] = [];
  const stackIndex: number[] = [];
  const stackChild: number[] = [];
  stackNode.push(0);
  stackIndex.push(-1);
  stackChild.push(firstChild[0]!);
  let steps = 0;
  while (stackNode.length > 0) {
    if ((++steps & 4095) === 0) yield;
    const top = stackNode.length - 1;
    const child = stackChild[top]!;
    if (child < 0) {
      const idx = stackIndex[top]!;
      if (idx >= 0) pEnds[idx] = next;
      stackNode.pop();
      stackIndex.pop();
      stackChild.pop();
      continue;
    }
    stackChild[top] = nextSibling[child]!;
    const idx = next++;
    const depth = stackNode.length;
    pCps[idx] = nodeCp[child]!;
    pDepths[idx] = depth;
    maxDepth = Math.max(maxDepth, depth);
    tokenStarts[idx] = tokenIds.length;
    for (let t = firstToken[child]!; t >= 0; t = nextToken[t]!) tokenIds.push(t);
    stackNode.push(child);
    stackIndex.push(idx);
    stackChild.push(firstChild[child]!);
  }
  tokenStarts[out] = tokenIds.length;
  return new VocabIndex({
    eog, bytes, offsets, cps: pCps, depths: pDepths, ends: pEnds, tokenStarts, tokenIds: Int32Array.from(tokenIds), maxDepth, oddTokens: Int32Array.from(odd),
  });
}

/** Fills `out` with the code points of `bytes` if they are whole, valid UTF-8 characters; else false. */
function decodeWhole(bytes: Uint8Array, out: number[]): boolean {
  out.length = 0;
  for (let i = 0; i < bytes.length; ) {
    const b = bytes[i]!;
    let cp: number;
    let extra: number;
    if (b < 0x80) [cp, extra] = [b, 0];
    else if (b >= 0xc2 && b <= 0xdf) [cp, extra] = [b & 0x1f, 1];
    else if (b >= 0xe0 && b <= 0xef) [cp, extra] = [b & 0x0f, 2];
    else if (b >= 0xf0 && b <= 0xf4) [cp, extra] = [b & 0x07, 3];
    else return false;
    for (let k = 1; k <= extra; k++) {
      const c = bytes[i + k];
      if (c === undefined || (c & 0xc0) !== 0x80) return false;
      cp = (cp << 6) | (c & 0x3f);
    }
    if (cp < [0, 0x80, 0x800, 0x10000][extra]! || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    out.push(cp);
    i += extra + 1;
  }
  return true;
}

const indexes = new WeakMap<Tokenizer, VocabIndex>();

/** The vocabulary index of a tokenizer, built on first use (in one go: ~0.3 s at 150k tokens). */
export function vocabIndexOf(tokenizer: Tokenizer): VocabIndex {
  let v = indexes.get(tokenizer);
  if (!v) {
    v = drain(buildVocabIndex(tokenizer));
    indexes.set(tokenizer, v);
  }
  return v;
}

/** {@link vocabIndexOf}, built in ~1 ms slices so the event loop keeps running. */
export async function vocabIndexOfAsync(tokenizer: Tokenizer): Promise<VocabIndex> {
  let v = indexes.get(tokenizer);
  if (!v) {
    v = await new SliceClock().run(buildVocabIndex(tokenizer));
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

  /** {@link mask}, computed in ~1 ms slices; adds the JS-thread time it took to `stats.grammarMs`. */
  async maskAsync(clock = new SliceClock()): Promise<Uint32Array> {
    return clock.run(this.vocab.maskSteps(this.program, this.state, this.partial));
  }
}
