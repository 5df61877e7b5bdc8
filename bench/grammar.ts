// Constrained decoding: what a JSON schema grammar costs per generated token.
//
//   npx tsx bench/grammar.ts [--threads 2] [--tokens 48] [--rounds 3] [--layers 4] [--no-llama-cpp]
//
// 1. Decode on the synthetic Qwen3-30B-A3B shape (scripts/make-bench-model.ts: 151,936-token
//    vocabulary, random Q4_K_M weights, the first --layers layers): tokens/s without a grammar and
//    under a JSON schema, interleaved round by round, and the grammar's JS-thread share of decode
//    time (stats.grammarMs / decode time), and the process CPU time per generated token (all
//    threads: robust to a loaded machine, where wall-clock tok/s swings; the plain run generates
//    as many tokens as the schema run did). Random weights are the worst case for moerun's policy
//    (the sampler's free pick is checked first and the mask is computed only when the grammar
//    rejects it): a random model's pick is rejected at nearly every structural position.
// 2. Mask cost on a real vocabulary: Qwen2's 151,936 tokens (the shared test data's
//    ggml-vocab-qwen2.gguf; Qwen3 uses the same tokenizer), replaying JSON documents of the schema
//    as that tokenizer spells them and computing the mask at every token (no check-first): the
//    cold cost (states never seen) and the cached one, next to the decode time per token of (1).
// 3. llama.cpp's grammar sampler (node-llama-cpp) on the same file, same threads: tokens/s with and
//    without the same schema (node-llama-cpp compiles it to GBNF itself).
//
// The synthetic vocabulary is lowercase letters and byte tokens, so part 1 walks a smaller trie
// than a real one; part 2 is the real-vocabulary number. Decode speed depends on the machine's
// load: this machine is shared, so compare within one run.
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { getLlama, LlamaCompletion, LlamaLogLevel } from 'node-llama-cpp';

import { gitCommit } from '../lib/bench/conditions.js';
import { TokenMatcher, vocabIndexOfAsync } from '../lib/grammar/token-mask.js';
import { cpuInfo, Grammar, loadModel, readGgufInfo, type JsonSchema } from '../lib/index.js';
import { Tokenizer } from '../lib/tokenizer/index.js';
import { benchModelPath, makeBenchModel } from '../scripts/make-bench-model.js';

const { values: args } = parseArgs({
  options: {
    threads: { type: 'string', default: '2' },
    tokens: { type: 'string', default: '48' },
    rounds: { type: 'string', default: '3' },
    layers: { type: 'string', default: '4' },
    'no-llama-cpp': { type: 'boolean', default: false },
  },
});
const threads = Number(args.threads);
const nTokens = Number(args.tokens);  // plain runs in part 3; the schema runs may take up to 4x
const rounds = Number(args.rounds);
const layers = Number(args.layers);

/** A schema with free strings, bounded numbers, enums, an array and a nested object. */
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
} as const satisfies JsonSchema;

/** Documents of the schema, for the real-vocabulary replay. */
const documents = [
  '{"name": "Ada Lovelace", "age": 36, "role": "admin", "email": "ada@example.org", "tags": ["math", "poetry", "engines"], "address": {"street": "12 St James\'s Square", "city": "London"}}',
  '{"name":"Grace Hopper","age":85,"role":"user","tags":["cobol","navy"],"address":{"city":"Arlington"}}',
  '{"name": "Łukasz Żółw 王小明", "age": 7, "role": "guest", "tags": [], "address": {"street": "ul. Długa 5", "city": "Gdańsk"}}',
];

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (x: number, d = 2): string => x.toFixed(d);

async function main(): Promise<void> {
  const cpu = cpuInfo();
  const file = benchModelPath({ shape: 'qwen3-30b-a3b', quant: 'Q4_K_M', layers });
  if (!existsSync(file)) await makeBenchModel({ shape: 'qwen3-30b-a3b', quant: 'Q4_K_M', layers });
  const info = await readGgufInfo(file);
  console.log(`# grammar bench  commit ${gitCommit()}  ISA ${cpu.activePath}  threads ${threads}  cores ${os.cpus().length}`);
  console.log(`model ${path.basename(file)} (Qwen3-30B-A3B shape, ${layers} layers, Q4_K_M, random weights, vocab ${info.metadata['qwen3moe.vocab_size'] ?? '151936'})`);

  // ---- 1. moerun decode with and without the schema ----
  const model = await loadModel(file, { threads });
  const session = model.createSession({ contextSize: 1024 });
  const grammar = Grammar.fromJsonSchema(schema);
  const prompt = 'Write the record as JSON: ';
  const sample = { temperature: 0.8, topK: 40, topP: 0.95, minP: 0.05 };
  const t0 = performance.now();
  await vocabIndexOfAsync(model.tokenizer);
  const indexMs = performance.now() - t0;
  const plain: number[] = [];
  const constrained: number[] = [];
  const plainCpu: number[] = [];
  const constrainedCpu: number[] = [];
  const cpuMs = (): number => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  };
  const shares: number[] = [];
  const perToken: number[] = [];
  let example = '';
  for (let r = 0; r <= rounds; r++) {
    // The schema run first; the plain run then generates as many tokens, so CPU per token compares.
    session.reset();
    let c0 = cpuMs();
    const b = session.generate(prompt, { ...sample, seed: r, maxTokens: 4 * nTokens, jsonSchema: schema });
    example = await b.text();
    const cb = cpuMs() - c0;
    session.reset();
    c0 = cpuMs();
    const a = session.generate(prompt, { ...sample, seed: r, maxTokens: b.stats!.generatedTokens });
    await a.text();
    const ca = cpuMs() - c0;
    if (r === 0) continue;  // warm-up round (first masks, page cache)
    const sa = a.stats!, sb = b.stats!;
    plainCpu.push(ca / sa.generatedTokens);
    constrainedCpu.push(cb / sb.generatedTokens);
    plain.push((sa.generatedTokens - 1) / (sa.decodeMs / 1000));
    constrained.push((sb.generatedTokens - 1) / (sb.decodeMs / 1000));
    shares.push(sb.grammarMs! / (sb.promptMs + sb.decodeMs));
    perToken.push(sb.grammarMs! / sb.generatedTokens);
  }
  console.log(`\n## 1. moerun decode (median of ${rounds} rounds after a warm-up; vocabulary index built once in ${fmt(indexMs, 0)} ms, in slices)`);
  console.log(`no grammar:   ${fmt(median(plain))} tok/s`);
  console.log(`JSON schema:  ${fmt(median(constrained))} tok/s   grammar JS time ${fmt(median(perToken), 3)} ms/token = ${fmt(100 * median(shares), 2)}% of generation time`);
  console.log(`ratio ${fmt(median(constrained) / median(plain), 3)}; output e.g. ${JSON.stringify(example.slice(0, 160))}`);
  console.log(`process CPU per generated token (prompt included): ${fmt(median(plainCpu), 1)} ms without, ${fmt(median(constrainedCpu), 1)} ms with the schema`);
  const decodeMsPerToken = 1000 / median(plain);
  await model.dispose();

  // ---- 2. mask cost on the real Qwen2 vocabulary ----
  const vocabFile = ['/work/shared/vocab/ggml-vocab-qwen2.gguf', path.resolve('../shared/vocab/ggml-vocab-qwen2.gguf'), process.env.MOERUN_SHARED_DIR && path.join(process.env.MOERUN_SHARED_DIR, 'vocab/ggml-vocab-qwen2.gguf')]
    .find((f): f is string => !!f && existsSync(f));
  if (vocabFile) {
    const tok = Tokenizer.fromGgufMetadata((await readGgufInfo(vocabFile)).metadata);
    const t1 = performance.now();
    const vocab = await vocabIndexOfAsync(tok);
    const buildMs = performance.now() - t1;
    const g = Grammar.fromJsonSchema(schema);  // a fresh grammar: no cached masks
    const cold: number[] = [];
    const warm: number[] = [];
    let longest = 0;
    for (const pass of [cold, warm]) {
      for (const doc of documents) {
        const m = new TokenMatcher(g.program, vocab);
        for (const t of tok.tokenize(doc, { addBos: false })) {
          const ts = performance.now();
          m.mask();
          const dt = performance.now() - ts;
          pass.push(dt);
          if (pass === cold) longest = Math.max(longest, dt);
          m.accept(t);
        }
      }
    }
    const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
    console.log(`\n## 2. masks on Qwen2's real vocabulary (${tok.vocabSize} tokens, trie of ${vocab.trieNodes} nodes; index built in ${fmt(buildMs, 0)} ms of 1 ms slices)`);
    console.log(`${cold.length} tokens of ${documents.length} documents, a mask at every token:`);
    console.log(`cold (state never seen): mean ${fmt(mean(cold))} ms/token, longest ${fmt(longest, 1)} ms (computed in ~1 ms slices when generating)`);
    console.log(`cached (state seen):     mean ${fmt(mean(warm), 4)} ms/token`);
    console.log(`against ${fmt(decodeMsPerToken, 1)} ms/token of decode in (1): cold ${fmt((100 * mean(cold)) / decodeMsPerToken, 1)}%, cached ${fmt((100 * mean(warm)) / decodeMsPerToken, 3)}%`);
  } else {
    console.log('\n## 2. skipped: ggml-vocab-qwen2.gguf not found (shared test data)');
  }

  // ---- 3. llama.cpp's grammar sampler on the same file ----
  if (!args['no-llama-cpp']) {
    const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
    const lm = await llama.loadModel({ modelPath: file, gpuLayers: 0 });
    const ctx = await lm.createContext({ contextSize: 1024, threads, flashAttention: false });
    const seq = ctx.getSequence();
    const completion = new LlamaCompletion({ contextSequence: seq });
    const lgrammar = await llama.createGrammarForJsonSchema(schema as never);
    const cpu: Record<'plain' | 'grammar', number[]> = { plain: [], grammar: [] };
    const run = async (withGrammar: boolean, seed: number): Promise<number> => {
      await seq.clearHistory();
      let n = 0;
      let tFirst = 0;
      const c0 = cpuMs();
      await completion.generateCompletion(prompt, {
        ...sample, seed, maxTokens: withGrammar ? 4 * nTokens : nTokens, grammar: withGrammar ? lgrammar : undefined,
        onToken: (ts) => {
          if (n === 0) tFirst = performance.now();
          n += ts.length;
        },
      });
      const end = performance.now();
      cpu[withGrammar ? 'grammar' : 'plain'].push((cpuMs() - c0) / n);
      return (n - 1) / ((end - tFirst) / 1000);
    };
    const lp: number[] = [];
    const lg: number[] = [];
    for (let r = 0; r <= rounds; r++) {
      const a = await run(false, r);
      const b = await run(true, r);
      if (r > 0) {
        lp.push(a);
        lg.push(b);
      }
    }
    console.log(`\n## 3. llama.cpp (node-llama-cpp ${llama.buildType}), same file and threads`);
    console.log(`no grammar:   ${fmt(median(lp))} tok/s`);
    console.log(`JSON schema:  ${fmt(median(lg))} tok/s   ratio ${fmt(median(lg) / median(lp), 3)}`);
    console.log(`process CPU per generated token: ${fmt(median(cpu.plain), 1)} ms without, ${fmt(median(cpu.grammar), 1)} ms with the schema`);
    await lm.dispose();
    await llama.dispose();
  }
}

await main();
