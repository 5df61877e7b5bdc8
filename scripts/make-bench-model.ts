// Benchmark models: synthetic GGUFs with the exact shapes of real MoE models and random weights.
//
//   npx tsx scripts/make-bench-model.ts SHAPE [--quant Q4_K_M|Q8_0|Q6_K|Q4_0|IQ2_XXS|IQ1_S] [--layers N] [--dir DIR] [--force] [--check]
//   SHAPE: ling-mini-2.0 | qwen3-30b-a3b | olmoe-1b-7b | deepseek-v2-lite
//
// Speed does not depend on weight values, so nothing is quantized: each quantized tensor is a run of
// random bytes cut into valid blocks whose fp16 scale fields are set to small finite values (weights
// of σ ≈ 0.02, so activations stay finite through every layer). A multi-GB file is written at disk
// speed. Norms, routers and expert biases are F32 as llama.cpp's converters keep them.
//
// Metadata and tensor names come from scripts/make-model.ts (the architectures it writes load in
// both moerun and llama.cpp); this file patches in what make-model does not model: a real-size
// vocabulary (an SPM vocab of synthetic pieces), Qwen3's 128-wide heads on a 2048-wide model
// (attention.key_length), and the file type. `--layers N` keeps the first N layers so a model fits
// in RAM next to a second engine mapping the same file; the name says which depth it has.
//
// Files are cached under os.tmpdir()/moerun-bench/ (never in the repository) and rewritten only
// when missing or with --force.
import { randomFillSync } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { ggmlTensorByteSize, ggmlTypeInfo, type GgmlTypeName } from '../lib/gguf/constants.js';
import { encodeF32, encodeGgufHeader, float32ToFloat16Bits, writeGguf, type GgufTensorInput, type GgufValue } from '../lib/gguf/writer.js';
import { tensorAllowsQuantization } from '../lib/quantize.js';
import { makeModelParts, type MakeModelOptions } from './make-model.js';

// ============================================================================================
// Shapes
// ============================================================================================

/** A real model's shape: make-model options at full depth, plus what make-model cannot express. */
interface BenchShape {
  /** What the file imitates, for its name and `general.name`. */
  title: string;
  options: Omit<MakeModelOptions, 'out' | 'nVocab'>;
  /** Vocabulary size (make-model's synthetic vocab is for small models only). */
  nVocab: number;
  /** Per-head Q/K/V width when it is not nEmbd / nHead (Qwen3: 128 on d 2048 with 32 heads). */
  headDim?: number;
}

/** The shapes `npm run bench` and this script know, by name. */
export const BENCH_SHAPES = {
  // inclusionAI/Ling-mini-2.0: 16.3B total, 1.4B active.
  'ling-mini-2.0': {
    title: 'Ling-mini-2.0',
    nVocab: 157184,
    options: {
      arch: 'bailingmoe2', nLayer: 20, nEmbd: 2048, nHead: 16, nHeadKv: 4, nRot: 64, nFf: 5120,
      nExpert: 256, nExpertUsed: 8, nFfExp: 512, nExpertShared: 1, nFfShexp: 512, nLayerDenseLead: 1,
      expertGating: 'sigmoid', expertSelectionBias: true, expertWeightsNorm: true, expertWeightsScale: 2.5,
      nExpertGroups: 8, nExpertGroupsUsed: 4, nNextn: 0, contextLength: 32768, ropeFreqBase: 600000, rmsEps: 1e-6,
    },
  },
  // Qwen/Qwen3-30B-A3B: 30.5B total, 3.3B active.
  'qwen3-30b-a3b': {
    title: 'Qwen3-30B-A3B',
    nVocab: 151936,
    headDim: 128,
    options: {
      arch: 'qwen3moe', nLayer: 48, nEmbd: 2048, nHead: 32, nHeadKv: 4, nFf: 6144, nExpert: 128, nExpertUsed: 8,
      nFfExp: 768, contextLength: 40960, ropeFreqBase: 1000000, rmsEps: 1e-6,
    },
  },
  // allenai/OLMoE-1B-7B-0924: 6.9B total, 1.3B active.
  'olmoe-1b-7b': {
    title: 'OLMoE-1B-7B',
    nVocab: 50304,
    options: {
      arch: 'olmoe', nLayer: 16, nEmbd: 2048, nHead: 16, nHeadKv: 16, nFf: 1024, nExpert: 64, nExpertUsed: 8,
      nFfExp: 1024, contextLength: 4096, ropeFreqBase: 10000, rmsEps: 1e-5,
    },
  },
  // deepseek-ai/DeepSeek-V2-Lite: 15.7B total, 2.4B active; MLA with a plain (uncompressed) query.
  'deepseek-v2-lite': {
    title: 'DeepSeek-V2-Lite',
    nVocab: 102400,
    options: {
      arch: 'deepseek2', nLayer: 27, nEmbd: 2048, nHead: 16, nHeadKv: 1, nFf: 10944, nExpert: 64, nExpertUsed: 6,
      nFfExp: 1408, nExpertShared: 2, nLayerDenseLead: 1, qLoraRank: 0, kvLoraRank: 512, nRot: 64,
      qkNopeHeadDim: 128, vHeadDim: 128, expertGating: 'softmax', expertSelectionBias: false,
      expertWeightsNorm: false, expertWeightsScale: 1, nExpertGroups: 0, yarnFactor: 40, yarnOrigContext: 4096,
      yarnMscaleAllDim: 0.707, contextLength: 163840, rmsEps: 1e-6,
    },
  },
  // TinyLlama/TinyLlama-1.1B (Llama 2 architecture, dense): 1.1B parameters, all active.
  'tinyllama-1.1b': {
    title: 'TinyLlama-1.1B',
    nVocab: 32000,
    options: {
      arch: 'llama', nLayer: 22, nEmbd: 2048, nHead: 32, nHeadKv: 4, nFf: 5632, contextLength: 2048,
      ropeFreqBase: 10000, rmsEps: 1e-5,
    },
  },
} satisfies Record<string, BenchShape>;

/** A shape name: `ling-mini-2.0`, `qwen3-30b-a3b`, `olmoe-1b-7b`, `deepseek-v2-lite`, `tinyllama-1.1b` (dense). */
export type BenchShapeName = keyof typeof BENCH_SHAPES;

/**
 * File types this script writes: llama.cpp's Q4_K_M recipe, or every matrix of one block type (a
 * `--pure` file; IQ2_XXS and IQ1_S as pure runs, for speed only: llama.cpp's mixes for them need
 * an importance matrix, and values do not change speed).
 */
export type BenchQuant = 'Q4_K_M' | 'Q8_0' | 'Q6_K' | 'Q4_0' | 'IQ2_XXS' | 'IQ1_S';

/** LLAMA_FTYPE values written as general.file_type. */
const FILE_TYPES: Record<BenchQuant, number> = { Q4_0: 2, Q8_0: 7, Q4_K_M: 15, Q6_K: 18, IQ2_XXS: 19, IQ1_S: 24 }; // llama.cpp's LLAMA_FTYPE

/** Options of {@link makeBenchModel}. */
export interface MakeBenchModelOptions {
  shape: BenchShapeName;
  quant: BenchQuant;
  /** Keep the first N layers (default: the real depth). */
  layers?: number;
  /** Cache directory (default os.tmpdir()/moerun-bench). */
  dir?: string;
  /** Rewrite even if the file exists. */
  force?: boolean;
  /** Called with the fraction of tensor bytes written. */
  onProgress?: (fraction: number) => void;
}

/** The cache directory for benchmark models. */
export const benchModelDir: string = path.join(os.tmpdir(), 'moerun-bench');

/** Where {@link makeBenchModel} puts a file (v2: bump when the content changes). */
export function benchModelPath(o: Pick<MakeBenchModelOptions, 'shape' | 'quant' | 'layers' | 'dir'>): string {
  const shape = BENCH_SHAPES[o.shape];
  const layers = o.layers ?? shape.options.nLayer;
  return path.join(o.dir ?? benchModelDir, `${o.shape}-l${layers}-${o.quant.toLowerCase()}-v1.gguf`);
}

// ============================================================================================
// Random valid blocks
// ============================================================================================

/**
 * Per block type: bytes per block and its fp16 scale fields (offset in the block, value). Values are
 * picked so dequantized weights have σ ≈ 0.02 and, for the K-quants with a min, a mean near zero
 * (dmin ≈ d × the mean quant).
 */
const BLOCKS: Partial<Record<GgmlTypeName, [number, number][]>> = {
  Q8_0: [[0, 3e-4]], // d; q ~ U(-128, 127)
  Q4_0: [[0, 4e-3]], // d; q - 8 ~ U(-8, 7)
  Q5_0: [[0, 2e-3]], // d; q - 16 ~ U(-16, 15)
  Q4_K: [[0, 1.5e-4], [2, 1.1e-3]], // d, dmin; 6-bit scales and mins
  Q5_K: [[0, 8e-5], [2, 1.2e-3]],
  Q6_K: [[208, 2e-5]], // d at the end; int8 scales × (q - 32)
  IQ4_NL: [[0, 3e-4]], // d; nonlinear levels -127..113
  IQ2_XXS: [[0, 3e-4]], // d; grid levels 8..43 × (2s + 1) / 8
  IQ1_S: [[0, 2.5e-3]], // d; (2s + 1) × (grid -1..1 ± 1/8)
};

const POOL_BYTES = 16 << 20;
const pools = new Map<GgmlTypeName, Uint8Array>();

/** 16 MiB of valid random blocks of `type` (made once, then cut into tensors). */
function blockPool(type: GgmlTypeName): Uint8Array {
  let pool = pools.get(type);
  if (pool) return pool;
  const scales = BLOCKS[type];
  if (!scales) throw new Error(`make-bench-model: no random-block recipe for ${type}`);
  const blockBytes = ggmlTypeInfo(type).typeSize;
  pool = randomFillSync(new Uint8Array(Math.floor(POOL_BYTES / blockBytes) * blockBytes));
  const view = new DataView(pool.buffer);
  const halves = scales.map(([at, v]) => [at, float32ToFloat16Bits(v)] as const);
  for (let at = 0; at < pool.length; at += blockBytes) for (const [off, h] of halves) view.setUint16(at + off, h, true);
  pools.set(type, pool);
  return pool;
}

/** `bytes` bytes of random blocks, starting at a block chosen from `seed` so tensors differ. */
function* randomBlocks(type: GgmlTypeName, bytes: number, seed: number): Generator<Uint8Array> {
  const pool = blockPool(type);
  const blockBytes = ggmlTypeInfo(type).typeSize;
  let at = (seed % (pool.length / blockBytes)) * blockBytes;
  let left = bytes;
  while (left > 0) {
    const n = Math.min(left, pool.length - at);
    yield pool.subarray(at, at + n);
    left -= n;
    at = 0;
  }
}

/** F32 values for a small tensor: norms ≈ 1, routers and biases N(0, σ). */
function f32Values(name: string, shape: readonly number[], seed: number): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  const uniform = (): number => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
  const normal = (): number => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
  const [mean, std] = f32Moments(name, shape);
  for (let i = 0; i < n; i++) out[i] = mean + std * normal();
  return out;
}

/** Mean and standard deviation of a float tensor's values: norms ≈ 1, routers and biases N(0, σ). */
function f32Moments(name: string, shape: readonly number[]): [number, number] {
  if (name.includes('norm')) return [1, 0.05];
  return [0, name.includes('exp_probs_b') ? 0.1 : 1 / Math.sqrt(shape[0]!)];
}

function hash(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

// ============================================================================================
// Tensor types: llama.cpp's Q4_K_M recipe (llama-quant.cpp), or one block type everywhere
// ============================================================================================

/** `use_more_bits`: the first and last eighth of the layers, and every third one between. */
function useMoreBits(i: number, n: number): boolean {
  return i < Math.trunc(n / 8) || i >= Math.trunc((7 * n) / 8) || (i - Math.trunc(n / 8)) % 3 === 2;
}

/** llama.cpp's type for a row that does not fit the chosen type's blocks (llama_tensor_get_type). */
const FALLBACK: Partial<Record<GgmlTypeName, GgmlTypeName>> = { Q4_K: 'Q5_0', Q5_K: 'Q5_1', Q6_K: 'Q8_0', IQ2_XXS: 'IQ4_NL', IQ1_S: 'IQ4_NL' };

/**
 * The type of each tensor, given in llama.cpp's order (non-layer tensors, then by layer and name),
 * as llama.cpp's recipe for the file type picks it; F32 for tensors it does not quantize.
 */
function tensorTypes(tensors: { name: string; shape: readonly number[] }[], quant: BenchQuant, nLayer: number, nExpert: number): GgmlTypeName[] {
  const nAttnV = tensors.filter((t) => /attn_(v|qkv|kv_b)\.weight$/.test(t.name)).length;
  let iAttnV = 0;
  return tensors.map(({ name, shape }) => {
    if (!tensorAllowsQuantization(name, shape)) return 'F32';
    if (quant !== 'Q4_K_M') {
      // One block type everywhere, with llama.cpp's fallback where a row does not fit a block.
      return shape[0]! % ggmlTypeInfo(quant).blockSize === 0 ? quant : (FALLBACK[quant] ?? 'F16');
    }
    let type: GgmlTypeName = 'Q4_K';
    const layer = Number(/^blk\.(\d+)\./.exec(name)?.[1] ?? -1);
    if (name === 'output.weight') type = 'Q6_K';
    else if (/attn_(v|qkv|kv_b)\.weight$/.test(name)) {
      if (useMoreBits(iAttnV++, nAttnV)) type = 'Q6_K';
      if (nExpert === 8) type = 'Q8_0';
    } else if (/attn_k\.weight$/.test(name) && nExpert === 8) type = 'Q8_0';
    else if (name.includes('ffn_down') && useMoreBits(layer, nLayer)) type = 'Q6_K';
    else if (/attn_output\.weight$/.test(name) && nExpert === 8) type = 'Q5_K';
    if (shape[0]! % ggmlTypeInfo(type).blockSize !== 0) type = FALLBACK[type] ?? 'F16';
    return type;
  });
}

// ============================================================================================
// Vocabulary: <unk>, <s>, </s>, 256 byte tokens, then distinct synthetic pieces
// ============================================================================================

function spmVocab(nVocab: number): { tokens: string[]; scores: Float32Array; types: Int32Array } {
  const tokens = ['<unk>', '<s>', '</s>'];
  const types = [2, 3, 3]; // unknown, control, control
  for (let i = 0; i < 256; i++) {
    tokens.push(`<0x${i.toString(16).toUpperCase().padStart(2, '0')}>`);
    types.push(6); // byte
  }
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  const pieces: string[] = ['▁', ...letters, ...letters.split('').map((c) => `▁${c}`)];
  // Then every 2-, 3-, 4-letter string (with and without the word-start mark) until full.
  for (let len = 2; pieces.length + tokens.length < nVocab; len++) {
    const total = letters.length ** len;
    for (let k = 0; k < total && pieces.length + tokens.length < nVocab; k++) {
      let s = '';
      for (let j = 0, v = k; j < len; j++, v = Math.floor(v / letters.length)) s = letters[v % letters.length] + s;
      pieces.push(`▁${s}`);
      if (pieces.length + tokens.length < nVocab) pieces.push(s);
    }
  }
  const scores = new Float32Array(nVocab);
  for (const piece of pieces) {
    scores[tokens.length] = -(tokens.length - 259);
    tokens.push(piece);
    types.push(1); // normal
  }
  return { tokens, scores, types: Int32Array.from(types) };
}

// ============================================================================================
// The file
// ============================================================================================

/** A benchmark model's metadata and tensors (types, shapes), before any data is made. */
interface BenchModelPlan {
  file: string;
  metadata: [string, GgufValue][];
  tensors: { name: string; type: GgmlTypeName; shape: number[]; seed: number }[];
}

function planBenchModel(options: Pick<MakeBenchModelOptions, 'shape' | 'quant' | 'layers' | 'dir'>): BenchModelPlan {
  const shape: BenchShape = BENCH_SHAPES[options.shape];
  if (!shape) throw new TypeError(`Unknown shape '${String(options.shape)}'; expected one of ${Object.keys(BENCH_SHAPES).join(', ')}`);
  if (!(options.quant in FILE_TYPES)) {
    throw new TypeError(`Expected quant ${Object.keys(FILE_TYPES).join(', ')} but received '${String(options.quant)}'`);
  }
  const fullDepth = shape.options.nLayer!;
  const nLayer = options.layers ?? fullDepth;
  if (!Number.isInteger(nLayer) || nLayer < 2 || nLayer > fullDepth) throw new RangeError(`Expected --layers in [2, ${fullDepth}] but received ${nLayer}`);
  const file = benchModelPath({ ...options, layers: nLayer });

  const o = shape.options;
  const arch = o.arch;
  const parts = makeModelParts({ ...o, nLayer, nVocab: 512, routerChannels: 0, out: file });
  const { tokens, scores, types } = spmVocab(shape.nVocab);
  const headDim = shape.headDim;
  const metadata: [string, GgufValue][] = parts.metadata.map(([key, value]): [string, GgufValue] => {
    if (key === 'general.name') return [key, `moerun bench: ${shape.title} shape, ${nLayer} of ${fullDepth} layers, random weights`];
    if (key === 'general.file_type') return [key, { type: 'u32', value: FILE_TYPES[options.quant] }];
    if (key === `${arch}.vocab_size`) return [key, { type: 'u32', value: shape.nVocab }];
    if (key === 'tokenizer.ggml.tokens') return [key, tokens];
    if (key === 'tokenizer.ggml.scores') return [key, scores];
    if (key === 'tokenizer.ggml.token_type') return [key, types];
    if (headDim !== undefined && key === `${arch}.rope.dimension_count`) return [key, { type: 'u32', value: headDim }];
    return [key, value];
  });
  if (headDim !== undefined) {
    metadata.push([`${arch}.attention.key_length`, { type: 'u32', value: headDim }]);
    metadata.push([`${arch}.attention.value_length`, { type: 'u32', value: headDim }]);
  }
  metadata.push(['general.quantization_version', { type: 'u32', value: 2 }]);

  const d = o.nEmbd!;
  const reshaped = parts.weights.map((w) => {
    let s = [...w.shape];
    const name = w.name;
    if (name === 'token_embd.weight' || name === 'output.weight') s = [d, shape.nVocab];
    if (headDim !== undefined) {
      if (/attn_q\.weight$/.test(name)) s = [d, o.nHead! * headDim];
      else if (/attn_[kv]\.weight$/.test(name)) s = [d, o.nHeadKv! * headDim];
      else if (/attn_output\.weight$/.test(name)) s = [o.nHead! * headDim, d];
      else if (/attn_[qk]_norm\.weight$/.test(name)) s = [headDim];
    }
    return { name, shape: s };
  });
  const layerOf = (n: string): number => Number(/^blk\.(\d+)\./.exec(n)?.[1] ?? -1);
  reshaped.sort((a, b) => layerOf(a.name) - layerOf(b.name) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const typeList = tensorTypes(reshaped, options.quant, nLayer, o.nExpert ?? 0);
  return { file, metadata, tensors: reshaped.map((t, i) => ({ ...t, type: typeList[i]!, seed: hash(t.name) })) };
}

/** Writes (or finds in the cache) a benchmark model and returns its path. */
export async function makeBenchModel(options: MakeBenchModelOptions): Promise<string> {
  const plan = planBenchModel(options);
  const file = plan.file;
  if (existsSync(file) && !options.force) return file;
  mkdirSync(path.dirname(file), { recursive: true });

  const total = plan.tensors.reduce((n, t) => n + ggmlTensorByteSize(t.type, t.shape), 0);
  let written = 0;
  const tensors: GgufTensorInput[] = plan.tensors.map((t) => {
    const { type, seed } = t;
    const bytes = ggmlTensorByteSize(type, t.shape);
    const data = type === 'F32' || type === 'F16'
      ? (): Uint8Array => {
          const values = f32Values(t.name, t.shape, seed);
          written += bytes;
          options.onProgress?.(written / total);
          if (type === 'F32') return encodeF32(values);
          const half = new Uint16Array(values.length);
          for (let k = 0; k < values.length; k++) half[k] = float32ToFloat16Bits(values[k]!);
          return new Uint8Array(half.buffer);
        }
      : function* (): Generator<Uint8Array> {
          for (const chunk of randomBlocks(type, bytes, seed)) {
            yield chunk;
            written += chunk.length;
            options.onProgress?.(written / total);
          }
        };
    return { name: t.name, type, shape: t.shape, data };
  });
  await writeGguf(file, { metadata: plan.metadata, tensors });
  return file;
}

/**
 * A benchmark model as a recipe, for a machine without Node (the GPU host): `<name>.head` holds the
 * file's bytes before its data section (metadata, the vocabulary, tensor infos), `<name>.recipe`
 * says how to make each tensor's data, and native/test/expand_bench_model.cpp writes the model from
 * the two, at disk speed. A few MB in place of many GB, which the device tool could not carry.
 *
 * The recipe is text, one record per line: `moerun-bench-recipe 1`; `file NAME.gguf`; `header
 * NAME.head BYTES`; `size BYTES` (the whole file); per block type, `block TYPE BYTES OFFSET:F16BITS...`
 * (its size and the fp16 scale fields set in every block, as BLOCKS gives them); per tensor in file
 * order, `tensor NAME TYPE OFFSET BYTES PADDING FILL SEED MEAN STD`, OFFSET from the data section,
 * FILL `blocks` (random valid blocks) or `f32` (values MEAN + STD × N(0, 1), as f32Values draws
 * them; the expander's random numbers are its own, which speed does not depend on). No shape
 * here has F16 tensors (every row fits its type's blocks or the fallback's); one would be refused.
 * Returns the two paths.
 */
export async function writeBenchRecipe(
  options: Pick<MakeBenchModelOptions, 'shape' | 'quant' | 'layers'>,
  dir: string,
): Promise<{ header: string; recipe: string }> {
  const plan = planBenchModel({ ...options, dir });
  const name = path.basename(plan.file, '.gguf');
  const specTensors: GgufTensorInput[] = plan.tensors.map((t) => ({ name: t.name, type: t.type, shape: t.shape, data: new Uint8Array(0) }));
  const { header, layout } = encodeGgufHeader({ metadata: plan.metadata, tensors: specTensors });
  mkdirSync(dir, { recursive: true });
  const headerPath = path.join(dir, `${name}.head`);
  const recipePath = path.join(dir, `${name}.recipe`);
  const lines = ['moerun-bench-recipe 1', `file ${name}.gguf`, `header ${name}.head ${header.length}`, `size ${layout.byteSize}`];
  for (const type of new Set(plan.tensors.map((t) => t.type))) {
    if (type === 'F32' || type === 'F16') continue;
    const scales = BLOCKS[type];
    if (!scales) throw new Error(`make-bench-model: no random-block recipe for ${type}`);
    lines.push(`block ${type} ${ggmlTypeInfo(type).typeSize} ${scales.map(([at, v]) => `${at}:${float32ToFloat16Bits(v)}`).join(' ')}`);
  }
  plan.tensors.forEach((t, i) => {
    const placed = layout.tensors[i]!;
    const next = i + 1 < plan.tensors.length ? layout.tensors[i + 1]!.offset : layout.byteSize - layout.dataOffset;
    const padding = next - placed.offset - placed.byteSize;
    if (t.type === 'F16') throw new Error(`make-bench-model: ${t.name} is F16, which recipes do not hold (only block types and F32)`);
    const float = t.type === 'F32';
    const [mean, std] = float ? f32Moments(t.name, t.shape) : [0, 0];
    lines.push(`tensor ${t.name} ${t.type} ${placed.offset} ${placed.byteSize} ${padding} ${float ? 'f32' : 'blocks'} ${t.seed} ${mean} ${std}`);
  });
  await writeFile(headerPath, header);
  await writeFile(recipePath, `${lines.join('\n')}\n`);
  return { header: headerPath, recipe: recipePath };
}

// ============================================================================================
// Check: both engines load the file and give finite logits
// ============================================================================================

/**
 * Loads `file` in moerun and in llama.cpp (node-llama-cpp, a devDependency) with `threads`, runs
 * a short prompt, and throws unless both return finite logits of the right length. Returns each
 * engine's logit RMS of the last position.
 */
export async function checkBenchModel(file: string, threads = 2): Promise<{ moerun: number; llamaCpp: number }> {
  const prompt = [1, 300, 4000, 20000, 777];
  const rms = (x: ArrayLike<number>, what: string): number => {
    let s = 0;
    for (let i = 0; i < x.length; i++) {
      const v = x[i]!;
      if (!Number.isFinite(v)) throw new Error(`${what}: logit ${i} of ${file} is ${v}`);
      s += v * v;
    }
    return Math.sqrt(s / x.length);
  };
  const { loadModel } = await import('../lib/model.js');
  const model = await loadModel(file, { threads });
  let moerun: number;
  let nVocab: number;
  try {
    nVocab = model.info.vocabSize;
    const session = model.createSession({ contextSize: 64 });
    const logits = await session.evaluate(prompt, { logits: 'all' });
    if (logits.length !== prompt.length * nVocab) throw new Error(`moerun: ${logits.length} logits, expected ${prompt.length * nVocab}`);
    moerun = rms(logits.subarray((prompt.length - 1) * nVocab), 'moerun');
  } finally {
    await model.dispose();
  }
  const { getLlama } = await import('node-llama-cpp');
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error' as never });
  try {
    const lm = await llama.loadModel({ modelPath: file, gpuLayers: 0 });
    const context = await lm.createContext({ contextSize: 64, batchSize: 64, threads, flashAttention: false });
    const sequence = context.getSequence();
    const input = prompt.map((t, i) => (i === prompt.length - 1 ? [t, { generateNext: { logits: true } }] : t));
    const out = await sequence.controlledEvaluate(input as Parameters<typeof sequence.controlledEvaluate>[0]);
    const map = out[prompt.length - 1]?.next?.logits;
    if (!map || map.size !== nVocab) throw new Error(`llama.cpp: ${map?.size ?? 0} logits, expected ${nVocab}`);
    const llamaCpp = rms([...map.values()], 'llama.cpp');
    await context.dispose();
    await lm.dispose();
    return { moerun, llamaCpp };
  } finally {
    await llama.dispose();
  }
}

// ============================================================================================
// CLI
// ============================================================================================

const usage = `Usage: npx tsx scripts/make-bench-model.ts SHAPE [--quant Q4_K_M|Q8_0|Q6_K|Q4_0|IQ2_XXS|IQ1_S] [--layers N] [--dir DIR] [--force] [--check]
       npx tsx scripts/make-bench-model.ts SHAPE [--quant Q] [--layers N] --recipe DIR
  SHAPE: ${Object.keys(BENCH_SHAPES).join(', ')}
  Writes (or finds) a random-weight GGUF with that model's exact shapes under ${benchModelDir} and prints its path.
  --check loads it in moerun and in llama.cpp (node-llama-cpp) and checks that both give finite logits.
  --recipe writes DIR/NAME.head and DIR/NAME.recipe instead (a few MB), from which
    native/test/expand_bench_model writes the same model where there is no Node.
`;

async function main(argv: string[]): Promise<void> {
  const { parseArgs } = await import('node:util');
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      quant: { type: 'string' }, layers: { type: 'string' }, dir: { type: 'string' }, force: { type: 'boolean' }, check: { type: 'boolean' },
      recipe: { type: 'string' }, help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help || positionals.length !== 1) {
    process.stdout.write(usage);
    process.exitCode = values.help ? 0 : 2;
    return;
  }
  if (values.recipe !== undefined) {
    const layers = values.layers === undefined ? undefined : Number(values.layers);
    const r = await writeBenchRecipe({ shape: positionals[0] as BenchShapeName, quant: (values.quant ?? 'Q4_K_M') as BenchQuant, layers }, values.recipe);
    process.stdout.write(`${r.recipe}\n${r.header}\n`);
    return;
  }
  const started = performance.now();
  const tty = process.stderr.isTTY;
  const file = await makeBenchModel({
    shape: positionals[0] as BenchShapeName,
    quant: (values.quant ?? 'Q4_K_M') as BenchQuant,
    layers: values.layers === undefined ? undefined : Number(values.layers),
    dir: values.dir,
    force: values.force,
    onProgress: tty ? (f) => process.stderr.write(`\r${(f * 100).toFixed(1).padStart(5)}%`) : undefined,
  });
  if (tty) process.stderr.write('\n');
  const { statSync } = await import('node:fs');
  process.stdout.write(`${file} (${(statSync(file).size / 2 ** 30).toFixed(2)} GiB, ${((performance.now() - started) / 1000).toFixed(1)} s)\n`);
  if (values.check) {
    const r = await checkBenchModel(file);
    process.stdout.write(`  loads in moerun and llama.cpp; last-position logit RMS: moerun ${r.moerun.toFixed(3)}, llama.cpp ${r.llamaCpp.toFixed(3)}\n`);
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`make-bench-model: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  });
}
