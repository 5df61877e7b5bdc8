// Decode speed on a 1B-shaped dense llama: moerun against node-llama-cpp (llama.cpp) on the same
// file, same threads, in the same run, interleaved round by round (warm-up rounds excluded), with
// the ratio and the GB/s of weights each engine streams per second next to a memory bandwidth
// probe measured on this machine at the same thread count.
//
//   npx tsx bench/decode-dense.ts [--types Q4_K,Q8_0,F16] [--threads 2] [--tokens 32] [--rounds 3]
//
// Model: 16 layers, d 2048, ffn 5632, 32 q / 4 kv heads of 64, vocab 32000 (TinyLlama-1.1B's
// shapes with 16 layers, ~0.84B parameters). Decode speed does not depend on weight values, so
// the quantized blocks are written directly as random bytes with fixed, modest scales (no
// quantization pass), and cached under os.tmpdir()/moerun-bench. Every matrix, token_embd and
// output included, has the named type; norms are F32.
//
// On a shared, oversubscribed machine llama.cpp's multi-threaded decode collapses (its threads
// spin at a barrier after every op, so one descheduled thread stalls all: stories260K measured
// 2-25 tok/s at 2 threads vs ~2000-3000 at 1 thread, under load average 4-8 on 2 cores). Quote
// 2-thread ratios only from a quiet machine; `--threads 1` is robust to that noise.
import { execSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { getLlama, LlamaLogLevel, type Token } from 'node-llama-cpp';

import { cpuInfo, loadModel, readGgufInfo } from '../lib/index.js';
import { measureBandwidth } from '../lib/bench/bandwidth.js';
import { encodeF32, float32ToFloat16Bits, ggmlTensorByteSize, writeGguf, type GgufValue } from '../lib/gguf/writer.js';
import { makeModelParts, type MakeModelOptions } from '../scripts/make-model.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const types = (arg('types') ?? 'Q4_K,Q8_0').split(',') as BlockType[];
const threads = Number(arg('threads') ?? 2);
const nTokens = Number(arg('tokens') ?? 32);
const rounds = Number(arg('rounds') ?? 3); // measured rounds, after one warm-up round per engine
const only = arg('only'); // 'moerun' or 'llama.cpp': run one engine (to see the other's effect)

const SHAPE: Omit<MakeModelOptions, 'out'> = {
  arch: 'llama', nEmbd: 2048, nLayer: 16, nHead: 32, nHeadKv: 4, nFf: 5632, nVocab: 32000, contextLength: 2048, seed: 1,
};

// ============================================================================================
// The model file: random valid blocks
// ============================================================================================

type BlockType = 'Q4_K' | 'Q8_0' | 'F16';
/** Per type: block bytes and where its f16 scales sit (offset, value). */
const BLOCKS: Record<BlockType, { bytes: number; scales: [number, number][]; fileType: number }> = {
  Q8_0: { bytes: 34, scales: [[0, 3e-4]], fileType: 7 }, // d; int8 ~ U(-128, 127) → weights σ ≈ 0.02
  Q4_K: { bytes: 144, scales: [[0, 2e-4], [2, 1e-4]], fileType: 14 }, // d, dmin
  F16: { bytes: 2, scales: [], fileType: 1 }, // random halves, |w| in [2^-9, 2^-5) (below)
};

/** Random blocks for `bytes` bytes of `type`, scales fixed so every value is finite and modest. */
function randomBlocks(type: BlockType, bytes: number): Uint8Array {
  const b = BLOCKS[type];
  const out = randomFillSync(new Uint8Array(bytes));
  if (type === 'F16') {
    // Keep the sign and mantissa bits, set the exponent field to 6..9: |w| in [2^-9, 2^-5).
    const h = new Uint16Array(out.buffer, out.byteOffset, bytes / 2);
    for (let i = 0; i < h.length; i++) h[i] = (h[i]! & 0x83ff) | ((6 + ((h[i]! >> 10) & 3)) << 10);
    return out;
  }
  const view = new DataView(out.buffer);
  const halves = b.scales.map(([at, v]) => [at, float32ToFloat16Bits(v)] as const);
  for (let at = 0; at < bytes; at += b.bytes) for (const [off, h] of halves) view.setUint16(at + off, h, true);
  return out;
}

async function modelFile(type: BlockType): Promise<string> {
  const dir = path.join(os.tmpdir(), 'moerun-bench');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `dense-1b-l16-d2048-${type.toLowerCase()}-v1.gguf`);
  if (existsSync(file)) return file;
  const t0 = performance.now();
  // make-model's synthetic SPM vocab cannot grow past ~8.7k pieces (its generator loops forever
  // at 32000), so build the model at vocab 512 and widen the vocab-sized parts here.
  const nVocab = SHAPE.nVocab!;
  const { metadata, weights } = makeModelParts({ ...SHAPE, nVocab: 512, out: file });
  const vocab = benchVocab(nVocab);
  const replace: Record<string, GgufValue> = {
    'general.file_type': { type: 'u32', value: BLOCKS[type].fileType },
    'llama.vocab_size': { type: 'u32', value: nVocab },
    'tokenizer.ggml.tokens': vocab.tokens,
    'tokenizer.ggml.scores': vocab.scores,
    'tokenizer.ggml.token_type': vocab.types,
  };
  const md: [string, GgufValue][] = metadata.map(([k, v]) => [k, replace[k] ?? v]);
  const shapeOf = (w: { name: string; shape: readonly number[] }): readonly number[] =>
    w.name === 'token_embd.weight' || w.name === 'output.weight' ? [SHAPE.nEmbd!, nVocab] : w.shape;
  md.push(['general.quantization_version', { type: 'u32', value: 2 }]);
  await writeGguf(file, {
    metadata: md,
    tensors: weights.map((w) => {
      if (w.shape.length < 2) return { name: w.name, type: 'F32' as const, shape: w.shape, data: () => encodeF32(w.values()) };
      const shape = shapeOf(w);
      const rowBytes = ggmlTensorByteSize(type, [shape[0]!]);
      const rows = shape.slice(1).reduce((a, b) => a * b, 1);
      return {
        name: w.name,
        type,
        shape,
        data: function* () {
          for (let r = 0; r < rows; r += 1024) yield randomBlocks(type, Math.min(1024, rows - r) * rowBytes);
        },
      };
    }),
  });
  console.log(`wrote ${file} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return file;
}

/** An SPM vocab of n tokens: <unk>, <s>, </s>, the 256 byte tokens, then distinct word pieces. */
function benchVocab(n: number): { tokens: string[]; scores: Float32Array; types: Int32Array } {
  const tokens = ['<unk>', '<s>', '</s>'];
  const types = [2, 3, 3]; // UNKNOWN, CONTROL, CONTROL
  for (let i = 0; i < 256; i++) {
    tokens.push(`<0x${i.toString(16).toUpperCase().padStart(2, '0')}>`);
    types.push(6); // BYTE
  }
  while (tokens.length < n) {
    tokens.push(`\u2581w${tokens.length.toString(36)}`);
    types.push(1); // NORMAL
  }
  const scores = Float32Array.from(tokens, (_, i) => -i);
  return { tokens, scores, types: Int32Array.from(types) };
}

/** Bytes of weights one decode step reads: every tensor, but only one row of token_embd. */
async function bytesPerToken(file: string): Promise<number> {
  const info = await readGgufInfo(file);
  let n = 0;
  for (const t of info.tensors) n += t.name === 'token_embd.weight' ? t.byteSize / t.shape[1]! : t.byteSize;
  return n;
}

// ============================================================================================
// Decoding: greedy, one token per step, after a 4-token prompt
// ============================================================================================

const PROMPT = [1, 450, 4996, 17354];

function argmax(x: Float32Array): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i]! > x[best]!) best = i;
  return best;
}

interface Engine {
  name: string;
  /** Seconds for `n` decode steps (the prompt is evaluated first, untimed). */
  decode(n: number): Promise<number>;
  dispose(): Promise<void>;
}

async function moerunEngine(file: string): Promise<Engine> {
  const model = await loadModel(file, { threads });
  const session = model.createSession({ contextSize: 256 });
  return {
    name: `moerun (${model.info.cpuPath})`,
    async decode(n) {
      session.reset();
      let token = argmax(await session.evaluate(PROMPT, { logits: 'last' }));
      const t0 = performance.now();
      for (let i = 0; i < n; i++) token = argmax(await session.evaluate([token], { logits: 'last' }));
      return (performance.now() - t0) / 1000;
    },
    async dispose() {
      await session.dispose();
      await model.dispose();
    },
  };
}

async function llamaCppEngine(file: string): Promise<Engine> {
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
  const model = await llama.loadModel({ modelPath: file, gpuLayers: 0 });
  const context = await model.createContext({ contextSize: 256, batchSize: 256, threads, flashAttention: false });
  const sequence = context.getSequence();
  return {
    name: 'llama.cpp',
    async decode(n) {
      await sequence.clearHistory();
      // The first token comes from the prompt; each later one is one decode step (with logits).
      let t0 = 0;
      let steps = -1;
      for await (const token of sequence.evaluate(PROMPT as Token[], { temperature: 0, yieldEogToken: true })) {
        void token;
        if (steps < 0) t0 = performance.now();
        if (++steps === n) break;
      }
      if (steps < n) throw new Error(`llama.cpp stopped after ${steps} of ${n} steps`);
      return (performance.now() - t0) / 1000;
    },
    async dispose() {
      await context.dispose();
      await model.dispose();
      await llama.dispose();
    },
  };
}

// ============================================================================================
// Main
// ============================================================================================

let commit = 'unknown';
try {
  commit = execSync('git rev-parse --short HEAD', { cwd: repoRoot }).toString().trim();
} catch {
  /* not a git checkout */
}
const cpu = cpuInfo();
{
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
  console.log(`llama.cpp (node-llama-cpp ${llama.buildType}): ${llama.systemInfo.trim()}; load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`);
  await llama.dispose();
}
console.log(
  `decode-dense bench: commit ${commit}, node ${process.version}, ${os.cpus()[0]?.model ?? 'cpu'}, moerun path ${cpu.activePath}, ` +
    `${threads} threads, ${nTokens} decode tokens x ${rounds} rounds (+1 warm-up) per engine, interleaved`,
);
console.log(`model: llama, ${SHAPE.nLayer} layers, d ${SHAPE.nEmbd}, ffn ${SHAPE.nFf}, heads ${SHAPE.nHead}/${SHAPE.nHeadKv}, vocab ${SHAPE.nVocab}; F32 norms; F16 KV cache (both engines' default)`);

const rows: string[][] = [];
for (const type of types) {
  const file = await modelFile(type);
  const perToken = await bytesPerToken(file);
  const engines: (Engine | undefined)[] = [
    only === 'llama.cpp' ? undefined : await moerunEngine(file),
    only === 'moerun' ? undefined : await llamaCppEngine(file),
  ];
  const seconds: number[][] = engines.map(() => []);
  for (let r = 0; r <= rounds; r++) {
    for (let e = 0; e < engines.length; e++) {
      const s = await engines[e]?.decode(nTokens);
      if (r > 0 && s !== undefined) seconds[e]!.push(s); // round 0 warms caches, pages and thread pools
    }
  }
  for (const e of engines) await e?.dispose();
  const probe = await measureBandwidth(threads);
  // Mean over rounds, and the best round (less sensitive to other processes on a shared machine).
  const mean = seconds.map((s) => (s.length ? (nTokens * s.length) / s.reduce((a, b) => a + b, 0) : NaN));
  const best = seconds.map((s) => (s.length ? nTokens / Math.min(...s) : NaN));
  const f = (x: number, d = 2): string => (Number.isFinite(x) ? x.toFixed(d) : '-');
  rows.push([
    type, f(perToken / 1e9, 3), `${f(mean[0]!)} (${f(best[0]!)})`, `${f(mean[1]!)} (${f(best[1]!)})`,
    `${f(mean[0]! / mean[1]!)} (${f(best[0]! / best[1]!)})`, f((mean[0]! * perToken) / 1e9, 1), f((mean[1]! * perToken) / 1e9, 1), f(probe / 1e9, 1),
  ]);
  console.log(`${type}: per-round tok/s: moerun ${seconds[0]!.map((s) => f(nTokens / s)).join(', ')}; llama.cpp ${seconds[1]!.map((s) => f(nTokens / s)).join(', ')}`);
}

const header = ['type', 'GB/token', 'moerun tok/s mean (best)', 'llama.cpp tok/s mean (best)', 'ratio mean (best)', 'moerun GB/s', 'llama.cpp GB/s', `probe GB/s (${threads}t)`];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
const line = (cells: string[]): string => `| ${cells.map((c, i) => c.padStart(widths[i]!)).join(' | ')} |`;
console.log(['', line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n'));
