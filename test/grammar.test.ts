// The grammar engine against llama.cpp's (node-llama-cpp's AddonGrammar, in a child process):
// llama.cpp's own GBNF examples and grammars exercising each syntax feature accept and reject the
// same strings (random derivations of each grammar and one-edit near-misses of them), and the
// same malformed grammars fail to parse. Then the token layer: masks against a brute-force check
// of every token, end-of-generation, and generate() under a grammar on the bundled model.
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

import { Grammar, loadModel, MoerunError, readGgufInfo } from '../lib/index.js';
import { parseGbnf } from '../lib/grammar/gbnf.js';
import { TokenMatcher, vocabIndexOf, vocabIndexOfAsync } from '../lib/grammar/token-mask.js';
import { Tokenizer } from '../lib/tokenizer/index.js';
import { sharedDir } from './helpers/shared.js';
import { nearMisses, sampleGrammar } from './helpers/grammar-samples.js';
import { run } from './helpers/run.js';

const LLAMA_GRAMMARS = fileURLToPath(new URL('../node_modules/node-llama-cpp/llama/grammars/', import.meta.url));
const shared = sharedDir();
const bundledModel = fileURLToPath(new URL('../models/stories260K.gguf', import.meta.url));

interface OracleCase {
  grammar: string;
  root: string;
  strings: string[];
}

/** llama.cpp's verdicts, from a child process. */
async function llamaCppAccepts(cases: OracleCase[]): Promise<{ parsed: boolean; accepted: boolean[] }[]> {
  const dir = await mkdtemp(join(tmpdir(), 'moerun-grammar-'));
  try {
    const req = join(dir, 'req.json');
    await writeFile(req, JSON.stringify(cases));
    const worker = fileURLToPath(new URL('./helpers/grammar-oracle-worker.mjs', import.meta.url));
    const r = await run(process.execPath, [worker, req]);
    const line = r.stdout.split('\n').find((l) => l.startsWith('ORACLE-RESULT '));
    if (r.status !== 0 || !line) throw new Error(`grammar oracle failed (${r.status} ${r.signal}): ${r.stderr.slice(-2000)}`);
    return JSON.parse(line.slice('ORACLE-RESULT '.length));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function readGrammar(name: string): string {
  try {
    return readFileSync(join(LLAMA_GRAMMARS, name), 'utf8');
  } catch {
    return readFileSync(join('/tmp/llama.cpp/grammars', name), 'utf8');
  }
}

/** Hand-written strings per grammar, on top of the generated ones. */
const EXAMPLES: Record<string, string[]> = {
  'json.gbnf': ['{}', '{"a": 1}', '{"a":[1,2.5e3,-0.1,true,false,null,"x\\u00e9\\n"]}', '{"a": {"b": {}}}', '{ "a" : 1 }', '[1]', '{"a":01}', '{"a": "\x01"}', '{"a": 1}\n  ', '{"a": 1,}'],
  'arithmetic.gbnf': ['1+2=3\n', 'a = b\n', '(x+1)*y= 2\n', '1=1\n2=2\n', '1+=2\n', '=1\n', 'abc_1 = 1\n'],
  'list.gbnf': ['- a\n', '- one\n- two\n', '-a\n', '- \n', '- x\r\n', '- é ü\n'],
  'c.gbnf': ['int main(){return 0;}', 'int f(int x){x = x+1;return x;}', 'char c(){while(a<b){a = a+1;}}', 'int main() { return 0; }', 'float g(){/* c */// d\n}'],
};

/** Small grammars for single syntax features (escapes, classes, repetition, comments, groups). */
const FEATURES: { name: string; grammar: string; strings: string[] }[] = [
  { name: 'repetition counts', grammar: 'root ::= "a"{2} "b"{1,3} "c"{2,} ("d" "e"){0,2}\n', strings: ['aabcc', 'aabbbccccdede', 'abcc', 'aabbbbcc', 'aabcc' + 'de'.repeat(3), 'aabc'] },
  { name: 'classes and escapes', grammar: 'root ::= [a-c\\x41-\\x43\\-]+ [^\\n\\]]* "\\"\\\\" [\\u00e0-\\u00ff]\n', strings: ['a-C]"\\é', 'abc"\\à', 'ABC-x y"\\ÿ', 'd"\\à', 'a\n"\\à'] },
  { name: 'any char and comments', grammar: '# a comment\nroot ::= . "x" | # trailing\n  "(" (root | "y")? ")" # nested\n', strings: ['ax', 'éx', '()', '(y)', '(ax)', '((y))', 'x', '(('] },
  { name: 'multi-line groups', grammar: 'root ::= (\n  "a" |\n  "b"\n) ws\nws ::= [ \\t]*\n', strings: ['a', 'b  ', 'b\t', 'c', 'ab'] },
  { name: 'literal repetition', grammar: 'root ::= "ab"* "c"? [xyz]+\n', strings: ['x', 'ababcyz', 'abax', 'cx', 'abab'] },
  { name: 'other root', grammar: 'start ::= "s" item\nitem ::= [0-9]\n', strings: ['s1', 's', 's12'] },
];

/** Grammars both parsers must refuse. */
const MALFORMED = [
  'root ::= undefined-rule\n',
  'root = "a"\n',
  'root ::= "a\n',
  'root ::= [a-\n',
  'root ::= "\\q"\n',
  'root ::= ("a"\n',
  'root ::= root "a" | "b"\n',
  'root ::= x "a"\nx ::= "" root\n',
  'root ::= * "a"\n',
  'root ::= "a"{x}\n',
  'root ::= "a"\n  | "b"\n',  // a top-level rule ends at the newline
];

describe('GBNF against llama.cpp', () => {
  it("llama.cpp's grammars and feature grammars accept and reject the same strings", async () => {
    const cases: (OracleCase & { label: string })[] = [];
    for (const [file, examples] of Object.entries(EXAMPLES)) {
      const text = readGrammar(file);
      const samples = sampleGrammar(parseGbnf(text), 60, file.length, file === 'c.gbnf' ? 6 : 10);
      const alphabet = file === 'c.gbnf' ? 'int(){};=+ a1/*' : file === 'json.gbnf' ? '{}[]",:0123456789.eE-+ \\ntruefalsenul' : '-+*/=() \nab0_';
      cases.push({ label: file, grammar: text, root: 'root', strings: [...examples, ...samples, ...nearMisses([...examples, ...samples], alphabet, 7)] });
    }
    for (const f of FEATURES) {
      const root = f.name === 'other root' ? 'start' : 'root';
      const samples = sampleGrammar(parseGbnf(f.grammar, root), 30, 3);
      cases.push({ label: f.name, grammar: f.grammar, root, strings: [...f.strings, ...samples, ...nearMisses([...f.strings, ...samples], 'abcdexyz-"\\\n()é', 11)] });
    }
    const verdicts = await llamaCppAccepts(cases);
    let accepted = 0;
    let total = 0;
    for (const [i, c] of cases.entries()) {
      expect(verdicts[i]!.parsed, c.label).toBe(true);
      const g = new Grammar(c.grammar, { root: c.root });
      const ours = c.strings.map((s) => g.matches(s));
      const mismatches = c.strings.filter((s, k) => ours[k] !== verdicts[i]!.accepted[k]).map((s, k) => JSON.stringify(s) + (ours[k] ? ' (we accept)' : ''));
      expect(mismatches, `${c.label}: strings judged differently`).toEqual([]);
      accepted += ours.filter(Boolean).length;
      total += ours.length;
    }
    // Both sides of the comparison must be exercised: plenty of accepted and of rejected strings.
    expect(accepted).toBeGreaterThan(total / 4);
    expect(total - accepted).toBeGreaterThan(total / 4);
  });

  it('refuses the grammars llama.cpp refuses, with a MoerunError', async () => {
    const verdicts = await llamaCppAccepts(MALFORMED.map((grammar) => ({ grammar, root: 'root', strings: [] })));
    for (const [i, text] of MALFORMED.entries()) {
      expect(verdicts[i]!.parsed, text).toBe(false);
      expect(() => new Grammar(text), text).toThrow(MoerunError);
    }
    expect(() => new Grammar('root ::= "a"', { root: 'nope' })).toThrow(/no rule named 'nope'/);
    expect(() => new Grammar(42 as unknown as string)).toThrow(/Expected a GBNF string/);
  });
});

/** `text` as tokens, longest piece first (the tokenizer would put SPM's space prefix in front). */
function spell(vocab: ReturnType<typeof vocabIndexOf>, text: string): number[] {
  const bytes = new TextEncoder().encode(text);
  const out: number[] = [];
  for (let i = 0; i < bytes.length; ) {
    let best = -1;
    let bestLen = 0;
    for (let t = 0; t < vocab.nVocab; t++) {
      const b = vocab.tokenBytes(t);
      if (b.length > bestLen && i + b.length <= bytes.length && b.every((x, k) => bytes[i + k] === x)) [best, bestLen] = [t, b.length];
    }
    if (best < 0) throw new Error(`no token spells byte ${i} of ${JSON.stringify(text)}`);
    out.push(best);
    i += bestLen;
  }
  return out;
}

describe('token masks', () => {
  it('equal a token-by-token check at every step of a walk through a JSON grammar', async () => {
    await using model = await loadModel(bundledModel);
    const tok = model.tokenizer;
    const g = new Grammar(readGrammar('json.gbnf'));
    const vocab = vocabIndexOf(tok);
    const m = new TokenMatcher(g.program, vocab);
    // Follow a document token by token (as the tokenizer spells it); at each step the mask must
    // equal allows() of every token, and the document's next token must be in it.
    const doc = '{"name": "Lily", "age": 3, "toys": ["ball", {"x": -1.5e2}], "ok": true}';
    const tokens = spell(vocab, doc);
    let allowedSum = 0;
    for (const t of tokens) {
      const mask = m.mask();
      for (let id = 0; id < tok.vocabSize; id++) {
        const inMask = ((mask[id >>> 5]! >>> (id & 31)) & 1) === 1;
        if (inMask !== m.allows(id)) throw new Error(`token ${id} (${JSON.stringify(tok.tokenText(id))}): mask ${inMask}, allows ${!inMask}`);
        if (inMask) allowedSum++;
      }
      expect(m.allows(t)).toBe(true);
      m.accept(t);
    }
    expect(allowedSum).toBeGreaterThan(tokens.length);  // masks are neither empty nor trivial
    expect(allowedSum).toBeLessThan(tokens.length * tok.vocabSize);
    expect(m.complete).toBe(true);
    expect(m.allows(tok.eos!)).toBe(true);
  });

  // A real 151,936-token byte-level BPE vocabulary (Qwen2's: multi-byte characters split across
  // tokens, special tokens) and a SentencePiece one, when the shared test data is present.
  const realVocabs = ['ggml-vocab-qwen2.gguf', 'ggml-vocab-llama-spm.gguf'].map((f) => shared && join(shared, 'vocab', f)).filter((f): f is string => !!f);
  if (realVocabs.length === 0) console.warn('grammar tests: no shared vocab files; the real-vocabulary mask checks are skipped');
  it.each(realVocabs)('on %s: token bytes are the tokenizer pieces, and masks equal a per-token check', async (file) => {
    const tok = Tokenizer.fromGgufMetadata((await readGgufInfo(file)).metadata);
    const vocab = await vocabIndexOfAsync(tok);
    for (let t = 0; t < tok.vocabSize; t++) {
      const expected = tok.isEog(t) ? new Uint8Array(0) : tok.pieces.bytes(t, false);
      if (Buffer.compare(Buffer.from(vocab.tokenBytes(t)), Buffer.from(expected)) !== 0) throw new Error(`token ${t}: bytes differ`);
    }
    const g = new Grammar(readGrammar('json.gbnf'));
    const m = new TokenMatcher(g.program, vocab);
    // Three states: the start, inside a string (nearly everything allowed), and after a key's colon.
    let checked = 0;
    for (const next of ['{"na', 'me é": ', '']) {
      const mask = m.mask();
      let allowed = 0;
      for (let id = 0; id < tok.vocabSize; id++) {
        const inMask = ((mask[id >>> 5]! >>> (id & 31)) & 1) === 1;
        if (inMask !== m.allows(id)) throw new Error(`token ${id} (${JSON.stringify(tok.tokenText(id))}): mask ${inMask}, allows ${!inMask}`);
        allowed += inMask ? 1 : 0;
      }
      expect(allowed).toBeGreaterThan(0);
      expect(allowed).toBeLessThan(tok.vocabSize);
      checked++;
      for (const t of spell(vocab, next)) m.accept(t);
    }
    expect(checked).toBe(3);
  });

  it('allow end of generation only where the grammar is complete', async () => {
    await using model = await loadModel(bundledModel);
    const tok = model.tokenizer;
    const m = new TokenMatcher(new Grammar('root ::= "ab" "c"?').program, vocabIndexOf(tok));
    expect(m.allows(tok.eos!)).toBe(false);
    for (const t of spell(vocabIndexOf(tok), 'ab')) m.accept(t);
    expect(m.complete).toBe(true);
    expect(m.finished).toBe(false);
    expect(m.allows(tok.eos!)).toBe(true);
    m.accept(spell(vocabIndexOf(tok), 'c')[0]!);
    expect(m.finished).toBe(true);
  });
});

describe('generate() with a grammar', () => {
  it('follows the grammar and stops at its end, greedy and sampled, and refuses bad options', async () => {
    await using model = await loadModel(bundledModel);
    const session = model.createSession();
    const g = new Grammar('root ::= "The " ("cat" | "dog" | "bird") " is " [a-z]{2,12} "."');
    for (const [seed, temperature] of [[1, 0], [2, 1], [3, 1.5]] as const) {
      session.reset();
      const stream = session.generate('Once upon a time', { grammar: g, temperature, seed, maxTokens: 100 });
      const text = await stream.text();
      expect(g.matches(text), text).toBe(true);
      expect(stream.stats!.stopReason).toBe('eog');
      expect(stream.stats!.grammarMs).toBeGreaterThanOrEqual(0);
    }
    // A GBNF string works the same; both options at once, or a wrong type, are errors.
    session.reset();
    expect(await session.generate('Hi', { grammar: 'root ::= "yes" | "no"', temperature: 0 }).text()).toMatch(/^(yes|no)$/);
    expect(() => session.generate('Hi', { grammar: 'root ::= "a"', jsonSchema: {} })).toThrow(/at most one of grammar and jsonSchema/);
    expect(() => session.generate('Hi', { grammar: 5 as unknown as string })).toThrow(/Expected a Grammar or a GBNF string/);
    expect(() => session.generate('Hi', { grammar: 'root ::= (' })).toThrow(MoerunError);
    // A grammar that matches only "" ends generation at once.
    session.reset();
    const empty = session.generate('Hi', { grammar: 'root ::= ' });
    expect(await empty.text()).toBe('');
    expect(empty.stats!.stopReason).toBe('eog');
    // chat() takes the same options.
    session.reset();
    const chat = session.chat([{ role: 'user', content: 'Tell me about the cat.' }], {
      chatTemplate: '{% for m in messages %}{{ m.content }}\n{% endfor %}', grammar: g, temperature: 1, seed: 9, maxTokens: 100,
    });
    const answer = await chat.collect();
    expect(g.matches(answer.text), answer.text).toBe(true);
    expect(chat.stats!.stopReason).toBe('eog');
    // A character the vocabulary has no token for is spelled with byte tokens (UTF-8 split
    // across tokens: the matcher holds the partial character between them).
    session.reset();
    const cjk = session.generate('Hi', { grammar: 'root ::= "\\u4e00" [\\u00e0-\\u00ff]', maxTokens: 8, temperature: 1, seed: 5 });
    expect(await cjk.text()).toMatch(/^一[à-ÿ]$/);
    expect(cjk.stats!.generatedTokens).toBeGreaterThanOrEqual(4);
  });
});
