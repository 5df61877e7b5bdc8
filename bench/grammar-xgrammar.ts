// @mlc-ai/web-xgrammar (xgrammar's WASM build) next to moerun's grammar engine: the same JSON
// schema and documents as bench/grammar.ts part 2, on Qwen2's real 151,936-token vocabulary, a mask
// at every token. The package is not a dependency of moerun; fetch it by hand:
//
//   cd /tmp && npm pack @mlc-ai/web-xgrammar@0.1.27 && tar xzf mlc-ai-web-xgrammar-0.1.27.tgz
//   cp package/lib/index.js package/lib/xgrammar.cjs   # a UMD bundle that package.json calls ESM
//   npx tsx bench/grammar-xgrammar.ts --xgrammar /tmp/package/lib/xgrammar.cjs [--vocab PATH]
//
// xgrammar's JSON grammar allows any whitespace here (anyWhitespace), as moerun's allows a space
// after ':' and ','; the documents use those spaces.
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';

import { TokenMatcher, vocabIndexOf } from '../lib/grammar/token-mask.js';
import { Grammar, readGgufInfo } from '../lib/index.js';
import { Tokenizer } from '../lib/tokenizer/index.js';

const { values: args } = parseArgs({ options: { xgrammar: { type: 'string' }, vocab: { type: 'string', default: '/work/shared/vocab/ggml-vocab-qwen2.gguf' } } });
if (!args.xgrammar) throw new Error('--xgrammar PATH (see the header) is required');

const schema = {
  type: 'object',
  properties: {
    name: { type: 'string', maxLength: 40 },
    age: { type: 'integer', minimum: 0, maximum: 150 },
    role: { enum: ['admin', 'user', 'guest'] },
    email: { type: 'string', format: 'email' },
    tags: { type: 'array', items: { type: 'string', maxLength: 16 }, maxItems: 6 },
    address: { type: 'object', properties: { street: { type: 'string', maxLength: 40 }, city: { type: 'string', maxLength: 24 } }, required: ['city'] },
  },
  required: ['name', 'age', 'role', 'tags', 'address'],
};
const documents = [
  '{"name": "Ada Lovelace", "age": 36, "role": "admin", "email": "ada@example.org", "tags": ["math", "poetry", "engines"], "address": {"street": "12 St James\'s Square", "city": "London"}}',
  '{"name": "Grace Hopper", "age": 85, "role": "user", "tags": ["cobol", "navy"], "address": {"city": "Arlington"}}',
  '{"name": "Łukasz Żółw 王小明", "age": 7, "role": "guest", "tags": [], "address": {"street": "ul. Długa 5", "city": "Gdańsk"}}',
];
const stats = (xs: number[]): string => `mean ${(xs.reduce((a, b) => a + b, 0) / xs.length).toFixed(3)} ms, longest ${Math.max(...xs).toFixed(1)} ms`;

const tok = Tokenizer.fromGgufMetadata((await readGgufInfo(args.vocab)).metadata);
const docTokens = documents.map((d) => Array.from(tok.tokenize(d, { addBos: false })));

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const xg: any = createRequire(import.meta.url)(args.xgrammar);
let t = performance.now();
const info = await xg.TokenizerInfo.createTokenizerInfo(Array.from({ length: tok.vocabSize }, (_, i) => tok.tokenText(i)), 'byte_level', false, tok.vocabSize, [...tok.eogTokens]);
const infoMs = performance.now() - t;
t = performance.now();
const compiler = await xg.GrammarCompiler.createGrammarCompiler(info);
const compiled = await compiler.compileJSONSchema(JSON.stringify(schema), true);
console.log(`xgrammar: tokenizer info ${infoMs.toFixed(0)} ms, schema compiled (token mask cache precomputed) in ${(performance.now() - t).toFixed(0)} ms`);
for (const pass of ['first', 'second']) {
  const times: number[] = [];
  for (const ids of docTokens) {
    const m = await xg.GrammarMatcher.createGrammarMatcher(compiled);
    for (const id of ids) {
      const t0 = performance.now();
      await m.getNextTokenBitmask();
      times.push(performance.now() - t0);
      if (!m.acceptToken(id)) throw new Error(`xgrammar rejected ${JSON.stringify(tok.tokenText(id))}`);
    }
    m.dispose();
  }
  console.log(`xgrammar ${pass} pass: ${times.length} masks, ${stats(times)}`);
}

t = performance.now();
const vocab = vocabIndexOf(tok);
const indexMs = performance.now() - t;
const g = Grammar.fromJsonSchema(schema);
console.log(`moerun: vocabulary index ${indexMs.toFixed(0)} ms (sliced when generating), nothing precomputed per schema`);
for (const pass of ['cold', 'cached']) {
  const times: number[] = [];
  for (const ids of docTokens) {
    const m = new TokenMatcher(g.program, vocab);
    for (const id of ids) {
      const t0 = performance.now();
      m.mask();
      times.push(performance.now() - t0);
      m.accept(id);
    }
  }
  console.log(`moerun ${pass}: ${times.length} masks, ${stats(times)}`);
}
