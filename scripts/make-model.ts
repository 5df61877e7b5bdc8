// make-model: seeded random-weight GGUF files that llama.cpp loads, one small builder per
// architecture.
//
//   npx tsx scripts/make-model.ts --arch llama|qwen2|qwen3moe --out /tmp/m.gguf [--seed 1] [--type f32|f16]
//       [--n-embd 256] [--n-layer 2] [--n-head 8] [--n-head-kv 4] [--n-ff 512] [--n-vocab 512]
//       [--n-expert 4 --n-expert-used 2 [--n-ff-exp 256]] [--tied] [--output-scale 4]
//       [--context-length 2048] [--rope-freq-base 10000] [--rms-eps 1e-5]
//
// Every tensor's values come from its own generator seeded by (seed, tensor name), so a tensor does
// not change when others are added, and data is produced lazily while the file streams out.
//
// Conditioning, so a comparison against llama.cpp is meaningful: token embeddings are N(0, 1) and
// every projection N(0, 1/fan_in), which keeps activations O(1) through the layers; norm weights
// are 1 + N(0, 0.1²); the output projection is scaled by `outputScale` (logits ~ N(0, outputScale²))
// so the top-1 usually leads the runner-up by a clear margin.
//
// Adding an architecture: write a `build<Arch>` function from the shared blocks below (attention,
// dense FFN, MoE FFN, embeddings, tokenizer) and register it in ARCHES.

import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';

import {
  encodeF16,
  encodeF32,
  writeGguf,
  type GgufValue,
  type GgufWriteResult,
  type GgufWriteSpec,
} from '../lib/gguf/writer.js';

// ============================================================================================
// Options
// ============================================================================================

/** Architectures make-model can write. */
export type MakeModelArch = keyof typeof ARCHES;

/** Options for {@link makeModel}; every shape option has a small default (a file of a few MB). */
export interface MakeModelOptions {
  arch: MakeModelArch;
  /** Output path. */
  out: string;
  /** Seed for all weights (default 1). */
  seed?: number;
  /** Storage type of matrices and embeddings (norms and routers stay F32). Default 'f32'. */
  type?: 'f32' | 'f16';
  /** Hidden size (default 256, a multiple of 256 so K-quants apply). */
  nEmbd?: number;
  /** Number of layers (default 2). */
  nLayer?: number;
  /** Query heads (default 8). */
  nHead?: number;
  /** Key/value heads (default 4: grouped-query attention). */
  nHeadKv?: number;
  /** Dense FFN width (default 512). */
  nFf?: number;
  /** Vocabulary size, at least 260 (default 512). */
  nVocab?: number;
  /** Experts per MoE layer; 0 = dense (default 0). */
  nExpert?: number;
  /** Experts used per token (default 2 when nExpert > 0). */
  nExpertUsed?: number;
  /** Expert FFN width (default nFf). For llama (Mixtral) it is written as feed_forward_length. */
  nFfExp?: number;
  /** Tie the output projection to token_embd (no output.weight). Default false. */
  tiedEmbeddings?: boolean;
  /** Standard deviation of the logits, roughly (default 4). */
  outputScale?: number;
  contextLength?: number;
  ropeFreqBase?: number;
  rmsEps?: number;
}

type Resolved = Required<MakeModelOptions>;

const DEFAULTS: Omit<Resolved, 'arch' | 'out'> = {
  seed: 1,
  type: 'f32',
  nEmbd: 256,
  nLayer: 2,
  nHead: 8,
  nHeadKv: 4,
  nFf: 512,
  nVocab: 512,
  nExpert: 0,
  nExpertUsed: 0,
  nFfExp: 0,
  tiedEmbeddings: false,
  outputScale: 4,
  contextLength: 2048,
  ropeFreqBase: 10000,
  rmsEps: 1e-5,
};

function resolve(options: MakeModelOptions): Resolved {
  if (options === null || typeof options !== 'object') {
    throw new TypeError(`Expected an options object but received ${String(options)}`);
  }
  for (const key of Object.keys(options)) {
    if (key !== 'arch' && key !== 'out' && !(key in DEFAULTS)) {
      throw new TypeError(`Unknown make-model option '${key}'`);
    }
  }
  if (!(options.arch in ARCHES)) {
    throw new TypeError(`Expected arch to be one of ${Object.keys(ARCHES).join(', ')} but received '${String(options.arch)}'`);
  }
  if (typeof options.out !== 'string' || options.out === '') {
    throw new TypeError(`Expected a path for out but received ${String(options.out)}`);
  }
  const defined = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined));
  const o = { ...DEFAULTS, ...defined } as Resolved;
  if (o.nExpert > 0) {
    if (o.nExpertUsed === 0) o.nExpertUsed = Math.min(2, o.nExpert);
    if (o.nFfExp === 0) o.nFfExp = o.nFf;
  }
  for (const key of ['nEmbd', 'nLayer', 'nHead', 'nHeadKv', 'nFf', 'nVocab', 'contextLength'] as const) {
    if (!Number.isSafeInteger(o[key]) || o[key] <= 0) {
      throw new RangeError(`Expected a positive integer for ${key} but received ${String(o[key])} (${typeof o[key]})`);
    }
  }
  if (o.type !== 'f32' && o.type !== 'f16') throw new TypeError(`Expected type 'f32' or 'f16' but received '${String(o.type)}'`);
  if (o.nEmbd % o.nHead !== 0) throw new RangeError(`nEmbd ${o.nEmbd} is not a multiple of nHead ${o.nHead}`);
  if (o.nHead % o.nHeadKv !== 0) throw new RangeError(`nHead ${o.nHead} is not a multiple of nHeadKv ${o.nHeadKv}`);
  if (o.nVocab < MIN_VOCAB) throw new RangeError(`nVocab must be at least ${MIN_VOCAB} but is ${o.nVocab}`);
  if (o.nExpert > 0 && (o.nExpertUsed < 1 || o.nExpertUsed > o.nExpert)) {
    throw new RangeError(`nExpertUsed must be in [1, nExpert = ${o.nExpert}] but is ${o.nExpertUsed}`);
  }
  return o;
}

// ============================================================================================
// Weights: a name, a shape (ne0 first), how to fill it, and its storage type
// ============================================================================================

type Init =
  | { kind: 'normal'; std: number } // N(0, std²)
  | { kind: 'norm' }; // 1 + N(0, 0.1²): an RMSNorm weight

/** A tensor of a synthetic model before encoding. */
export interface SyntheticWeight {
  readonly name: string;
  /** ne0 first. */
  readonly shape: readonly number[];
  /** How it is stored in the file. */
  readonly type: 'F32' | 'F16';
  /** The values (row-major with ne0 contiguous), generated on each call from the seed. */
  values(): Float32Array;
}

/** What an architecture builder produces: metadata in file order and the weights. */
interface ModelParts {
  metadata: [string, GgufValue][];
  weights: SyntheticWeight[];
}

/** Everything a builder needs: resolved options and a weight factory. */
class Builder {
  readonly metadata: [string, GgufValue][] = [];
  readonly weights: SyntheticWeight[] = [];
  constructor(readonly o: Resolved) {}

  meta(key: string, value: GgufValue): void {
    this.metadata.push([key, value]);
  }

  /** A matrix or embedding: stored as the model's type. */
  matrix(name: string, shape: number[], std: number): void {
    this.add(name, shape, { kind: 'normal', std }, this.o.type === 'f16' ? 'F16' : 'F32');
  }

  /** A vector or a router: always F32 (as llama.cpp's converters keep them). */
  f32(name: string, shape: number[], init: Init): void {
    this.add(name, shape, init, 'F32');
  }

  private add(name: string, shape: number[], init: Init, type: 'F32' | 'F16'): void {
    const seed = hashSeed(this.o.seed, name);
    const n = shape.reduce((a, b) => a * b, 1);
    this.weights.push({ name, shape, type, values: () => fill(n, init, seed) });
  }

  parts(): ModelParts {
    return { metadata: this.metadata, weights: this.weights };
  }
}

function fill(n: number, init: Init, seed: number): Float32Array {
  const rng = new Rng(seed);
  const out = new Float32Array(n);
  if (init.kind === 'normal') for (let i = 0; i < n; i++) out[i] = init.std * rng.normal();
  else for (let i = 0; i < n; i++) out[i] = 1 + 0.1 * rng.normal();
  return out;
}

// ============================================================================================
// Shared blocks
// ============================================================================================

/**
 * general.* and the <arch>.* hyperparameters every llama-like model has. `feedForwardLength` is
 * the dense FFN width, except for llama-MoE (Mixtral), where llama.cpp reads the expert width
 * from the same key.
 */
function baseMetadata(b: Builder, arch: string, feedForwardLength = b.o.nFf): void {
  const o = b.o;
  const u32 = (value: number): GgufValue => ({ type: 'u32', value });
  const f32 = (value: number): GgufValue => ({ type: 'f32', value });
  b.meta('general.architecture', arch);
  b.meta('general.name', `moerun synthetic ${arch} (seed ${o.seed})`);
  b.meta('general.file_type', u32(o.type === 'f16' ? 1 : 0)); // LLAMA_FTYPE_ALL_F32 / MOSTLY_F16
  b.meta(`${arch}.vocab_size`, u32(o.nVocab));
  b.meta(`${arch}.context_length`, u32(o.contextLength));
  b.meta(`${arch}.embedding_length`, u32(o.nEmbd));
  b.meta(`${arch}.block_count`, u32(o.nLayer));
  b.meta(`${arch}.feed_forward_length`, u32(feedForwardLength));
  b.meta(`${arch}.attention.head_count`, u32(o.nHead));
  b.meta(`${arch}.attention.head_count_kv`, u32(o.nHeadKv));
  b.meta(`${arch}.rope.dimension_count`, u32(o.nEmbd / o.nHead));
  b.meta(`${arch}.rope.freq_base`, f32(o.ropeFreqBase));
  b.meta(`${arch}.attention.layer_norm_rms_epsilon`, f32(o.rmsEps));
  if (o.nExpert > 0) {
    b.meta(`${arch}.expert_count`, u32(o.nExpert));
    b.meta(`${arch}.expert_used_count`, u32(o.nExpertUsed));
  }
}

/** token_embd, output_norm and (unless tied) output. */
function embeddings(b: Builder): void {
  const o = b.o;
  const outStd = o.outputScale / Math.sqrt(o.nEmbd);
  // Tied: the embedding doubles as the output projection, so give it the output's scale; the
  // first RMSNorm makes the residual stream's scale irrelevant to layer 0.
  b.matrix('token_embd.weight', [o.nEmbd, o.nVocab], o.tiedEmbeddings ? outStd : 1);
  b.f32('output_norm.weight', [o.nEmbd], { kind: 'norm' });
  if (!o.tiedEmbeddings) b.matrix('output.weight', [o.nEmbd, o.nVocab], outStd);
}

/** Attention variants: Q/K/V biases (qwen2), RMSNorm of each Q and K head (qwen3moe, olmoe). */
interface AttentionOptions {
  bias?: boolean;
  qkNorm?: boolean;
}

/** attn_norm, attn_q/k/v/output of layer `i`, with optional biases and QK-norm. */
function attention(b: Builder, i: number, opts: AttentionOptions = {}): void {
  const o = b.o;
  const headDim = o.nEmbd / o.nHead;
  const std = 1 / Math.sqrt(o.nEmbd);
  b.f32(`blk.${i}.attn_norm.weight`, [o.nEmbd], { kind: 'norm' });
  b.matrix(`blk.${i}.attn_q.weight`, [o.nEmbd, o.nHead * headDim], std); // (n_head*head_dim, n_embd)
  b.matrix(`blk.${i}.attn_k.weight`, [o.nEmbd, o.nHeadKv * headDim], std); // (n_head_kv*head_dim, n_embd)
  b.matrix(`blk.${i}.attn_v.weight`, [o.nEmbd, o.nHeadKv * headDim], std);
  if (opts.bias) {
    // Biases of the size of the projected values' spread, so they visibly move the logits.
    b.f32(`blk.${i}.attn_q.bias`, [o.nHead * headDim], { kind: 'normal', std: 0.5 });
    b.f32(`blk.${i}.attn_k.bias`, [o.nHeadKv * headDim], { kind: 'normal', std: 0.5 });
    b.f32(`blk.${i}.attn_v.bias`, [o.nHeadKv * headDim], { kind: 'normal', std: 0.5 });
  }
  if (opts.qkNorm) {
    b.f32(`blk.${i}.attn_q_norm.weight`, [headDim], { kind: 'norm' });
    b.f32(`blk.${i}.attn_k_norm.weight`, [headDim], { kind: 'norm' });
  }
  b.matrix(`blk.${i}.attn_output.weight`, [o.nHead * headDim, o.nEmbd], 1 / Math.sqrt(o.nHead * headDim));
}

/** ffn_norm and a dense SwiGLU FFN of layer `i`. */
function denseFfn(b: Builder, i: number): void {
  const o = b.o;
  b.f32(`blk.${i}.ffn_norm.weight`, [o.nEmbd], { kind: 'norm' });
  b.matrix(`blk.${i}.ffn_gate.weight`, [o.nEmbd, o.nFf], 1 / Math.sqrt(o.nEmbd)); // (n_ff, n_embd)
  b.matrix(`blk.${i}.ffn_up.weight`, [o.nEmbd, o.nFf], 1 / Math.sqrt(o.nEmbd));
  b.matrix(`blk.${i}.ffn_down.weight`, [o.nFf, o.nEmbd], 1 / Math.sqrt(o.nFf)); // (n_embd, n_ff)
}

/** ffn_norm, router and stacked SwiGLU experts of layer `i` (Mixtral naming). */
function moeFfn(b: Builder, i: number): void {
  const o = b.o;
  b.f32(`blk.${i}.ffn_norm.weight`, [o.nEmbd], { kind: 'norm' });
  // Router logits ~ N(0, 1): a random but not degenerate expert choice.
  b.f32(`blk.${i}.ffn_gate_inp.weight`, [o.nEmbd, o.nExpert], { kind: 'normal', std: 1 / Math.sqrt(o.nEmbd) }); // (n_expert, n_embd)
  b.matrix(`blk.${i}.ffn_gate_exps.weight`, [o.nEmbd, o.nFfExp, o.nExpert], 1 / Math.sqrt(o.nEmbd)); // (n_expert, n_ff_exp, n_embd)
  b.matrix(`blk.${i}.ffn_up_exps.weight`, [o.nEmbd, o.nFfExp, o.nExpert], 1 / Math.sqrt(o.nEmbd));
  b.matrix(`blk.${i}.ffn_down_exps.weight`, [o.nFfExp, o.nEmbd, o.nExpert], 1 / Math.sqrt(o.nFfExp)); // (n_expert, n_embd, n_ff_exp)
}

// ---- tokenizer: a small SentencePiece (llama) vocab ----

/** SentencePiece token types (llama.cpp's llama_token_type). */
const TOKEN_NORMAL = 1;
const TOKEN_UNKNOWN = 2;
const TOKEN_CONTROL = 3;
const TOKEN_BYTE = 6;

const WORDS = (
  'the a and to of was he she it in that is his her they with on for you said had but there one ' +
  'day little girl boy named lily tom once upon time big happy play park sun dog cat tree ball mom'
).split(' ');
const MIN_VOCAB = 3 + 256 + 1;

/** `<unk>`, `<s>`, `</s>`, `<0x00>`..`<0xFF>`, then word pieces with decreasing scores. */
export function syntheticSpmVocab(nVocab: number): { tokens: string[]; scores: Float32Array; types: Int32Array } {
  const tokens = ['<unk>', '<s>', '</s>'];
  const types = [TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_CONTROL];
  for (let i = 0; i < 256; i++) {
    tokens.push(`<0x${i.toString(16).toUpperCase().padStart(2, '0')}>`);
    types.push(TOKEN_BYTE);
  }
  const pieces = new Set<string>(['▁']);
  for (const c of 'abcdefghijklmnopqrstuvwxyz.,!?') pieces.add(c);
  for (const w of WORDS) {
    pieces.add(`▁${w}`);
    for (let k = 2; k < w.length; k++) pieces.add(w.slice(0, k)); // prefixes, so merges can build words
  }
  const letters = 'etaoinshrdlucmfwypgb';
  for (let i = 0; pieces.size < nVocab - tokens.length; i++) {
    const a = letters[i % letters.length];
    const b2 = letters[Math.floor(i / letters.length) % letters.length];
    const c = Math.floor(i / (letters.length * letters.length));
    pieces.add(c === 0 ? `${a}${b2}` : `▁${a}${b2}${letters[c % letters.length]}`);
  }
  const scores = new Float32Array(nVocab);
  let rank = 0;
  for (const piece of pieces) {
    if (tokens.length >= nVocab) break;
    scores[tokens.length] = -rank++;
    tokens.push(piece);
    types.push(TOKEN_NORMAL);
  }
  return { tokens, scores, types: Int32Array.from(types) };
}

function spmTokenizer(b: Builder): void {
  const { tokens, scores, types } = syntheticSpmVocab(b.o.nVocab);
  b.meta('tokenizer.ggml.model', 'llama');
  b.meta('tokenizer.ggml.tokens', tokens);
  b.meta('tokenizer.ggml.scores', scores);
  b.meta('tokenizer.ggml.token_type', types);
  b.meta('tokenizer.ggml.unknown_token_id', { type: 'u32', value: 0 });
  b.meta('tokenizer.ggml.bos_token_id', { type: 'u32', value: 1 });
  b.meta('tokenizer.ggml.eos_token_id', { type: 'u32', value: 2 });
  b.meta('tokenizer.ggml.add_bos_token', true);
  b.meta('tokenizer.ggml.add_eos_token', false);
}

// ============================================================================================
// Architectures
// ============================================================================================

/** llama: dense SwiGLU; with nExpert > 0, Mixtral (softmax top-k over `ffn_*_exps`). */
function buildLlama(o: Resolved): ModelParts {
  const b = new Builder(o);
  baseMetadata(b, 'llama', o.nExpert > 0 ? o.nFfExp : o.nFf);
  spmTokenizer(b);
  embeddings(b);
  for (let i = 0; i < o.nLayer; i++) {
    attention(b, i);
    if (o.nExpert > 0) moeFfn(b, i);
    else denseFfn(b, i);
  }
  return b.parts();
}

/** qwen2: dense SwiGLU, Q/K/V biases. */
function buildQwen2(o: Resolved): ModelParts {
  const b = new Builder(o);
  baseMetadata(b, 'qwen2');
  spmTokenizer(b);
  embeddings(b);
  for (let i = 0; i < o.nLayer; i++) {
    attention(b, i, { bias: true });
    denseFfn(b, i);
  }
  return b.parts();
}

/** qwen3moe: QK-norm, every layer MoE (softmax top-k, weights renormalized over the top k). */
function buildQwen3Moe(o: Resolved): ModelParts {
  if (o.nExpert === 0) throw new RangeError('qwen3moe needs nExpert > 0');
  const b = new Builder(o);
  baseMetadata(b, 'qwen3moe');
  b.meta('qwen3moe.expert_feed_forward_length', { type: 'u32', value: o.nFfExp });
  spmTokenizer(b);
  embeddings(b);
  for (let i = 0; i < o.nLayer; i++) {
    attention(b, i, { qkNorm: true });
    moeFfn(b, i);
  }
  return b.parts();
}

const ARCHES = {
  llama: buildLlama,
  qwen2: buildQwen2,
  qwen3moe: buildQwen3Moe,
} satisfies Record<string, (o: Resolved) => ModelParts>;

// ============================================================================================
// Entry points
// ============================================================================================

/**
 * The metadata and weights {@link makeModel} writes, without writing them (for tools that encode
 * the same weights differently, e.g. a quantizer).
 */
export function makeModelParts(options: MakeModelOptions): { metadata: [string, GgufValue][]; weights: SyntheticWeight[] } {
  const o = resolve(options);
  return ARCHES[o.arch](o);
}

/** The GGUF write spec for a synthetic model; tensor data is generated lazily as it streams. */
export function makeModelSpec(options: MakeModelOptions): GgufWriteSpec {
  const { metadata, weights } = makeModelParts(options);
  return {
    metadata,
    tensors: weights.map((w) => ({
      name: w.name,
      type: w.type,
      shape: w.shape,
      data: () => (w.type === 'F16' ? encodeF16(w.values()) : encodeF32(w.values())),
    })),
  };
}

/** Write a seeded random-weight GGUF to `options.out` (atomically) and say where things landed. */
export async function makeModel(options: MakeModelOptions): Promise<GgufWriteResult & { path: string }> {
  const result = await writeGguf(options.out, makeModelSpec(options));
  return { ...result, path: options.out };
}

// ============================================================================================
// Seeded randomness: xoshiro128** per tensor, seeded from (seed, name) via FNV-1a + splitmix32
// ============================================================================================

function hashSeed(seed: number, name: string): number {
  let h = 0x811c9dc5 ^ (seed >>> 0);
  h = Math.imul(h, 0x01000193);
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

class Rng {
  private s = new Uint32Array(4);
  private spare: number | null = null;

  constructor(seed: number) {
    let z = seed >>> 0;
    for (let i = 0; i < 4; i++) {
      // splitmix32
      z = (z + 0x9e3779b9) >>> 0;
      let t = z ^ (z >>> 16);
      t = Math.imul(t, 0x21f0aaad);
      t ^= t >>> 15;
      t = Math.imul(t, 0x735a2d97);
      this.s[i] = (t ^ (t >>> 15)) >>> 0;
    }
  }

  /** Uniform u32. */
  next(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** Uniform in (0, 1). */
  uniform(): number {
    return ((this.next() >>> 8) + 0.5) / 16777216;
  }

  /** Standard normal (Box-Muller). */
  normal(): number {
    if (this.spare !== null) {
      const v = this.spare;
      this.spare = null;
      return v;
    }
    const r = Math.sqrt(-2 * Math.log(this.uniform()));
    const a = 2 * Math.PI * this.uniform();
    this.spare = r * Math.sin(a);
    return r * Math.cos(a);
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

// ============================================================================================
// CLI
// ============================================================================================

const CLI_OPTIONS = {
  arch: { type: 'string' },
  out: { type: 'string' },
  seed: { type: 'string' },
  type: { type: 'string' },
  'n-embd': { type: 'string' },
  'n-layer': { type: 'string' },
  'n-head': { type: 'string' },
  'n-head-kv': { type: 'string' },
  'n-ff': { type: 'string' },
  'n-vocab': { type: 'string' },
  'n-expert': { type: 'string' },
  'n-expert-used': { type: 'string' },
  'n-ff-exp': { type: 'string' },
  tied: { type: 'boolean' },
  'output-scale': { type: 'string' },
  'context-length': { type: 'string' },
  'rope-freq-base': { type: 'string' },
  'rms-eps': { type: 'string' },
  help: { type: 'boolean' },
} as const;

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: CLI_OPTIONS, strict: true });
  if (values.help || !values.arch || !values.out) {
    console.log(`usage: make-model --arch ${Object.keys(ARCHES).join('|')} --out FILE.gguf [--seed N] [--type f32|f16] [--n-embd N] ` +
      '[--n-layer N] [--n-head N] [--n-head-kv N] [--n-ff N] [--n-vocab N] [--n-expert N] ' +
      '[--n-expert-used N] [--n-ff-exp N] [--tied] [--output-scale X] [--context-length N] ' +
      '[--rope-freq-base X] [--rms-eps X]');
    process.exitCode = values.help ? 0 : 2;
    return;
  }
  const num = (flag: keyof typeof values): number | undefined => {
    const v = values[flag];
    if (v === undefined) return undefined;
    const n = Number(v);
    if (typeof v !== 'string' || v.trim() === '' || !Number.isFinite(n)) {
      throw new TypeError(`Expected a number for --${flag} but received '${String(v)}'`);
    }
    return n;
  };
  const result = await makeModel({
    arch: values.arch as MakeModelArch,
    out: values.out,
    seed: num('seed'),
    type: values.type as 'f32' | 'f16' | undefined,
    nEmbd: num('n-embd'),
    nLayer: num('n-layer'),
    nHead: num('n-head'),
    nHeadKv: num('n-head-kv'),
    nFf: num('n-ff'),
    nVocab: num('n-vocab'),
    nExpert: num('n-expert'),
    nExpertUsed: num('n-expert-used'),
    nFfExp: num('n-ff-exp'),
    tiedEmbeddings: values.tied,
    outputScale: num('output-scale'),
    contextLength: num('context-length'),
    ropeFreqBase: num('rope-freq-base'),
    rmsEps: num('rms-eps'),
  });
  console.log(`wrote ${result.path}: ${result.tensors.length} tensors, ${result.byteSize} bytes`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    console.error(`make-model: ${(err as Error).message}`);
    process.exitCode = 1;
  });
}
