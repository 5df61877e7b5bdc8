// make-model: seeded random-weight GGUF files that llama.cpp loads, one small builder per
// architecture.
//
//   npx tsx scripts/make-model.ts --arch llama|qwen2|qwen3moe|qwen2moe|olmoe|bailingmoe2|deepseek2
//       --out /tmp/m.gguf [--seed 1] [--type f32|f16] [--n-embd 256] [--n-layer 2] [--n-head 8]
//       [--n-head-kv 4] [--n-ff 512] [--n-vocab 512] [--tokenizer spm|bpe] [--n-expert 4 --n-expert-used 2 [--n-ff-exp 256]]
//       [--tied] [--output-scale 4] [--context-length 2048] [--rope-freq-base 10000] [--rms-eps 1e-5]
//       (MoE routing, MLA and RoPE-scaling options: see --help and MakeModelOptions)
//
// Every tensor's values come from its own generator seeded by (seed, tensor name), so a tensor does
// not change when others are added, and data is produced lazily while the file streams out.
//
// Conditioning, so a comparison against llama.cpp is meaningful: token embeddings are N(0, 1) and
// every projection N(0, 1/fan_in), which keeps activations O(1) through the layers; norm weights
// are 1 + N(0, 0.1²); the output projection is scaled by `outputScale` (logits ~ N(0, outputScale²))
// so the top-1 usually leads the runner-up by a clear margin.
//
// Routing is conditioned so that no expert choice is a near-tie (DESIGN.md, "Well-conditioned
// synthetic models"): the last `routerChannels` hidden channels are written only by the token
// embedding (every matrix that adds to the residual stream has zero rows there) and read only by the
// routers (every other reader has zero columns there, and routers read nothing else). So a token's
// router input is its own embedding, RMS-normalized: its expert choice depends on the token alone.
// Each token's reserved channels are then resampled until, at every MoE layer, its top-k (and its
// expert groups) lead the runners-up by a clear margin over a range of normalization scales, so
// neither rounding nor quantizing the embedding can flip a choice.
//
// Adding an architecture: write a `build<Arch>` function from the shared blocks below (attention,
// dense FFN, MoE FFN, embeddings, tokenizer) and register it in ARCHES.

import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';

import {
  encodeF16,
  encodeF32,
  float16BitsToFloat32,
  float32ToFloat16Bits,
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

/** How router logits become expert probabilities (GGUF `expert_gating_func`: 1 softmax, 2 sigmoid). */
export type ExpertGating = 'softmax' | 'sigmoid';

/**
 * Options for {@link makeModel}; every shape option has a small default (a file of a few MB). Options
 * an architecture does not have (e.g. `qLoraRank` for llama) are ignored by it.
 */
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
  /** Number of layers, not counting next-token-prediction layers (default 2; bailingmoe2, deepseek2: 3). */
  nLayer?: number;
  /** Query heads (default 8; bailingmoe2, deepseek2: 4). */
  nHead?: number;
  /** Key/value heads (default 4: grouped-query attention; olmoe: nHead; deepseek2: 1, the MLA latent). */
  nHeadKv?: number;
  /** Dense FFN width (default 512). */
  nFf?: number;
  /** Vocabulary size, at least 260 (default 512). */
  nVocab?: number;
  /** Tokenizer: a SentencePiece vocabulary (`'spm'`, default) or a byte-level BPE one with merges (`'bpe'`, pre-tokenizer qwen2). */
  tokenizer?: 'spm' | 'bpe';
  /** Experts per MoE layer; 0 = dense (default 0; qwen2moe, olmoe, bailingmoe2, deepseek2: 8). */
  nExpert?: number;
  /** Experts used per token (default 2 when nExpert > 0). */
  nExpertUsed?: number;
  /** Expert FFN width (default nFf; 256 for the MoE-only architectures). For llama (Mixtral) and olmoe it is written as feed_forward_length. */
  nFfExp?: number;
  /** Tie the output projection to token_embd (no output.weight). Default false. */
  tiedEmbeddings?: boolean;
  /** Standard deviation of the logits, roughly (default 4). */
  outputScale?: number;
  contextLength?: number;
  ropeFreqBase?: number;
  rmsEps?: number;

  // ---- routing (MoE architectures) ----
  /** Hidden channels reserved for routing (see the file comment); default 32 when nExpert > 0, 0 = off. */
  routerChannels?: number;
  /** Margin a token's routing must keep, in standard deviations of its expert scores (default 0.15). */
  routerMargin?: number;
  /** Shared experts (bailingmoe2, deepseek2; default 1). qwen2moe always has one, of width nFfShexp. */
  nExpertShared?: number;
  /** Width of one shared expert (qwen2moe: default 512; bailingmoe2: default nFfExp, written as expert_shared_feed_forward_length). */
  nFfShexp?: number;
  /** Expert groups for group-limited top-k (0 = off; bailingmoe2, deepseek2 default 4). */
  nExpertGroups?: number;
  /** Groups a token may choose experts from (default 2). */
  nExpertGroupsUsed?: number;
  /** Gating function (bailingmoe2, deepseek2; default 'sigmoid'). */
  expertGating?: ExpertGating;
  /** Write `exp_probs_b.bias`, a per-expert bias used for selection only (bailingmoe2, deepseek2; default true). */
  expertSelectionBias?: boolean;
  /** Renormalize the top-k weights (bailingmoe2, deepseek2: expert_weights_norm; default true). */
  expertWeightsNorm?: boolean;
  /** Multiply the routing weights by this (expert_weights_scale; 0 = not written; default 2.5 for bailingmoe2, deepseek2). */
  expertWeightsScale?: number;
  /** Leading dense layers (bailingmoe2, deepseek2; default 1). */
  nLayerDenseLead?: number;
  /** Next-token-prediction layers appended after nLayer (bailingmoe2; default 1): in the file, not in the forward pass. */
  nNextn?: number;

  // ---- attention ----
  /** Rotated dimensions per head, rope.dimension_count (default: the head size; bailingmoe2: half of it; deepseek2: the decoupled RoPE key, 32). */
  nRot?: number;
  /** deepseek2: rank of the compressed query; 0 = a plain attn_q (V2-Lite). Default 256. */
  qLoraRank?: number;
  /** deepseek2: rank of the compressed (cached) key/value latent. Default 256. */
  kvLoraRank?: number;
  /** deepseek2: per-head key dimensions without RoPE. Default 64. */
  qkNopeHeadDim?: number;
  /** deepseek2: per-head value dimensions. Default 64. */
  vHeadDim?: number;
  /** YaRN context extension factor (rope.scaling.*); 0 = none. Default 4 for deepseek2, else 0. */
  yarnFactor?: number;
  /** YaRN's original training context (rope.scaling.original_context_length). Default 512. */
  yarnOrigContext?: number;
  /** YaRN mscale_all_dim (deepseek2 writes 0.1 × it as rope.scaling.yarn_log_multiplier). Default 1. */
  yarnMscaleAllDim?: number;
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
  tokenizer: 'spm',
  nExpert: 0,
  nExpertUsed: 0,
  nFfExp: 0,
  tiedEmbeddings: false,
  outputScale: 4,
  contextLength: 2048,
  ropeFreqBase: 10000,
  rmsEps: 1e-5,
  routerChannels: -1, // -1: 32 when the model has experts
  routerMargin: 0.15,
  nExpertShared: 1,
  nFfShexp: 0,
  nExpertGroups: 0,
  nExpertGroupsUsed: 2,
  expertGating: 'softmax',
  expertSelectionBias: false,
  expertWeightsNorm: false,
  expertWeightsScale: 0,
  nLayerDenseLead: 0,
  nNextn: 0,
  nRot: 0, // 0: the head size
  qLoraRank: 256,
  kvLoraRank: 256,
  qkNopeHeadDim: 64,
  vHeadDim: 64,
  yarnFactor: 0,
  yarnOrigContext: 512,
  yarnMscaleAllDim: 1,
};

/** Per-architecture defaults, between DEFAULTS and the caller's options. */
const ARCH_DEFAULTS: Partial<Record<string, Partial<Resolved>>> = {
  qwen2moe: { nExpert: 8, nFfExp: 256, nFfShexp: 512 },
  olmoe: { nExpert: 8, nFfExp: 256, nHeadKv: 8 },
  bailingmoe2: {
    nLayer: 3, nHead: 4, nHeadKv: 2, nRot: 32, nExpert: 8, nFfExp: 256, nExpertGroups: 4, expertGating: 'sigmoid',
    expertSelectionBias: true, expertWeightsNorm: true, expertWeightsScale: 2.5, nLayerDenseLead: 1, nNextn: 1,
  },
  deepseek2: {
    nLayer: 3, nHead: 4, nHeadKv: 1, nRot: 32, nExpert: 8, nFfExp: 256, nExpertGroups: 4, expertGating: 'sigmoid',
    expertSelectionBias: true, expertWeightsNorm: true, expertWeightsScale: 2.5, nLayerDenseLead: 1, yarnFactor: 4,
  },
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
  const o = { ...DEFAULTS, ...ARCH_DEFAULTS[options.arch], ...defined } as Resolved;
  if (o.nExpert > 0) {
    if (o.nExpertUsed === 0) o.nExpertUsed = Math.min(2, o.nExpert);
    if (o.nFfExp === 0) o.nFfExp = o.nFf;
  }
  if (o.routerChannels === -1) o.routerChannels = o.nExpert > 0 ? 32 : 0;
  if (o.nFfShexp === 0) o.nFfShexp = o.nFfExp;
  for (const key of ['nEmbd', 'nLayer', 'nHead', 'nHeadKv', 'nFf', 'nVocab', 'contextLength'] as const) {
    if (!Number.isSafeInteger(o[key]) || o[key] <= 0) {
      throw new RangeError(`Expected a positive integer for ${key} but received ${String(o[key])} (${typeof o[key]})`);
    }
  }
  for (const key of ['nExpert', 'nExpertUsed', 'nFfExp', 'routerChannels', 'nExpertShared', 'nFfShexp', 'nExpertGroups',
    'nExpertGroupsUsed', 'nLayerDenseLead', 'nNextn', 'nRot', 'qLoraRank', 'kvLoraRank', 'qkNopeHeadDim', 'vHeadDim', 'yarnOrigContext'] as const) {
    if (!Number.isSafeInteger(o[key]) || o[key] < 0) {
      throw new RangeError(`Expected a non-negative integer for ${key} but received ${String(o[key])} (${typeof o[key]})`);
    }
  }
  if (o.type !== 'f32' && o.type !== 'f16') throw new TypeError(`Expected type 'f32' or 'f16' but received '${String(o.type)}'`);
  if (o.expertGating !== 'softmax' && o.expertGating !== 'sigmoid') {
    throw new TypeError(`Expected expertGating 'softmax' or 'sigmoid' but received '${String(o.expertGating)}'`);
  }
  if (o.nEmbd % o.nHead !== 0) throw new RangeError(`nEmbd ${o.nEmbd} is not a multiple of nHead ${o.nHead}`);
  if (o.nHead % o.nHeadKv !== 0) throw new RangeError(`nHead ${o.nHead} is not a multiple of nHeadKv ${o.nHeadKv}`);
  if (o.nRot === 0) o.nRot = o.nEmbd / o.nHead;
  if (o.tokenizer !== 'spm' && o.tokenizer !== 'bpe') throw new TypeError(`Expected tokenizer 'spm' or 'bpe' but received '${String(o.tokenizer)}'`);
  if (o.nVocab < MIN_VOCAB) throw new RangeError(`nVocab must be at least ${MIN_VOCAB} but is ${o.nVocab}`);
  if (o.nExpert > 0 && (o.nExpertUsed < 1 || o.nExpertUsed > o.nExpert)) {
    throw new RangeError(`nExpertUsed must be in [1, nExpert = ${o.nExpert}] but is ${o.nExpertUsed}`);
  }
  if (o.routerChannels >= o.nEmbd) throw new RangeError(`routerChannels ${o.routerChannels} must be less than nEmbd ${o.nEmbd}`);
  if (o.nExpertGroups > 1) {
    // llama.cpp's loader asserts these; group scores are the sum of each group's top 2.
    if (o.nExpert % o.nExpertGroups !== 0 || o.nExpert / o.nExpertGroups < 2) {
      throw new RangeError(`nExpert ${o.nExpert} must be a multiple of nExpertGroups ${o.nExpertGroups} with at least 2 experts a group`);
    }
    if (o.nExpertGroupsUsed < 1 || o.nExpertGroupsUsed >= o.nExpertGroups) {
      throw new RangeError(`nExpertGroupsUsed must be in [1, nExpertGroups = ${o.nExpertGroups}) but is ${o.nExpertGroupsUsed}`);
    }
    if (o.nExpertUsed > o.nExpertGroupsUsed * (o.nExpert / o.nExpertGroups)) {
      throw new RangeError(`nExpertUsed ${o.nExpertUsed} exceeds the experts of nExpertGroupsUsed ${o.nExpertGroupsUsed} groups`);
    }
  }
  if (!Number.isSafeInteger(o.nRot) || o.nRot % 2 !== 0) throw new RangeError(`nRot must be an even integer but is ${o.nRot}`);
  return o;
}

// ============================================================================================
// Weights: a name, a shape (ne0 first), how to fill it, and its storage type
// ============================================================================================

type Init =
  | { kind: 'normal'; std: number } // N(0, std²)
  | { kind: 'norm' }; // 1 + N(0, 0.1²): an RMSNorm weight

/**
 * How a tensor meets the reserved router channels (the last `routerChannels` of the hidden size):
 * 'reads' = ne0 is the residual stream (its reserved columns are zeroed), 'writes' = ne1 is the
 * residual stream (its reserved rows are zeroed), 'router' = reads only the reserved channels.
 */
type StreamRole = 'reads' | 'writes' | 'router';

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

/** One MoE layer's routing, as the token conditioner needs it. */
interface RouterSpec {
  layer: number;
  /** `blk.N.ffn_gate_inp.weight`: (n_expert, n_embd). */
  router: string;
  /** The RMSNorm weight applied to the router's input. */
  norm: string;
  /** `blk.N.exp_probs_b.bias`, or null. */
  bias: string | null;
  gating: ExpertGating;
  nExpertUsed: number;
  nGroups: number;
  nGroupsUsed: number;
}

/** Everything a builder needs: resolved options and a weight factory. */
class Builder {
  readonly metadata: [string, GgufValue][] = [];
  readonly weights: SyntheticWeight[] = [];
  readonly routers: RouterSpec[] = [];
  constructor(readonly o: Resolved) {}

  meta(key: string, value: GgufValue): void {
    this.metadata.push([key, value]);
  }

  u32(key: string, value: number): void {
    this.meta(key, { type: 'u32', value });
  }

  f32meta(key: string, value: number): void {
    this.meta(key, { type: 'f32', value });
  }

  /** A matrix or embedding: stored as the model's type. */
  matrix(name: string, shape: number[], std: number, role?: StreamRole): void {
    this.add(name, shape, { kind: 'normal', std }, this.o.type === 'f16' ? 'F16' : 'F32', role);
  }

  /** A vector or a router: always F32 (as llama.cpp's converters keep them). */
  f32(name: string, shape: number[], init: Init, role?: StreamRole): void {
    this.add(name, shape, init, 'F32', role);
  }

  private add(name: string, shape: number[], init: Init, type: 'F32' | 'F16', role?: StreamRole): void {
    const seed = hashSeed(this.o.seed, name);
    const n = shape.reduce((a, b) => a * b, 1);
    const reserved = this.o.routerChannels;
    const first = this.o.nEmbd - reserved;
    const values = (): Float32Array => {
      const out = fill(n, init, seed);
      if (role === undefined || reserved === 0) return out;
      const ne0 = shape[0]!;
      const ne1 = shape[1] ?? 1;
      for (let i = 0; i < n; i++) {
        const i0 = i % ne0;
        const stream = role === 'writes' ? Math.floor(i / ne0) % ne1 : i0;
        if ((stream >= first) !== (role === 'router')) out[i] = 0;
      }
      return out;
    };
    this.weights.push({ name, shape, type, values });
  }

  parts(): ModelParts {
    if (this.routers.length > 0 && this.o.routerChannels > 0) conditionEmbeddings(this);
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
// Routing conditioner: resample each token's reserved channels until its routing is clear
// ============================================================================================

/** Router input scales tried, relative to 1/RMS(token embedding): the residual stream grows. */
const ROUTER_SCALES = [1.25, 1, 0.8, 0.6, 0.45, 0.35];
const MAX_RESAMPLES = 2000;

/** Replace token_embd's values() by one that resamples reserved channels until routing is clear. */
function conditionEmbeddings(b: Builder): void {
  const o = b.o;
  const index = b.weights.findIndex((w) => w.name === 'token_embd.weight');
  const embd = b.weights[index]!;
  const byName = (name: string): Float32Array => b.weights.find((w) => w.name === name)!.values();
  const nEmbd = o.nEmbd;
  const first = nEmbd - o.routerChannels;
  const seed = hashSeed(o.seed, 'token_embd.weight#router');
  const values = (): Float32Array => {
    const e = embd.values();
    // Each router as (n_expert × reserved) weights times the reserved part of its norm weight.
    const routers = b.routers.map((r) => {
      const w = byName(r.router);
      const g = byName(r.norm);
      const nExpert = w.length / nEmbd;
      const m = new Float64Array(nExpert * o.routerChannels);
      for (let x = 0; x < nExpert; x++) {
        for (let j = 0; j < o.routerChannels; j++) m[x * o.routerChannels + j] = w[x * nEmbd + first + j]! * g[first + j]!;
      }
      return { ...r, nExpert, m, bias: r.bias === null ? null : byName(r.bias) };
    });
    const rng = new Rng(seed);
    const roundTrip = o.type === 'f16' ? (v: number) => float16BitsToFloat32(float32ToFloat16Bits(v)) : Math.fround;
    for (let t = 0; t < o.nVocab; t++) {
      const row = e.subarray(t * nEmbd, (t + 1) * nEmbd);
      let tries = 0;
      while (!routingIsClear(row, first, routers, o.routerMargin)) {
        if (++tries > MAX_RESAMPLES) {
          throw new Error(`make-model: no clear routing for token ${t} after ${MAX_RESAMPLES} resamples (lower routerMargin)`);
        }
        for (let j = first; j < nEmbd; j++) row[j] = roundTrip(rng.normal());
      }
    }
    return e;
  };
  b.weights[index] = { ...embd, values };
}

type ConditionedRouter = Omit<RouterSpec, 'bias'> & { nExpert: number; m: Float64Array; bias: Float32Array | null };

/** True when `row`'s routing is the same, with a margin, at every layer and every scale. */
function routingIsClear(row: Float32Array, first: number, routers: ConditionedRouter[], margin: number): boolean {
  let sumSq = 0;
  for (let j = 0; j < row.length; j++) sumSq += row[j]! * row[j]!;
  const s0 = 1 / Math.sqrt(sumSq / row.length);
  const nReserved = row.length - first;
  for (const r of routers) {
    let decision: string | null = null;
    for (const f of ROUTER_SCALES) {
      const logits = new Float64Array(r.nExpert);
      for (let x = 0; x < r.nExpert; x++) {
        let acc = 0;
        for (let j = 0; j < nReserved; j++) acc += r.m[x * nReserved + j]! * row[first + j]!;
        logits[x] = acc * s0 * f;
      }
      const d = routeWithMargin(logits, r, margin);
      if (d === null || (decision !== null && d !== decision)) return false;
      decision = d;
    }
  }
  return true;
}

/**
 * llama.cpp's selection (build_moe_ffn): probabilities, plus the selection bias; with groups, keep
 * the nGroupsUsed groups whose two best scores sum highest; then the top k. Returns the chosen set
 * as a string, or null if a group or top-k boundary is closer than `margin` standard deviations.
 */
function routeWithMargin(logits: Float64Array, r: ConditionedRouter, margin: number): string | null {
  const n = logits.length;
  const score = new Float64Array(n);
  if (r.gating === 'softmax') {
    const max = Math.max(...logits);
    let sum = 0;
    for (let x = 0; x < n; x++) sum += (score[x] = Math.exp(logits[x]! - max));
    for (let x = 0; x < n; x++) score[x]! /= sum;
  } else {
    for (let x = 0; x < n; x++) score[x] = 1 / (1 + Math.exp(-logits[x]!));
  }
  if (r.bias) for (let x = 0; x < n; x++) score[x]! += r.bias[x]!;
  let mean = 0;
  for (const v of score) mean += v / n;
  let variance = 0;
  for (const v of score) variance += (v - mean) ** 2 / n;
  const delta = margin * Math.sqrt(variance);

  let eligible = Array.from(score.keys());
  let groupKey = '';
  if (r.nGroups > 1) {
    const per = n / r.nGroups;
    const groupScore = Array.from({ length: r.nGroups }, (_, g) => {
      const top = Array.from(score.subarray(g * per, (g + 1) * per)).sort((a, b) => b - a);
      return top[0]! + top[1]!;
    });
    const order = Array.from(groupScore.keys()).sort((a, b) => groupScore[b]! - groupScore[a]!);
    if (groupScore[order[r.nGroupsUsed - 1]!]! - groupScore[order[r.nGroupsUsed]!]! < delta) return null;
    const used = new Set(order.slice(0, r.nGroupsUsed));
    eligible = eligible.filter((x) => used.has(Math.floor(x / per)));
    groupKey = `${[...used].sort((a, b) => a - b).join(',')}|`;
  }
  const ranked = eligible.sort((a, b) => score[b]! - score[a]!);
  const k = r.nExpertUsed;
  if (k < ranked.length && score[ranked[k - 1]!]! - score[ranked[k]!]! < delta) return null;
  return groupKey + ranked.slice(0, k).sort((a, b) => a - b).join(',');
}

// ============================================================================================
// Shared blocks
// ============================================================================================

/** Keys a builder may override in {@link baseMetadata}. */
interface BaseMetadataOptions {
  /** feed_forward_length (default nFf). */
  feedForwardLength?: number;
  /** block_count (default nLayer). */
  blockCount?: number;
}

/**
 * general.* and the <arch>.* hyperparameters every llama-like model has. `feedForwardLength` is
 * the dense FFN width, except for llama-MoE (Mixtral) and olmoe, where llama.cpp reads the expert
 * width from the same key.
 */
function baseMetadata(b: Builder, arch: string, opts: BaseMetadataOptions = {}): void {
  const o = b.o;
  b.meta('general.architecture', arch);
  b.meta('general.name', `moerun synthetic ${arch} (seed ${o.seed})`);
  b.u32('general.file_type', o.type === 'f16' ? 1 : 0); // LLAMA_FTYPE_ALL_F32 / MOSTLY_F16
  b.u32(`${arch}.vocab_size`, o.nVocab);
  b.u32(`${arch}.context_length`, o.contextLength);
  b.u32(`${arch}.embedding_length`, o.nEmbd);
  b.u32(`${arch}.block_count`, opts.blockCount ?? o.nLayer);
  b.u32(`${arch}.feed_forward_length`, opts.feedForwardLength ?? o.nFf);
  b.u32(`${arch}.attention.head_count`, o.nHead);
  b.u32(`${arch}.attention.head_count_kv`, o.nHeadKv);
  b.u32(`${arch}.rope.dimension_count`, o.nRot);
  b.f32meta(`${arch}.rope.freq_base`, o.ropeFreqBase);
  b.f32meta(`${arch}.attention.layer_norm_rms_epsilon`, o.rmsEps);
  if (o.nExpert > 0) {
    b.u32(`${arch}.expert_count`, o.nExpert);
    b.u32(`${arch}.expert_used_count`, o.nExpertUsed);
  }
}

/**
 * The routing keys of bailingmoe2 and deepseek2: shared experts, weight normalization and scale,
 * gating function and expert groups.
 */
function routingMetadata(b: Builder, arch: string): void {
  const o = b.o;
  b.u32(`${arch}.leading_dense_block_count`, o.nLayerDenseLead);
  b.u32(`${arch}.expert_feed_forward_length`, o.nFfExp);
  b.u32(`${arch}.expert_shared_count`, o.nExpertShared);
  if (o.expertWeightsScale !== 0) b.f32meta(`${arch}.expert_weights_scale`, o.expertWeightsScale);
  if (o.expertWeightsNorm) b.meta(`${arch}.expert_weights_norm`, true);
  b.u32(`${arch}.expert_gating_func`, o.expertGating === 'softmax' ? 1 : 2);
  if (o.nExpertGroups > 1) {
    b.u32(`${arch}.expert_group_count`, o.nExpertGroups);
    b.u32(`${arch}.expert_group_used_count`, o.nExpertGroupsUsed);
  }
}

/** rope.scaling.* for YaRN, when yarnFactor > 0 (as convert_hf_to_gguf writes them for DeepSeek). */
function yarnMetadata(b: Builder, arch: string): void {
  const o = b.o;
  if (o.yarnFactor <= 0) return;
  b.meta(`${arch}.rope.scaling.type`, 'yarn');
  b.f32meta(`${arch}.rope.scaling.factor`, o.yarnFactor);
  b.u32(`${arch}.rope.scaling.original_context_length`, o.yarnOrigContext);
  b.f32meta(`${arch}.rope.scaling.yarn_log_multiplier`, 0.1 * o.yarnMscaleAllDim);
}

/** token_embd, output_norm and (unless tied) output. */
function embeddings(b: Builder): void {
  const o = b.o;
  const outStd = o.outputScale / Math.sqrt(o.nEmbd);
  // Tied: the embedding doubles as the output projection, so give it the output's scale; the
  // first RMSNorm makes the residual stream's scale irrelevant to layer 0.
  b.matrix('token_embd.weight', [o.nEmbd, o.nVocab], o.tiedEmbeddings ? outStd : 1);
  b.f32('output_norm.weight', [o.nEmbd], { kind: 'norm' });
  if (!o.tiedEmbeddings) b.matrix('output.weight', [o.nEmbd, o.nVocab], outStd, 'reads');
}

/** Attention variants: Q/K/V biases (qwen2), QK-norm per head (qwen3moe) or over all heads (olmoe), fused QKV (bailingmoe2). */
interface AttentionOptions {
  bias?: boolean;
  qkNorm?: 'head' | 'full';
  fusedQkv?: boolean;
}

/** attn_norm, attn_q/k/v (or attn_qkv) and attn_output of layer `i`, with optional biases and QK-norm. */
function attention(b: Builder, i: number, opts: AttentionOptions = {}): void {
  const o = b.o;
  const headDim = o.nEmbd / o.nHead;
  const std = 1 / Math.sqrt(o.nEmbd);
  b.f32(`blk.${i}.attn_norm.weight`, [o.nEmbd], { kind: 'norm' });
  if (opts.fusedQkv) {
    // (n_head*head_dim + 2*n_head_kv*head_dim, n_embd): Q, K, V rows in that order
    b.matrix(`blk.${i}.attn_qkv.weight`, [o.nEmbd, (o.nHead + 2 * o.nHeadKv) * headDim], std, 'reads');
  } else {
    b.matrix(`blk.${i}.attn_q.weight`, [o.nEmbd, o.nHead * headDim], std, 'reads'); // (n_head*head_dim, n_embd)
    b.matrix(`blk.${i}.attn_k.weight`, [o.nEmbd, o.nHeadKv * headDim], std, 'reads'); // (n_head_kv*head_dim, n_embd)
    b.matrix(`blk.${i}.attn_v.weight`, [o.nEmbd, o.nHeadKv * headDim], std, 'reads');
  }
  if (opts.bias) {
    // Biases of the size of the projected values' spread, so they visibly move the logits.
    b.f32(`blk.${i}.attn_q.bias`, [o.nHead * headDim], { kind: 'normal', std: 0.5 });
    b.f32(`blk.${i}.attn_k.bias`, [o.nHeadKv * headDim], { kind: 'normal', std: 0.5 });
    b.f32(`blk.${i}.attn_v.bias`, [o.nHeadKv * headDim], { kind: 'normal', std: 0.5 });
  }
  if (opts.qkNorm) {
    const qDim = opts.qkNorm === 'head' ? headDim : o.nHead * headDim;
    const kDim = opts.qkNorm === 'head' ? headDim : o.nHeadKv * headDim;
    b.f32(`blk.${i}.attn_q_norm.weight`, [qDim], { kind: 'norm' });
    b.f32(`blk.${i}.attn_k_norm.weight`, [kDim], { kind: 'norm' });
  }
  b.matrix(`blk.${i}.attn_output.weight`, [o.nHead * headDim, o.nEmbd], 1 / Math.sqrt(o.nHead * headDim), 'writes');
}

/** ffn_norm and a dense SwiGLU FFN of layer `i`. */
function denseFfn(b: Builder, i: number): void {
  const o = b.o;
  b.f32(`blk.${i}.ffn_norm.weight`, [o.nEmbd], { kind: 'norm' });
  b.matrix(`blk.${i}.ffn_gate.weight`, [o.nEmbd, o.nFf], 1 / Math.sqrt(o.nEmbd), 'reads'); // (n_ff, n_embd)
  b.matrix(`blk.${i}.ffn_up.weight`, [o.nEmbd, o.nFf], 1 / Math.sqrt(o.nEmbd), 'reads');
  b.matrix(`blk.${i}.ffn_down.weight`, [o.nFf, o.nEmbd], 1 / Math.sqrt(o.nFf), 'writes'); // (n_embd, n_ff)
}

/** MoE variants: selection bias (exp_probs_b), shared experts, the routing a builder conditions for. */
interface MoeOptions {
  gating?: ExpertGating;
  selectionBias?: boolean;
  groups?: boolean;
  /** Shared-expert width (0 = none). */
  nFfShexp?: number;
  /** qwen2moe: a sigmoid gate on the shared expert. */
  shexpGate?: boolean;
}

/** ffn_norm, router and stacked SwiGLU experts of layer `i` (Mixtral naming), plus options. */
function moeFfn(b: Builder, i: number, opts: MoeOptions = {}, route = true): void {
  const o = b.o;
  b.f32(`blk.${i}.ffn_norm.weight`, [o.nEmbd], { kind: 'norm' });
  // The router reads only the reserved channels (if any): logits ~ N(0, 2²) for an O(1) input.
  const routerStd = o.routerChannels > 0 ? 2 / Math.sqrt(o.routerChannels) : 1 / Math.sqrt(o.nEmbd);
  b.f32(`blk.${i}.ffn_gate_inp.weight`, [o.nEmbd, o.nExpert], { kind: 'normal', std: routerStd }, 'router'); // (n_expert, n_embd)
  if (opts.selectionBias) {
    // Selection-only bias of the size of the sigmoid scores' spread, so it changes some choices.
    b.f32(`blk.${i}.exp_probs_b.bias`, [o.nExpert], { kind: 'normal', std: 0.2 });
  }
  b.matrix(`blk.${i}.ffn_gate_exps.weight`, [o.nEmbd, o.nFfExp, o.nExpert], 1 / Math.sqrt(o.nEmbd), 'reads'); // (n_expert, n_ff_exp, n_embd)
  b.matrix(`blk.${i}.ffn_up_exps.weight`, [o.nEmbd, o.nFfExp, o.nExpert], 1 / Math.sqrt(o.nEmbd), 'reads');
  b.matrix(`blk.${i}.ffn_down_exps.weight`, [o.nFfExp, o.nEmbd, o.nExpert], 1 / Math.sqrt(o.nFfExp), 'writes'); // (n_expert, n_embd, n_ff_exp)
  const nFfShexp = opts.nFfShexp ?? 0;
  if (nFfShexp > 0) {
    if (opts.shexpGate) b.f32(`blk.${i}.ffn_gate_inp_shexp.weight`, [o.nEmbd], { kind: 'normal', std: 1 / Math.sqrt(o.nEmbd) }, 'reads');
    b.matrix(`blk.${i}.ffn_gate_shexp.weight`, [o.nEmbd, nFfShexp], 1 / Math.sqrt(o.nEmbd), 'reads'); // (n_ff_shexp, n_embd)
    b.matrix(`blk.${i}.ffn_up_shexp.weight`, [o.nEmbd, nFfShexp], 1 / Math.sqrt(o.nEmbd), 'reads');
    b.matrix(`blk.${i}.ffn_down_shexp.weight`, [nFfShexp, o.nEmbd], 1 / Math.sqrt(nFfShexp), 'writes'); // (n_embd, n_ff_shexp)
  }
  if (route) {
    b.routers.push({
      layer: i,
      router: `blk.${i}.ffn_gate_inp.weight`,
      norm: `blk.${i}.ffn_norm.weight`,
      bias: opts.selectionBias ? `blk.${i}.exp_probs_b.bias` : null,
      gating: opts.gating ?? 'softmax',
      nExpertUsed: o.nExpertUsed,
      nGroups: opts.groups ? o.nExpertGroups : 0,
      nGroupsUsed: o.nExpertGroupsUsed,
    });
  }
}

/** The MoE block of bailingmoe2 and deepseek2, driven by the routing options. */
function routedMoeFfn(b: Builder, i: number, route = true): void {
  const o = b.o;
  moeFfn(b, i, {
    gating: o.expertGating,
    selectionBias: o.expertSelectionBias,
    groups: o.nExpertGroups > 1,
    nFfShexp: o.nFfShexp * o.nExpertShared,
  }, route);
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
  // Filler pieces: two letters, then "▁" + two letters + the base-20 digits of c (unique for
  // every i, so any vocabulary size terminates).
  const n = letters.length;
  for (let i = 0; pieces.size < nVocab - tokens.length; i++) {
    const a = letters[i % n];
    const b2 = letters[Math.floor(i / n) % n];
    let c = Math.floor(i / (n * n));
    if (c === 0) {
      pieces.add(`${a}${b2}`);
      continue;
    }
    let piece = `▁${a}${b2}`;
    do {
      piece += letters[c % n];
      c = Math.floor(c / n);
    } while (c > 0);
    pieces.add(piece);
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

/**
 * A byte-level BPE vocabulary of nVocab tokens: the 256 byte characters (GPT-2's byte-to-unicode
 * map), then pieces made by merging an earlier token with one byte character (every merge a
 * `left right` pair of tokens, ranked in order), then two control tokens.
 */
export function syntheticBpeVocab(nVocab: number): { tokens: string[]; types: Int32Array; merges: string[] } {
  const byteChars: string[] = [];
  for (let byte = 0, extra = 0; byte < 256; byte++) {
    const printable = (byte >= 33 && byte <= 126) || (byte >= 161 && byte <= 172) || byte >= 174;
    byteChars.push(String.fromCharCode(printable ? byte : 256 + extra++));
  }
  // Letters and the space marker first, so the early merges look like words.
  const order = [...'etaoinshrdlucmfwypgbvkxjqz'].map((c) => c.charCodeAt(0));
  order.push(32, ...Array.from({ length: 256 }, (_, i) => i).filter((i) => i !== 32 && !order.includes(i)));
  const specials = ['<|endoftext|>', '<|im_end|>'];
  const tokens = [...byteChars];
  const merges: string[] = [];
  // tokens[a] + byteChars[r] are distinct for distinct (a, r) and never a single character.
  for (let a = 0; tokens.length < nVocab - specials.length; a++) {
    const left = tokens[a]!;
    for (const r of order) {
      if (tokens.length >= nVocab - specials.length) break;
      tokens.push(left + byteChars[r]);
      merges.push(`${left} ${byteChars[r]}`);
    }
  }
  const types = new Int32Array(nVocab).fill(TOKEN_NORMAL);
  for (const s of specials) {
    types[tokens.length] = TOKEN_CONTROL;
    tokens.push(s);
  }
  return { tokens, types, merges };
}

function writeTokenizer(b: Builder): void {
  if (b.o.tokenizer === 'bpe') {
    const { tokens, types, merges } = syntheticBpeVocab(b.o.nVocab);
    b.meta('tokenizer.ggml.model', 'gpt2');
    b.meta('tokenizer.ggml.pre', 'qwen2');
    b.meta('tokenizer.ggml.tokens', tokens);
    b.meta('tokenizer.ggml.token_type', types);
    b.meta('tokenizer.ggml.merges', merges);
    b.meta('tokenizer.ggml.bos_token_id', { type: 'u32', value: b.o.nVocab - 2 });
    b.meta('tokenizer.ggml.eos_token_id', { type: 'u32', value: b.o.nVocab - 1 });
    b.meta('tokenizer.ggml.add_bos_token', false);
    return;
  }
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
  baseMetadata(b, 'llama', { feedForwardLength: o.nExpert > 0 ? o.nFfExp : o.nFf });
  writeTokenizer(b);
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
  writeTokenizer(b);
  embeddings(b);
  for (let i = 0; i < o.nLayer; i++) {
    attention(b, i, { bias: true });
    denseFfn(b, i);
  }
  return b.parts();
}

/** qwen3moe: QK-norm per head, every layer MoE (softmax top-k, weights renormalized over the top k). */
function buildQwen3Moe(o: Resolved): ModelParts {
  if (o.nExpert === 0) throw new RangeError('qwen3moe needs nExpert > 0');
  const b = new Builder(o);
  baseMetadata(b, 'qwen3moe');
  b.u32('qwen3moe.expert_feed_forward_length', o.nFfExp);
  writeTokenizer(b);
  embeddings(b);
  for (let i = 0; i < o.nLayer; i++) {
    attention(b, i, { qkNorm: 'head' });
    moeFfn(b, i);
  }
  return b.parts();
}

/**
 * qwen2moe: Q/K/V biases; every layer MoE (softmax top-k, weights not renormalized) plus a shared
 * expert of width nFfShexp behind its own sigmoid gate (`ffn_gate_inp_shexp`, one logit a token).
 */
function buildQwen2Moe(o: Resolved): ModelParts {
  if (o.nExpert === 0) throw new RangeError('qwen2moe needs nExpert > 0');
  const b = new Builder(o);
  baseMetadata(b, 'qwen2moe');
  b.u32('qwen2moe.expert_feed_forward_length', o.nFfExp);
  b.u32('qwen2moe.expert_shared_feed_forward_length', o.nFfShexp);
  writeTokenizer(b);
  embeddings(b);
  for (let i = 0; i < o.nLayer; i++) {
    attention(b, i, { bias: true });
    moeFfn(b, i, { nFfShexp: o.nFfShexp, shexpGate: true });
  }
  return b.parts();
}

/**
 * olmoe: RMSNorm over the whole Q and the whole K projection (not per head; llama.cpp needs
 * n_head_kv = n_head for it), every layer MoE (softmax top-k, not renormalized); the expert width is
 * feed_forward_length.
 */
function buildOlmoe(o: Resolved): ModelParts {
  if (o.nExpert === 0) throw new RangeError('olmoe needs nExpert > 0');
  if (o.nHeadKv !== o.nHead) throw new RangeError(`olmoe needs nHeadKv = nHead (its K norm spans n_embd) but nHeadKv is ${o.nHeadKv}`);
  const b = new Builder(o);
  baseMetadata(b, 'olmoe', { feedForwardLength: o.nFfExp });
  writeTokenizer(b);
  embeddings(b);
  for (let i = 0; i < o.nLayer; i++) {
    attention(b, i, { qkNorm: 'full' });
    moeFfn(b, i);
  }
  return b.parts();
}

/**
 * bailingmoe2 (Ling/Ring 2.0): fused attn_qkv, per-head QK-norm, partial RoPE (nRot < head size);
 * nLayerDenseLead dense layers, then MoE layers with sigmoid (or softmax) gating, a selection-only
 * expert bias, group-limited top-k, normalized and scaled weights and shared experts; then nNextn
 * next-token-prediction layers (block_count counts them) that the forward pass skips.
 */
function buildBailingMoe2(o: Resolved): ModelParts {
  if (o.nExpert === 0) throw new RangeError('bailingmoe2 needs nExpert > 0');
  const b = new Builder(o);
  const arch = 'bailingmoe2';
  baseMetadata(b, arch, { blockCount: o.nLayer + o.nNextn });
  routingMetadata(b, arch);
  b.u32(`${arch}.expert_shared_feed_forward_length`, o.nFfShexp);
  b.u32(`${arch}.nextn_predict_layers`, o.nNextn);
  writeTokenizer(b);
  embeddings(b);
  for (let i = 0; i < o.nLayer + o.nNextn; i++) {
    attention(b, i, { fusedQkv: true, qkNorm: 'head' });
    if (i < o.nLayerDenseLead) denseFfn(b, i);
    else routedMoeFfn(b, i, i < o.nLayer);
    if (i >= o.nLayer) nextnTensors(b, i, { layerOutputNorm: true });
  }
  return b.parts();
}

/** The tensors of a next-token-prediction layer besides its transformer block (loaded, unused). */
function nextnTensors(b: Builder, i: number, opts: { layerOutputNorm?: boolean } = {}): void {
  const o = b.o;
  b.matrix(`blk.${i}.nextn.eh_proj.weight`, [2 * o.nEmbd, o.nEmbd], 1 / Math.sqrt(2 * o.nEmbd)); // (n_embd, 2*n_embd)
  b.f32(`blk.${i}.nextn.enorm.weight`, [o.nEmbd], { kind: 'norm' });
  b.f32(`blk.${i}.nextn.hnorm.weight`, [o.nEmbd], { kind: 'norm' });
  b.f32(`blk.${i}.nextn.shared_head_norm.weight`, [o.nEmbd], { kind: 'norm' });
  if (opts.layerOutputNorm) b.f32(`blk.${i}.layer_output_norm.weight`, [o.nEmbd], { kind: 'norm' });
}

/**
 * deepseek2 (DeepSeek V2/V3/R1, Kimi K2): multi-head latent attention in the absorbed form that
 * current converters write (attn_kv_a_mqa → a kvLoraRank latent plus one shared RoPE key of nRot;
 * attn_k_b/attn_v_b per head; the cache holds the latent). With qLoraRank > 0 the query is
 * compressed too (V3); with 0 it is a plain attn_q (V2-Lite). YaRN (rope.scaling.*) when yarnFactor
 * > 0. nLayerDenseLead dense layers, then MoE layers with shared experts; softmax (V2) or sigmoid
 * with selection bias (V3) gating, group-limited top-k, optional normalization and scaling.
 */
function buildDeepseek2(o: Resolved): ModelParts {
  if (o.nExpert === 0) throw new RangeError('deepseek2 needs nExpert > 0');
  if (o.nHeadKv !== 1) throw new RangeError(`deepseek2 (MLA) needs nHeadKv = 1 but it is ${o.nHeadKv}`);
  if (o.qkNopeHeadDim < 1 || o.vHeadDim < 1 || o.kvLoraRank < 1) throw new RangeError('deepseek2 needs qkNopeHeadDim, vHeadDim and kvLoraRank > 0');
  const b = new Builder(o);
  const arch = 'deepseek2';
  const kHead = o.qkNopeHeadDim + o.nRot; // query/key head size before absorption
  baseMetadata(b, arch);
  routingMetadata(b, arch);
  // Written even when 0: llama.cpp requires the key unless the layer count is a V2-Lite one.
  b.u32(`${arch}.attention.q_lora_rank`, o.qLoraRank);
  b.u32(`${arch}.attention.kv_lora_rank`, o.kvLoraRank);
  // MLA as MQA over the latent: keys are [latent, rope key], values the latent.
  b.u32(`${arch}.attention.key_length`, o.kvLoraRank + o.nRot);
  b.u32(`${arch}.attention.value_length`, o.kvLoraRank);
  b.u32(`${arch}.attention.key_length_mla`, kHead);
  b.u32(`${arch}.attention.value_length_mla`, o.vHeadDim);
  yarnMetadata(b, arch);
  writeTokenizer(b);
  embeddings(b);
  const dStd = 1 / Math.sqrt(o.nEmbd);
  for (let i = 0; i < o.nLayer; i++) {
    b.f32(`blk.${i}.attn_norm.weight`, [o.nEmbd], { kind: 'norm' });
    if (o.qLoraRank > 0) {
      b.matrix(`blk.${i}.attn_q_a.weight`, [o.nEmbd, o.qLoraRank], dStd, 'reads'); // (q_lora_rank, n_embd)
      b.f32(`blk.${i}.attn_q_a_norm.weight`, [o.qLoraRank], { kind: 'norm' });
      b.matrix(`blk.${i}.attn_q_b.weight`, [o.qLoraRank, o.nHead * kHead], 1 / Math.sqrt(o.qLoraRank)); // (n_head*(nope+rope), q_lora_rank)
    } else {
      b.matrix(`blk.${i}.attn_q.weight`, [o.nEmbd, o.nHead * kHead], dStd, 'reads'); // (n_head*(nope+rope), n_embd)
    }
    b.matrix(`blk.${i}.attn_kv_a_mqa.weight`, [o.nEmbd, o.kvLoraRank + o.nRot], dStd, 'reads'); // (kv_lora_rank+rope, n_embd)
    b.f32(`blk.${i}.attn_kv_a_norm.weight`, [o.kvLoraRank], { kind: 'norm' });
    b.matrix(`blk.${i}.attn_k_b.weight`, [o.qkNopeHeadDim, o.kvLoraRank, o.nHead], 1 / Math.sqrt(o.kvLoraRank)); // (n_head, kv_lora_rank, nope)
    b.matrix(`blk.${i}.attn_v_b.weight`, [o.kvLoraRank, o.vHeadDim, o.nHead], 1 / Math.sqrt(o.kvLoraRank)); // (n_head, v_head, kv_lora_rank)
    b.matrix(`blk.${i}.attn_output.weight`, [o.nHead * o.vHeadDim, o.nEmbd], 1 / Math.sqrt(o.nHead * o.vHeadDim), 'writes'); // (n_embd, n_head*v_head)
    if (i < o.nLayerDenseLead) {
      denseFfn(b, i);
    } else {
      moeFfn(b, i, {
        gating: o.expertGating,
        selectionBias: o.expertSelectionBias,
        groups: o.nExpertGroups > 1,
        nFfShexp: o.nFfExp * o.nExpertShared, // deepseek2's shared experts have the routed width
      });
    }
  }
  return b.parts();
}

const ARCHES = {
  llama: buildLlama,
  qwen2: buildQwen2,
  qwen3moe: buildQwen3Moe,
  qwen2moe: buildQwen2Moe,
  olmoe: buildOlmoe,
  bailingmoe2: buildBailingMoe2,
  deepseek2: buildDeepseek2,
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

/** CLI flag → option, and how to parse it. */
const CLI_FLAGS: Record<string, { key: keyof Omit<MakeModelOptions, 'arch' | 'out'>; kind: 'number' | 'string' | 'boolean' }> = {
  seed: { key: 'seed', kind: 'number' },
  type: { key: 'type', kind: 'string' },
  'n-embd': { key: 'nEmbd', kind: 'number' },
  'n-layer': { key: 'nLayer', kind: 'number' },
  'n-head': { key: 'nHead', kind: 'number' },
  'n-head-kv': { key: 'nHeadKv', kind: 'number' },
  'n-ff': { key: 'nFf', kind: 'number' },
  'n-vocab': { key: 'nVocab', kind: 'number' },
  tokenizer: { key: 'tokenizer', kind: 'string' },
  'n-expert': { key: 'nExpert', kind: 'number' },
  'n-expert-used': { key: 'nExpertUsed', kind: 'number' },
  'n-ff-exp': { key: 'nFfExp', kind: 'number' },
  tied: { key: 'tiedEmbeddings', kind: 'boolean' },
  'output-scale': { key: 'outputScale', kind: 'number' },
  'context-length': { key: 'contextLength', kind: 'number' },
  'rope-freq-base': { key: 'ropeFreqBase', kind: 'number' },
  'rms-eps': { key: 'rmsEps', kind: 'number' },
  'router-channels': { key: 'routerChannels', kind: 'number' },
  'router-margin': { key: 'routerMargin', kind: 'number' },
  'n-expert-shared': { key: 'nExpertShared', kind: 'number' },
  'n-ff-shexp': { key: 'nFfShexp', kind: 'number' },
  'n-expert-groups': { key: 'nExpertGroups', kind: 'number' },
  'n-expert-groups-used': { key: 'nExpertGroupsUsed', kind: 'number' },
  'expert-gating': { key: 'expertGating', kind: 'string' },
  'expert-selection-bias': { key: 'expertSelectionBias', kind: 'boolean' },
  'expert-weights-norm': { key: 'expertWeightsNorm', kind: 'boolean' },
  'expert-weights-scale': { key: 'expertWeightsScale', kind: 'number' },
  'n-layer-dense-lead': { key: 'nLayerDenseLead', kind: 'number' },
  'n-nextn': { key: 'nNextn', kind: 'number' },
  'n-rot': { key: 'nRot', kind: 'number' },
  'q-lora-rank': { key: 'qLoraRank', kind: 'number' },
  'kv-lora-rank': { key: 'kvLoraRank', kind: 'number' },
  'qk-nope-head-dim': { key: 'qkNopeHeadDim', kind: 'number' },
  'v-head-dim': { key: 'vHeadDim', kind: 'number' },
  'yarn-factor': { key: 'yarnFactor', kind: 'number' },
  'yarn-orig-context': { key: 'yarnOrigContext', kind: 'number' },
  'yarn-mscale-all-dim': { key: 'yarnMscaleAllDim', kind: 'number' },
};

async function main(argv: string[]): Promise<void> {
  const options = {
    arch: { type: 'string' },
    out: { type: 'string' },
    help: { type: 'boolean' },
    ...Object.fromEntries(Object.entries(CLI_FLAGS).map(([flag, f]) => [flag, { type: f.kind === 'boolean' ? 'boolean' : 'string' }])),
  } as const;
  // Booleans also take --no-<flag>.
  const { values } = parseArgs({ args: argv, options: options as Record<string, { type: 'string' | 'boolean' }>, strict: true, allowNegative: true });
  if (values.help || !values.arch || !values.out) {
    const flags = Object.entries(CLI_FLAGS).map(([flag, f]) => (f.kind === 'boolean' ? `[--${flag}]` : `[--${flag} X]`));
    console.log(`usage: make-model --arch ${Object.keys(ARCHES).join('|')} --out FILE.gguf ${flags.join(' ')}`);
    process.exitCode = values.help ? 0 : 2;
    return;
  }
  const opts: Record<string, unknown> = { arch: values.arch, out: values.out };
  for (const [flag, f] of Object.entries(CLI_FLAGS)) {
    const v = values[flag];
    if (v === undefined) continue;
    if (f.kind === 'number') {
      const n = Number(v);
      if (typeof v !== 'string' || v.trim() === '' || !Number.isFinite(n)) {
        throw new TypeError(`Expected a number for --${flag} but received '${String(v)}'`);
      }
      opts[f.key] = n;
    } else {
      opts[f.key] = v;
    }
  }
  const result = await makeModel(opts as unknown as MakeModelOptions);
  console.log(`wrote ${result.path}: ${result.tensors.length} tensors, ${result.byteSize} bytes`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    console.error(`make-model: ${(err as Error).message}`);
    process.exitCode = 1;
  });
}
