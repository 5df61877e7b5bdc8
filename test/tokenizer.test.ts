// Tokenizer tests.
//  1. llama.cpp's own conformance suite: ../shared/vocab/ggml-vocab-*.gguf with .inp/.out files,
//     every line must match exactly (tokenized with add_special=false, parse_special=false).
//  2. stories260K (SPM) known tokenizations.
//  3. Random text and random token sequences against llama.cpp itself (node-llama-cpp, vocab only,
//     in a child process): tokenize with and without special parsing, detokenize with and without
//     special rendering.
//  4. StreamingDetokenizer: any chunking of any token sequence concatenates to detokenize().
//  5. Errors and option validation.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { hasData } from './helpers/run.js';
import { writeGguf } from '../lib/gguf/writer.js';
import { readGgufInfo } from '../lib/index.js';
import { StreamingDetokenizer, SUPPORTED_PRE_TOKENIZERS, Tokenizer, TokenizerError } from '../lib/tokenizer/index.js';
import { preTokenizerSpec } from '../lib/tokenizer/pretokenizer.js';
import { sharedDir } from './helpers/shared.js';
import { rng } from './helpers/random.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const vocabDir = path.join(sharedDir() ?? path.resolve(repoRoot, '../shared'), 'vocab');
const storiesPath = path.resolve(repoRoot, 'models/stories260K.gguf');

const vocabFiles = existsSync(vocabDir)
  ? readdirSync(vocabDir).filter((f) => /^ggml-vocab-.*\.gguf$/.test(f) && existsSync(path.join(vocabDir, f + '.inp'))).sort()
  : [];
const haveVocab = hasData(vocabFiles.length > 0, `llama.cpp's vocab files (${vocabDir})`, 'tokenizer.test');
const haveStories = hasData(existsSync(storiesPath), storiesPath, 'tokenizer.test');
if (!existsSync(storiesPath)) console.warn(`tokenizer tests: skipping stories260K cases: ${storiesPath} is missing`);

const tokenizers = new Map<string, Tokenizer>();
async function tokenizerFor(file: string): Promise<Tokenizer> {
  let t = tokenizers.get(file);
  if (!t) {
    const info = await readGgufInfo(file);
    t = Tokenizer.fromGgufMetadata(info.metadata);
    tokenizers.set(file, t);
  }
  return t;
}

/** llama.cpp's test-tokenizer-0 file format: inputs separated by a marker line, one output line each. */
function readConformance(file: string): { input: string; expected: number[] }[] {
  const inp = readFileSync(file + '.inp', 'utf8').split('\n__ggml_vocab_test__\n');
  if (inp[inp.length - 1] === '') inp.pop();
  const out = readFileSync(file + '.out', 'utf8').split('\n');
  return inp.map((input, i) => {
    const line = (out[i] ?? '').trim();
    return { input, expected: line === '' ? [] : line.split(' ').map(Number) };
  });
}

// ----------------------------------------------------------------------------
// Seeded randomness
// ----------------------------------------------------------------------------


const PIECES = [
  'Hello', 'world', ' the', 'The', "'s", "'RE", "n't", "I'll", ' ', '  ', '   ', '\n', '\n\n', '\t', ' \n', '\r\n',
  '3', '42', '12345', '3.14', '...', '!!', '?', ' ?', ' !', ' .', ' ,', " ' ", " 's", " 've", ',', '(', ')', '-->',
  '$', '+', '<|', '|>', '`', '~', '^', '🦙', '😶‍🌫️', '✅', '🚀', 'é', 'é', 'ß', 'Ω', 'ǅ', 'ﬁ', 'нещо', 'Български',
  '我想在', '工作', '天～', 'កាន់តែ', 'العربية', 'हिन्दी', '한국어', 'カタカナ', '\u00a0', '\u3000', '\u2028', '\u0085',
  '\ufeff', '\u200b', '\u0301', 'x\u0308', '𝓗𝓮𝓵𝓵𝓸', '１２３', '½', 'Ⅻ', '<s>', '</s>', '<unk>', '<|endoftext|>',
  '<|im_start|>', '<|im_end|>', '<|begin_of_text|>', '<｜end▁of▁sentence｜>', '▁', '▁▁', '<0x41>', 'Ġ',
];

function randomText(r: () => number, maxPieces = 12): string {
  let s = '';
  const n = 1 + Math.floor(r() * maxPieces);
  for (let i = 0; i < n; i++) {
    if (r() < 0.15) s += String.fromCodePoint(0x20 + Math.floor(r() * 0x2fe0));
    else s += PIECES[Math.floor(r() * PIECES.length)];
  }
  return s;
}

// ----------------------------------------------------------------------------
// The llama.cpp oracle (node-llama-cpp's raw addon, vocab only) in a child process
// ----------------------------------------------------------------------------

type OracleJob = { kind: 'tok'; text: string; special: boolean } | { kind: 'detok'; tokens: number[]; special: boolean };

const ORACLE_SCRIPT = (nlcUrl: string) => `
const { getLlama } = await import(${JSON.stringify(nlcUrl)});
let input = '';
for await (const c of process.stdin) input += c;
const { model: modelPath, jobs } = JSON.parse(input);
const llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error' });
const model = await llama.loadModel({ modelPath, vocabOnly: true });
const raw = model._model;
const out = jobs.map((j) => j.kind === 'tok'
  ? Array.from(raw.tokenize(j.text, j.special))
  : raw.detokenize(Uint32Array.from(j.tokens), j.special));
process.stdout.write(JSON.stringify(out));
await model.dispose();
`;

async function oracle(modelPath: string, jobs: OracleJob[]): Promise<(number[] | string)[]> {
  const nlcUrl = pathToFileURL(createRequire(import.meta.url).resolve('node-llama-cpp')).href;
  const dir = mkdtempSync(path.join(tmpdir(), 'moerun-tok-oracle-'));
  const script = path.join(dir, 'oracle.mjs');
  writeFileSync(script, ORACLE_SCRIPT(nlcUrl));
  return await new Promise<(number[] | string)[]>((resolve, reject) => {
    const child = spawn(process.execPath, [script], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code !== 0) reject(new Error(`oracle exited with ${code ?? signal}: ${stderr.slice(-2000)}`));
      else resolve(JSON.parse(stdout) as (number[] | string)[]);
    });
    child.stdin.end(JSON.stringify({ model: modelPath, jobs }));
  }).finally(() => rmSync(dir, { recursive: true, force: true }));
}

let oracleAvailable = true;
try {
  await import('node-llama-cpp');
} catch (e) {
  oracleAvailable = hasData(false, `node-llama-cpp (does not load: ${String(e)})`, 'tokenizer.test');
}

// ----------------------------------------------------------------------------
// 1. Conformance suite
// ----------------------------------------------------------------------------

describe.skipIf(!haveVocab)('llama.cpp tokenizer conformance suite', () => {
  for (const name of vocabFiles) {
    it(`${name}: every line matches`, async () => {
      const file = path.join(vocabDir, name);
      const tok = await tokenizerFor(file);
      const cases = readConformance(file);
      expect(cases.length).toBeGreaterThan(10);
      const failures: string[] = [];
      for (const { input, expected } of cases) {
        const got = Array.from(tok.tokenize(input, { addBos: false, special: false }));
        if (got.join(' ') !== expected.join(' ')) {
          failures.push(`${JSON.stringify(input)}\n  expected ${expected.join(' ')}\n  got      ${got.join(' ')}`);
        }
      }
      console.log(`${name}: ${cases.length - failures.length}/${cases.length} lines match`);
      expect(failures).toEqual([]);
    });
  }
});

// ----------------------------------------------------------------------------
// 2. stories260K
// ----------------------------------------------------------------------------

describe.skipIf(!haveStories)('stories260K (SPM)', () => {
  let tok: Tokenizer;
  beforeAll(async () => {
    tok = await tokenizerFor(storiesPath);
  });

  it('tokenizes like llama.cpp', () => {
    expect(tok.type).toBe('spm');
    expect(tok.vocabSize).toBe(512);
    expect(Array.from(tok.tokenize('Once upon a time', { addBos: false }))).toEqual([403, 407, 261, 378]);
    expect(Array.from(tok.tokenize('Once upon a time'))).toEqual([1, 403, 407, 261, 378]);
    expect(Array.from(tok.tokenize('', { addBos: false }))).toEqual([]);
    expect(Array.from(tok.tokenize(''))).toEqual([1]);
  });

  it('exposes special ids', () => {
    expect(tok.bos).toBe(1);
    expect(tok.eos).toBe(2);
    expect(tok.unk).toBe(0);
    expect(tok.sep).toBeUndefined(); // 0xFFFFFFFF in the file: out of range, ignored
    expect(tok.isEog(2)).toBe(true);
    expect(tok.isEog(1)).toBe(false);
    expect(tok.addBosDefault).toBe(true);
  });

  it('detokenizes, dropping the leading space and control tokens', () => {
    const ids = tok.tokenize('Once upon a time, there was a little girl named Lily.');
    // llama.cpp strips the space prefix only from the very first token, here the (invisible) BOS.
    expect(tok.detokenize(ids)).toBe(' Once upon a time, there was a little girl named Lily.');
    expect(tok.detokenize(ids.subarray(1))).toBe('Once upon a time, there was a little girl named Lily.');
    expect(tok.detokenize([1, 403, 2], { special: true })).toBe('<s> Once</s>');
    expect(tok.tokenToPiece(403)).toBe(' Once');
    expect(tok.tokenToPiece(1)).toBe('');
    expect(tok.tokenToPiece(1, { special: true })).toBe('<s>');
  });

  it('falls back to byte tokens for characters outside the vocabulary', () => {
    const ids = Array.from(tok.tokenize('🦙', { addBos: false }));
    // ▁ then the four UTF-8 bytes of 🦙
    expect(ids.slice(-4).map((t) => tok.tokenText(t))).toEqual(['<0xF0>', '<0x9F>', '<0xA6>', '<0x99>']);
    expect(tok.detokenize(ids)).toBe('🦙');
  });

  it('parses control tokens only with special: true', () => {
    expect(Array.from(tok.tokenize('</s>', { addBos: false, special: true }))).toEqual([2]);
    expect(Array.from(tok.tokenize('</s>', { addBos: false, special: false }))).not.toContain(2);
  });
});

// ----------------------------------------------------------------------------
// 3. Random inputs against llama.cpp
// ----------------------------------------------------------------------------

const oracleFiles = [...vocabFiles.map((f) => path.join(vocabDir, f)), ...(existsSync(storiesPath) ? [storiesPath] : [])];

describe.skipIf(!oracleAvailable || !haveVocab)('random inputs against llama.cpp (node-llama-cpp)', () => {
  for (const file of oracleFiles) {
    const name = path.basename(file);
    it(`${name}: tokenize and detokenize agree`, async () => {
      const tok = await tokenizerFor(file);
      const r = rng(0x5eed ^ name.length);
      const texts: string[] = [];
      for (let i = 0; i < 150; i++) texts.push(randomText(r));
      // Long texts: SPM merges over a whole fragment, which we split into independent chunks.
      for (let i = 0; i < 5; i++) texts.push(randomText(r, 600));
      // Conformance inputs too, with special parsing on.
      if (file.startsWith(vocabDir)) for (const c of readConformance(file)) texts.push(c.input);
      const tokenLists: number[][] = [];
      for (let i = 0; i < 100; i++) {
        const n = 1 + Math.floor(r() * 12);
        tokenLists.push(Array.from({ length: n }, () => Math.floor(r() * tok.vocabSize)));
      }
      // Token sequences of real text (exercises clean-up of " ?", " 's" etc.).
      for (let i = 0; i < 50; i++) tokenLists.push(Array.from(tok.tokenize(randomText(r), { addBos: false })));

      const jobs: OracleJob[] = [
        ...texts.flatMap((text) => [
          { kind: 'tok' as const, text, special: false },
          { kind: 'tok' as const, text, special: true },
        ]),
        ...tokenLists.flatMap((tokens) => [
          { kind: 'detok' as const, tokens, special: false },
          { kind: 'detok' as const, tokens, special: true },
        ]),
      ];
      const expected = await oracle(file, jobs);
      const failures: string[] = [];
      jobs.forEach((job, i) => {
        if (job.kind === 'tok') {
          const got = Array.from(tok.tokenize(job.text, { addBos: false, special: job.special }));
          const exp = expected[i] as number[];
          if (got.join(' ') !== exp.join(' ')) {
            failures.push(`tokenize(${JSON.stringify(job.text)}, special=${job.special})\n  expected ${exp.join(' ')}\n  got      ${got.join(' ')}`);
          }
        } else {
          const got = tok.detokenize(job.tokens, { special: job.special });
          if (got !== expected[i]) {
            failures.push(`detokenize([${job.tokens.join(' ')}], special=${job.special})\n  expected ${JSON.stringify(expected[i])}\n  got      ${JSON.stringify(got)}`);
          }
        }
      });
      console.log(`${name}: ${jobs.length - failures.length}/${jobs.length} random cases agree with llama.cpp`);
      expect(failures.slice(0, 10)).toEqual([]);
    });
  }
});

// The pre-tokenizers: the gpt-2 vocabulary re-labelled with a `tokenizer.ggml.pre` value, written to
// a temp GGUF, tokenized by both sides. One name per distinct behaviour (regexes + flags), plus the
// names our target models carry; each costs a llama.cpp process start.
const gpt2Vocab = path.join(vocabDir, 'ggml-vocab-gpt-2.gguf');
const preNames = (() => {
  const required = ['default', 'llama3', 'llama-bpe', 'qwen2', 'qwen35', 'deepseek-llm', 'deepseek-v3', 'deepseek-coder',
    'gpt-2', 'falcon', 'starcoder', 'refact', 'command-r', 'mpt', 'bailingmoe', 'bailingmoe2'];
  const seen = new Set<string>();
  const names = new Set(required);
  for (const pre of SUPPORTED_PRE_TOKENIZERS) {
    const key = JSON.stringify(preTokenizerSpec(pre));
    if (!seen.has(key)) names.add(pre);
    seen.add(key);
  }
  return [...names];
})();
const haveGpt2 = hasData(existsSync(gpt2Vocab), gpt2Vocab, 'tokenizer.test');
describe.skipIf(!oracleAvailable || !haveGpt2)('pre-tokenizers against llama.cpp', () => {
  for (const pre of preNames) {
    it(`pre-tokenizer "${pre}"`, async () => {
      const meta = { ...(await readGgufInfo(gpt2Vocab)).metadata, 'tokenizer.ggml.pre': pre };
      const dir = mkdtempSync(path.join(tmpdir(), 'moerun-tok-pre-'));
      try {
        const file = path.join(dir, `${pre}.gguf`);
        await writeGguf(file, { metadata: meta as never });
        const tok = Tokenizer.fromGgufMetadata(meta);
        const r = rng(777 + pre.length);
        const texts: string[] = [];
        for (let i = 0; i < 120; i++) texts.push(randomText(r));
        for (const c of readConformance(gpt2Vocab)) texts.push(c.input);
        const jobs = texts.map((text) => ({ kind: 'tok' as const, text, special: false }));
        let expected: (number[] | string)[];
        try {
          expected = await oracle(file, jobs);
        } catch (e) {
          if (/unknown pre-tokenizer/.test(String(e))) {
            console.log(`pre-tokenizer "${pre}": this node-llama-cpp build does not know it; not compared`);
            return;
          }
          throw e;
        }
        const failures: string[] = [];
        jobs.forEach((job, i) => {
          const got = Array.from(tok.tokenize(job.text, { addBos: false }));
          const exp = expected[i] as number[];
          if (got.join(' ') !== exp.join(' ')) {
            failures.push(`${JSON.stringify(job.text)}\n  expected ${exp.join(' ')}\n  got      ${got.join(' ')}`);
          }
        });
        console.log(`pre-tokenizer "${pre}": ${jobs.length - failures.length}/${jobs.length} agree with llama.cpp`);
        expect(failures.slice(0, 5)).toEqual([]);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});

// ----------------------------------------------------------------------------
// 4. Streaming detokenizer
// ----------------------------------------------------------------------------

describe.skipIf(!haveVocab)('StreamingDetokenizer', () => {
  for (const file of oracleFiles) {
    const name = path.basename(file);
    it(`${name}: any chunking concatenates to detokenize()`, async () => {
      const tok = await tokenizerFor(file);
      const r = rng(1234 + name.length);
      // Tokens that carry partial UTF-8: SPM byte tokens, and BPE tokens of lone bytes.
      const partial: number[] = [];
      for (let t = 0; t < tok.vocabSize; t++) {
        const b = tok.tokenToBytes(t, { special: true });
        if (b.length > 0 && b.length <= 2 && b.some((x) => x >= 0x80)) partial.push(t);
      }
      expect(partial.length).toBeGreaterThan(0);
      const apostrophes = [" '", "'s", ' ?', ' ', "'re", ' .'].flatMap((s) => Array.from(tok.tokenize(s, { addBos: false })));

      for (let iter = 0; iter < 300; iter++) {
        const n = Math.floor(r() * 24);
        const seq: number[] = [];
        for (let i = 0; i < n; i++) {
          const p = r();
          if (p < 0.4) seq.push(partial[Math.floor(r() * partial.length)]);
          else if (p < 0.6) seq.push(apostrophes[Math.floor(r() * apostrophes.length)]);
          else seq.push(Math.floor(r() * tok.vocabSize));
        }
        if (iter % 3 === 0) seq.unshift(...tok.tokenize(randomText(r, 4)));
        for (const special of [false, true]) {
          const full = tok.detokenize(seq, { special });
          const sd = new StreamingDetokenizer(tok, { special });
          let text = '';
          for (let i = 0; i < seq.length; ) {
            const k = 1 + Math.floor(r() * 3);
            text += k === 1 && r() < 0.5 ? sd.push(seq[i]) : sd.push(seq.slice(i, i + k));
            i += k;
          }
          text += sd.flush();
          expect(text, `tokens [${seq.join(' ')}] special=${special}`).toBe(full);
        }
      }
    });
  }

  it('holds back incomplete UTF-8 and emits it once complete', async () => {
    const file = vocabFiles.includes('ggml-vocab-llama-spm.gguf') ? path.join(vocabDir, 'ggml-vocab-llama-spm.gguf') : storiesPath;
    const tok = await tokenizerFor(file);
    const byte = (b: number) => tok.textToToken(`<0x${b.toString(16).toUpperCase()}>`)!;
    const sd = new StreamingDetokenizer(tok);
    // 🦙 = F0 9F A6 99
    expect(sd.push(byte(0xf0))).toBe('');
    expect(sd.push(byte(0x9f))).toBe('');
    expect(sd.push(byte(0xa6))).toBe('');
    expect(sd.push(byte(0x99))).toBe('🦙');
    expect(sd.push(byte(0xe2))).toBe('');
    expect(sd.flush()).toBe('\ufffd');
  });
});

// ----------------------------------------------------------------------------
// 5. Errors and validation
// ----------------------------------------------------------------------------

describe('errors', () => {
  const bpeMeta = (pre: string) => ({
    'tokenizer.ggml.model': 'gpt2',
    'tokenizer.ggml.pre': pre,
    'tokenizer.ggml.tokens': ['a', 'b', 'ab', 'Ġ'],
    'tokenizer.ggml.token_type': Int32Array.of(1, 1, 1, 1),
    'tokenizer.ggml.merges': ['a b'],
  });

  it('builds a tiny BPE vocabulary from plain metadata', () => {
    const tok = Tokenizer.fromGgufMetadata(bpeMeta('qwen2'));
    expect(Array.from(tok.tokenize('ab a'))).toEqual([2, 3, 0]);
    expect(tok.detokenize([2, 3, 0])).toBe('ab a');
    expect(tok.bos).toBe(undefined);
  });

  it('rejects an unknown pre-tokenizer with a clear message', () => {
    let err: unknown;
    try {
      Tokenizer.fromGgufMetadata(bpeMeta('no-such-pre'));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TokenizerError);
    expect((err as TokenizerError).code).toBe('unknown-pre-tokenizer');
    expect((err as Error).message).toMatch(/^tokenizer: unknown pre-tokenizer "no-such-pre" \(tokenizer\.ggml\.pre\); supported: .*qwen2/);
  });

  it('rejects unknown models and missing keys', () => {
    expect(() => Tokenizer.fromGgufMetadata({ 'tokenizer.ggml.model': 't5' })).toThrow(/unsupported tokenizer.ggml.model "t5"/);
    expect(() => Tokenizer.fromGgufMetadata({})).toThrow(/no tokenizer.ggml.model/);
    expect(() => Tokenizer.fromGgufMetadata({ 'tokenizer.ggml.model': 'llama' })).toThrow(/no tokenizer.ggml.tokens/);
    expect(() => Tokenizer.fromGgufMetadata({ 'tokenizer.ggml.model': 'gpt2', 'tokenizer.ggml.pre': 'qwen2', 'tokenizer.ggml.tokens': ['a'] })).toThrow(
      /no tokenizer.ggml.merges/,
    );
    expect(() => Tokenizer.fromGgufMetadata({ 'tokenizer.ggml.model': 3 })).toThrow(
      'tokenizer: expected a string for tokenizer.ggml.model but received number',
    );
  });

  it('validates options and token ids', () => {
    const tok = Tokenizer.fromGgufMetadata(bpeMeta('gpt-2'));
    expect(() => tok.tokenize('a', { addbos: true } as never)).toThrow('Unknown tokenize option "addbos"; expected one of: addBos, addEos, special');
    expect(() => tok.tokenize('a', { special: 1 } as never)).toThrow('Expected a boolean for special but received 1 (number)');
    expect(() => tok.tokenize(5 as never)).toThrow('Expected a string for text but received number');
    expect(() => tok.detokenize([0, 9])).toThrow('Expected a token id in [0, 4) but received 9 (number) at index 1');
    expect(() => tok.tokenize('a', { addBos: true })).toThrow(/no BOS token/);
  });
});
