// Strings to test a grammar with: random derivations of the grammar (depth-limited, falling back
// to each rule's shortest alternative), and near-misses of them (a character deleted, inserted,
// replaced or appended; a prefix), from a seeded generator.
import type { CharClass, ParsedGrammar } from '../../lib/grammar/gbnf.js';
import { rng } from './random.js';

/** A code point the class matches, picked at random (printable ASCII preferred). */
function pickChar(c: CharClass, rnd: () => number): number {
  const inRanges = (cp: number): boolean => {
    for (let i = 0; i < c.ranges.length; i += 2) if (cp >= c.ranges[i]! && cp <= c.ranges[i + 1]!) return true;
    return false;
  };
  const ok = (cp: number): boolean => inRanges(cp) !== c.negated;
  for (let tries = 0; tries < 64; tries++) {
    const cp = rnd() < 0.9 ? 0x20 + Math.floor(rnd() * 95) : Math.floor(rnd() * 0x3000);
    if (ok(cp) && !(cp >= 0xd800 && cp <= 0xdfff)) return cp;
  }
  if (!c.negated && c.ranges.length > 0) {
    const i = 2 * Math.floor(rnd() * (c.ranges.length / 2));
    return c.ranges[i]! + Math.floor(rnd() * Math.min(c.ranges[i + 1]! - c.ranges[i]! + 1, 1000));
  }
  for (let cp = 0x20; ; cp++) if (ok(cp)) return cp;
}

/** `n` random strings of the grammar's language. */
export function sampleGrammar(g: ParsedGrammar, n: number, seed: number, maxDepth = 12): string[] {
  const rnd = rng(seed);
  // Shortest derivation length per rule (fixpoint), to end recursion past maxDepth.
  const cost = new Array<number>(g.rules.length).fill(Infinity);
  const altCost = (alt: ParsedGrammar['rules'][number]['alternatives'][number]): number =>
    alt.reduce((sum, s) => sum + (s.kind === 'chars' ? 1 : cost[s.rule]!), 0);
  for (let changed = true; changed; ) {
    changed = false;
    g.rules.forEach((r, i) => {
      const c = Math.min(...r.alternatives.map(altCost));
      if (c < cost[i]!) [cost[i], changed] = [c, true];
    });
  }
  const out: string[] = [];
  const expand = (rule: number, depth: number, acc: number[]): void => {
    if (acc.length > 400) depth = Infinity;
    const alts = g.rules[rule]!.alternatives;
    let alt = alts[Math.floor(rnd() * alts.length)]!;
    if (depth > maxDepth) alt = alts.reduce((a, b) => (altCost(b) < altCost(a) ? b : a));
    for (const s of alt) {
      if (s.kind === 'chars') acc.push(pickChar(s.chars, rnd));
      else expand(s.rule, depth + 1, acc);
    }
  };
  for (let i = 0; i < n; i++) {
    const acc: number[] = [];
    expand(g.root, 0, acc);
    out.push(String.fromCodePoint(...acc));
  }
  return out;
}

/** Near-misses of each string: one edit each, from `alphabet`. */
export function nearMisses(strings: readonly string[], alphabet: string, seed: number): string[] {
  const rnd = rng(seed);
  const chars = Array.from(alphabet);
  const pick = (): string => chars[Math.floor(rnd() * chars.length)]!;
  const out: string[] = [];
  for (const s of strings) {
    const a = Array.from(s);
    const i = Math.floor(rnd() * (a.length + 1));
    out.push([...a.slice(0, i), ...a.slice(i + 1)].join(''));  // delete
    out.push([...a.slice(0, i), pick(), ...a.slice(i)].join(''));  // insert
    out.push([...a.slice(0, i), pick(), ...a.slice(i + 1)].join(''));  // replace
    out.push(s + pick());  // append
    out.push(a.slice(0, Math.floor(rnd() * a.length)).join(''));  // prefix
  }
  return out;
}
