/**
 * The grammar as a pushdown matcher over code points (llama.cpp's model: a set of stacks).
 *
 * The rules are laid out as one flat program of symbols; each alternative is a run of symbols
 * ending in END. A stack is a persistent linked list of program positions: its top points at a
 * character class, the rest at where to continue after each rule the matcher is inside. A
 * matcher state is the set of live stacks (the empty stack, id 0, meaning "the root rule is
 * complete"). States and stacks are interned, so equal states are the same object, and each
 * state memoizes its transitions: after warm-up, advancing by an ASCII character is one array
 * read, and by another character a few class tests and a lookup by which stacks matched.
 */
import type { CharClass, ParsedGrammar } from './gbnf.js';

const CHARS = 0;
const RULE = 1;
const END = 2;

/** A character class ready for matching: an ASCII bitmap, ranges for the rest. */
class CharMatcher {
  /** Bit c of ascii[c >> 5] set: code point c < 128 is in the (possibly negated) class. */
  readonly ascii = new Uint32Array(4);
  readonly ranges: Int32Array;
  readonly negated: boolean;

  constructor(c: CharClass) {
    this.ranges = Int32Array.from(c.ranges);
    this.negated = c.negated;
    for (let cp = 0; cp < 128; cp++) if (this.matchRanges(cp) !== this.negated) this.ascii[cp >> 5]! |= 1 << (cp & 31);
  }

  private matchRanges(cp: number): boolean {
    const r = this.ranges;
    for (let i = 0; i < r.length; i += 2) if (cp >= r[i]! && cp <= r[i + 1]!) return true;
    return false;
  }

  matches(cp: number): boolean {
    if (cp < 128) return (this.ascii[cp >> 5]! & (1 << (cp & 31))) !== 0;
    return this.matchRanges(cp) !== this.negated;
  }

  /** Whether some code point in lo..hi matches (for a character whose first UTF-8 bytes are known). */
  intersects(lo: number, hi: number): boolean {
    const r = this.ranges;
    if (!this.negated) {
      for (let i = 0; i < r.length; i += 2) if (r[i]! <= hi && r[i + 1]! >= lo) return true;
      return false;
    }
    // Negated: some point of lo..hi lies outside every range.
    let cur = lo;
    for (let i = 0; i < r.length && cur <= hi; i += 2) {
      if (r[i + 1]! < cur) continue;
      if (r[i]! > cur) return true;
      cur = r[i + 1]! + 1;
    }
    return cur <= hi;
  }
}

/** A set of live stacks; see the file comment. */
export class MatcherState {
  /** Memoized transitions for ASCII code points (undefined: not computed yet; null: not allowed). */
  readonly ascii: (MatcherState | null | undefined)[] = new Array(128).fill(undefined);
  /** Memoized transitions for the other code points, in states with too many stacks for signatures. */
  readonly next = new Map<number, MatcherState | null>();
  /**
   * Transitions by signature: bit i set when stacks[i] accepts the character. Characters with the
   * same signature lead to the same state, so a new character costs a few class tests, not a
   * recomputation of the stacks (a vocabulary holds thousands of distinct characters).
   */
  readonly bySignature = new Map<number, MatcherState | null>();

  constructor(
    /** Interning id (index in the program's state table). */
    readonly id: number,
    /** Stack ids, ascending; 0 is the empty stack. */
    readonly stacks: Int32Array,
  ) {}

  /** The text so far is a complete match (the root rule can end here). */
  get complete(): boolean {
    return this.stacks[0] === 0;
  }

  /** Some character can still follow. */
  get canContinue(): boolean {
    return this.stacks.length > (this.complete ? 1 : 0);
  }
}

/** Beyond this many interned stacks, a program starts afresh for its next matcher (memory bound). */
const MAX_STACKS = 1 << 20;

/** A compiled grammar: the flat program plus the interning tables of its stacks and states. */
export class GrammarProgram {
  /** Symbol kind per program position (CHARS, RULE, END). */
  private readonly kinds: Uint8Array;
  /** Per position: the class index (CHARS) or rule index (RULE). */
  private readonly args: Int32Array;
  /** Per rule: the program positions where its alternatives start. */
  private readonly ruleStarts: Int32Array[];
  private readonly classes: CharMatcher[];
  private readonly rootRule: number;

  // Stack interning: node i = (top position, rest of the stack); node 0 is the empty stack.
  private stackPos: number[] = [-1];
  private stackRest: number[] = [0];
  private stackIds = new Map<number, number>();
  private states = new Map<string, MatcherState>();
  private stateCount = 0;
  /** The state before any character. */
  private initial: MatcherState;

  constructor(g: ParsedGrammar) {
    const kinds: number[] = [];
    const args: number[] = [];
    const classes: CharMatcher[] = [];
    const classIndex = new Map<string, number>();
    this.ruleStarts = g.rules.map((rule) =>
      Int32Array.from(rule.alternatives, (alt) => {
        const start = kinds.length;
        for (const s of alt) {
          if (s.kind === 'rule') {
            kinds.push(RULE);
            args.push(s.rule);
          } else {
            const key = `${s.chars.negated ? '^' : ''}${s.chars.ranges.join(',')}`;
            let ci = classIndex.get(key);
            if (ci === undefined) {
              ci = classes.length;
              classes.push(new CharMatcher(s.chars));
              classIndex.set(key, ci);
            }
            kinds.push(CHARS);
            args.push(ci);
          }
        }
        kinds.push(END);
        args.push(0);
        return start;
      }),
    );
    this.kinds = Uint8Array.from(kinds);
    this.args = Int32Array.from(args);
    this.classes = classes;
    this.rootRule = g.root;
    this.initial = this.startState();
  }

  /** The state before any character (fresh tables if the old ones grew past their bound). */
  start(): MatcherState {
    if (this.stackPos.length > MAX_STACKS) {
      this.stackPos = [-1];
      this.stackRest = [0];
      this.stackIds = new Map();
      this.states = new Map();
      this.stateCount = 0;
      this.initial = this.startState();
    }
    return this.initial;
  }

  private startState(): MatcherState {
    const out = new Set<number>();
    const seen = new Set<number>();
    for (const a of this.ruleStarts[this.rootRule]!) this.expand(a, 0, out, seen);
    return this.intern(out);
  }

  private stackId(pos: number, rest: number): number {
    const key = rest * this.kinds.length + pos;
    let id = this.stackIds.get(key);
    if (id === undefined) {
      id = this.stackPos.length;
      this.stackPos.push(pos);
      this.stackRest.push(rest);
      this.stackIds.set(key, id);
    }
    return id;
  }

  /**
   * Adds to `out` every stack reachable from "at `pos`, then continue with stack `rest`" without
   * consuming a character: rules are entered, finished alternatives return to their caller.
   */
  private expand(pos: number, rest: number, out: Set<number>, seen: Set<number>): void {
    for (;;) {
      const key = rest * this.kinds.length + pos;
      if (seen.has(key)) return;
      seen.add(key);
      const kind = this.kinds[pos];
      if (kind === CHARS) {
        out.add(this.stackId(pos, rest));
        return;
      }
      if (kind === RULE) {
        // Returning to an END would only pop again, so the caller's rest is used directly
        // (keeps right-recursive repetitions from growing the stack).
        const after = this.kinds[pos + 1] === END ? rest : this.stackId(pos + 1, rest);
        for (const a of this.ruleStarts[this.args[pos]!]!) this.expand(a, after, out, seen);
        return;
      }
      // END: pop.
      if (rest === 0) {
        out.add(0);
        return;
      }
      pos = this.stackPos[rest]!;
      rest = this.stackRest[rest]!;
    }
  }

  private intern(stacks: Set<number>): MatcherState {
    const sorted = Int32Array.from(stacks).sort();
    const key = sorted.join(',');
    let s = this.states.get(key);
    if (s === undefined) {
      s = new MatcherState(this.stateCount++, sorted);
      this.states.set(key, s);
    }
    return s;
  }

  /** The state after code point `cp`, or null if the grammar does not allow it here. */
  advance(state: MatcherState, cp: number): MatcherState | null {
    if (cp < 128) {
      const memo = state.ascii[cp];
      if (memo !== undefined) return memo;
      return (state.ascii[cp] = this.transition(state, cp));
    }
    // Other characters (thousands of them in a vocabulary): the signature is a few class tests,
    // cheaper than memoizing each character.
    if (state.stacks.length <= 31) return this.transition(state, cp);
    const memo = state.next.get(cp);
    if (memo !== undefined) return memo;
    const next = this.transition(state, cp);
    state.next.set(cp, next);
    return next;
  }

  private transition(state: MatcherState, cp: number): MatcherState | null {
    const stacks = state.stacks;
    const bySignature = stacks.length <= 31;
    let signature = 0;
    if (bySignature) {
      for (let i = 0; i < stacks.length; i++) {
        const s = stacks[i]!;
        if (s !== 0 && this.classes[this.args[this.stackPos[s]!]!]!.matches(cp)) signature |= 1 << i;
      }
      if (signature === 0) return null;
      const known = state.bySignature.get(signature);
      if (known !== undefined) return known;
    }
    const out = new Set<number>();
    const seen = new Set<number>();
    for (const s of stacks) {
      if (s === 0) continue;
      const pos = this.stackPos[s]!;
      if (this.classes[this.args[pos]!]!.matches(cp)) this.expand(pos + 1, this.stackRest[s]!, out, seen);
    }
    const next = out.size === 0 ? null : this.intern(out);
    if (bySignature) state.bySignature.set(signature, next);
    return next;
  }

  /** Whether some character in lo..hi is allowed next (a partly received UTF-8 character). */
  allowsRange(state: MatcherState, lo: number, hi: number): boolean {
    for (const s of state.stacks) {
      if (s !== 0 && this.classes[this.args[this.stackPos[s]!]!]!.intersects(lo, hi)) return true;
    }
    return false;
  }

  /** Interned stacks so far (for tests and the bound). @internal */
  get stackCount(): number {
    return this.stackPos.length;
  }
}

/** A UTF-8 decoder's state between bytes: the code point so far and the bytes still expected. */
export interface Utf8Partial {
  /** Bits received so far. */
  value: number;
  /** Continuation bytes still expected (0: between characters). */
  remaining: number;
  /** Continuation bytes of the whole character (to compute its range). */
  length: number;
}

export const UTF8_NONE: Readonly<Utf8Partial> = Object.freeze({ value: 0, remaining: 0, length: 0 });

/** The code points a partly decoded character can still become: [lo, hi]. */
export function partialRange(p: Utf8Partial): [number, number] {
  const shift = 6 * p.remaining;
  const lo = Math.max(p.value << shift, [0, 0x80, 0x800, 0x10000][p.length]!);
  return [lo, Math.min((p.value << shift) | ((1 << shift) - 1), 0x10ffff)];
}

/**
 * Feeds bytes into the matcher: complete characters advance the state, a trailing partial
 * character is checked for a possible match and returned as the new partial. Returns null when
 * the grammar rejects a character, or the bytes are not UTF-8.
 */
export function advanceBytes(
  program: GrammarProgram,
  state: MatcherState,
  partial: Readonly<Utf8Partial>,
  bytes: Uint8Array,
): { state: MatcherState; partial: Utf8Partial } | null {
  let s: MatcherState | null = state;
  let { value, remaining, length } = partial;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (remaining > 0) {
      if ((b & 0xc0) !== 0x80) return null;
      value = (value << 6) | (b & 0x3f);
      if (--remaining > 0) continue;
      if (value < [0, 0x80, 0x800, 0x10000][length]! || value > 0x10ffff || (value >= 0xd800 && value <= 0xdfff)) return null;
      s = program.advance(s, value);
    } else if (b < 0x80) {
      s = program.advance(s, b);
    } else {
      if (b >= 0xc2 && b <= 0xdf) [value, remaining] = [b & 0x1f, 1];
      else if (b >= 0xe0 && b <= 0xef) [value, remaining] = [b & 0x0f, 2];
      else if (b >= 0xf0 && b <= 0xf4) [value, remaining] = [b & 0x07, 3];
      else return null;
      length = remaining;
      continue;
    }
    if (s === null) return null;
  }
  const next: Utf8Partial = { value, remaining, length: remaining > 0 ? length : 0 };
  if (remaining > 0) {
    const [lo, hi] = partialRange(next);
    if (lo > hi || !program.allowsRange(s, lo, hi)) return null;
  }
  return { state: s, partial: next };
}

/** Whether `text` as a whole matches the grammar. */
export function matchesText(program: GrammarProgram, text: string): boolean {
  let s: MatcherState | null = program.start();
  for (const ch of text) {
    s = program.advance(s, ch.codePointAt(0)!);
    if (s === null) return false;
  }
  return s.complete;
}

/** Whether `text` is a prefix of some text the grammar matches. */
export function matchesPrefix(program: GrammarProgram, text: string): boolean {
  let s: MatcherState | null = program.start();
  for (const ch of text) {
    s = program.advance(s, ch.codePointAt(0)!);
    if (s === null) return false;
  }
  return true;
}
