// Every seed architecture, logit for logit against llama.cpp (issue 5; DESIGN.md, "How correctness
// is established" → Architectures).
//
// For each architecture × weight type, make-model writes a small seeded, routing-conditioned model
// to a temp dir; moerun and llama.cpp (node-llama-cpp in a child process, F32 KV cache on both
// sides) then must agree on:
//   - teacher-forced logits at every prompt position: bit for bit (every float32 equal);
//   - 64 greedy tokens, identical.
// A second group of tests shows that each routing/attention feature of a model (selection bias,
// expert groups, weight scale and normalization, partial RoPE, YaRN, shared experts and their gate)
// changes llama.cpp's logits on that very model, so the comparison above really covers it; and that
// llama.cpp's F16 file stays at F16 distance from its F32 twin (no routing choice flips: the
// conditioning works).
//
// `implemented` lists the cases moerun runs; the others are todo until they land (flip them here).
// An implemented case that moerun rejects (ERR_UNSUPPORTED) fails.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { loadModel, type Model } from 'moerun';
import { makeModel, makeModelParts, type MakeModelOptions } from '../scripts/make-model.js';
import { greedyTokens } from './helpers/generate.js';
import { BIT_IDENTICAL, bitDifferences, compareLogits, nmse, worstRowNmse } from './helpers/metrics.js';
import { llamaCppGreedy, llamaCppLogits } from './helpers/oracle.js';
import { writeVariant, type VariantEdits } from './helpers/variants.js';

// ============================================================================================
// Cases
// ============================================================================================

type CaseOptions = Omit<MakeModelOptions, 'out' | 'type'>;

interface ArchCase {
  name: string;
  options: CaseOptions;
  /**
   * llama.cpp's F32 KV cache bytes per token for this model, from its cache layout (checked once
   * against its "llama_kv_cache: size = ..." log line: 3456 for deepseek2-v3, 3072 bailingmoe2).
   */
  llamaKvBytesPerToken: number;
}

/** Standard attention: K and V of n_head_kv heads per layer, F32. */
const kvStd = (nLayer: number, nHeadKv: number, headDim: number) => nLayer * 2 * nHeadKv * headDim * 4;
/** MLA: llama.cpp caches only [latent, rope key] per layer (V is a view of it), F32. */
const kvMla = (nLayer: number, kvLoraRank: number, nRot: number) => nLayer * (kvLoraRank + nRot) * 4;

const CASES: ArchCase[] = [
  { name: 'llama-moe', options: { arch: 'llama', nExpert: 8, nExpertUsed: 2, nFfExp: 256 }, llamaKvBytesPerToken: kvStd(2, 4, 32) },
  { name: 'qwen2', options: { arch: 'qwen2' }, llamaKvBytesPerToken: kvStd(2, 4, 32) },
  { name: 'qwen3moe', options: { arch: 'qwen3moe', nExpert: 8, nExpertUsed: 2, nFfExp: 256 }, llamaKvBytesPerToken: kvStd(2, 4, 32) },
  { name: 'qwen2moe', options: { arch: 'qwen2moe' }, llamaKvBytesPerToken: kvStd(2, 4, 32) },
  { name: 'olmoe', options: { arch: 'olmoe' }, llamaKvBytesPerToken: kvStd(2, 8, 32) },
  // 1 dense + 2 MoE layers + 1 next-token-prediction layer; sigmoid, bias, 4 groups (2 used), scale 2.5.
  { name: 'bailingmoe2', options: { arch: 'bailingmoe2' }, llamaKvBytesPerToken: kvStd(3, 2, 64) },
  // V3/R1: compressed query, sigmoid + bias, groups, normalized and scaled weights, YaRN.
  { name: 'deepseek2-v3', options: { arch: 'deepseek2' }, llamaKvBytesPerToken: kvMla(3, 256, 32) },
  // V2-Lite: plain attn_q, softmax gating, no groups, 2 shared experts, YaRN with mscale_all_dim 0.707.
  {
    name: 'deepseek2-v2lite',
    options: {
      arch: 'deepseek2', qLoraRank: 0, expertGating: 'softmax', expertSelectionBias: false, nExpertGroups: 0,
      expertWeightsNorm: false, expertWeightsScale: 0, nExpertShared: 2, yarnMscaleAllDim: 0.707,
    },
    llamaKvBytesPerToken: kvMla(3, 256, 32),
  },
];

/** Cases moerun runs (F32 and F16 weights). */
const implemented: readonly string[] = [
  'llama-moe', 'qwen2', 'qwen3moe', 'qwen2moe', 'olmoe', 'bailingmoe2', 'deepseek2-v3', 'deepseek2-v2lite',
];

// BOS, then word pieces, byte tokens and rarer pieces from across the vocab.
const PROMPT = [1, 300, 72, 350, 301, 400, 120, 302, 450, 303, 500, 304, 17, 260, 333, 480, 99, 511, 265, 410];
const N_VOCAB = 512;
const N_GREEDY = 64;
const EOS = 2;
const CONTEXT = 128;
const ORACLE = { threads: 1, contextSize: CONTEXT } as const; // 1 thread: 2 contend badly on a busy 2-core box
const TIMEOUT = 120_000;

const dir = mkdtempSync(join(tmpdir(), 'moerun-arch-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Each file is written once, on first use. */
const files = new Map<string, Promise<string>>();
function modelFile(c: ArchCase, type: 'f32' | 'f16'): Promise<string> {
  const key = `${c.name}-${type}`;
  let p = files.get(key);
  if (!p) {
    p = makeModel({ ...c.options, type, out: join(dir, `${key}.gguf`) }).then((r) => r.path);
    files.set(key, p);
  }
  return p;
}

/** llama.cpp's prompt logits per file (and KV cache type), computed once. */
const oracleLogits = new Map<string, Promise<Float32Array>>();
function refLogits(path: string, kvCacheType: 'f32' | 'f16' = 'f32'): Promise<Float32Array> {
  const key = `${path}:${kvCacheType}`;
  let p = oracleLogits.get(key);
  if (!p) {
    p = llamaCppLogits(path, PROMPT, { ...ORACLE, kvCacheType }).then((r) => {
      expect(r.nVocab).toBe(N_VOCAB);
      return r.logits;
    });
    oracleLogits.set(key, p);
  }
  return p;
}

async function withModel<T>(path: string, fn: (model: Model) => Promise<T>, threads = 1): Promise<T> {
  const model = await loadModel(path, { threads });
  try {
    return await fn(model);
  } finally {
    await model.dispose();
  }
}

/** moerun's teacher-forced logits for PROMPT (fresh session, F32 KV cache unless asked). */
async function ourLogits(path: string, kvCacheType: 'f32' | 'f16' = 'f32'): Promise<{ logits: Float32Array; kvBytesPerToken: number }> {
  return withModel(path, async (model) => {
    const session = model.createSession({ contextSize: CONTEXT, kvCacheType });
    try {
      const logits = await session.evaluate(PROMPT, { logits: 'all' });
      return { logits, kvBytesPerToken: session.kvCacheBytes / session.contextSize };
    } finally {
      await session.dispose();
    }
  });
}

// ============================================================================================
// moerun against llama.cpp, per architecture and weight type
// ============================================================================================

const table: string[] = [];
afterAll(() => {
  if (table.length === 0) return;
  console.log(
    ['case / weights (KV cache)      NMSE vs llama.cpp   worst row   top-1    KV B/token: moerun  llama.cpp', ...table].join('\n'),
  );
});

function report(c: ArchCase, type: string, ours: Float32Array, ref: Float32Array, kv: number, llamaKv = c.llamaKvBytesPerToken): void {
  const cmp = compareLogits(ours, ref, N_VOCAB);
  table.push(
    `${`${c.name} / ${type}`.padEnd(30)} ${cmp.nmse.toExponential(2).padStart(17)} ${worstRowNmse(ours, ref, N_VOCAB).toExponential(2).padStart(11)}` +
      ` ${`${cmp.top1.agree}/${cmp.top1.total}`.padStart(7)} ${String(kv).padStart(19)} ${String(llamaKv).padStart(10)}`,
  );
}

for (const c of CASES) {
  describe(c.name, () => {
    if (!implemented.includes(c.name)) {
      for (const T of ['F32', 'F16']) {
        it.todo(`${T}: prompt logits equal llama.cpp bit for bit at every position`);
        it.todo(`${T}: ${N_GREEDY} greedy tokens match llama.cpp`);
      }
      return;
    }

    // F16 files too: moerun sums float matmuls, attention, softmax and SwiGLU in llama.cpp's
    // orders for the active ISA (quant/types.h), so the F16 roundings of the activations that
    // llama.cpp's F16 matmuls make land on the same values, and the logits agree to the bit.
    for (const type of ['f32', 'f16'] as const) {
      const T = type.toUpperCase();
      it(`${T}: prompt logits equal llama.cpp bit for bit at every position`, async () => {
        const path = await modelFile(c, type);
        const [ref, ours] = await Promise.all([refLogits(path), ourLogits(path)]);
        expect(ours.logits.length).toBe(PROMPT.length * N_VOCAB);
        report(c, `${type} (f32 KV)`, ours.logits, ref, ours.kvBytesPerToken);
        expect(ours.kvBytesPerToken).toBe(c.llamaKvBytesPerToken);
        expect(bitDifferences(ours.logits, ref)).toEqual(BIT_IDENTICAL);
      }, TIMEOUT);

      it(`${T}: ${N_GREEDY} greedy tokens match llama.cpp`, async () => {
        const path = await modelFile(c, type);
        const [ref, ours] = await Promise.all([
          llamaCppGreedy(path, PROMPT, N_GREEDY, ORACLE),
          withModel(path, async (model) => {
            const session = model.createSession({ contextSize: CONTEXT, kvCacheType: 'f32' });
            try {
              return await greedyTokens(session, PROMPT, N_GREEDY, EOS);
            } finally {
              await session.dispose();
            }
          }),
        ]);
        // moerun stops at end-of-generation, llama.cpp's greedy loop does not.
        expect(ours.tokens).toEqual(ref.slice(0, ours.tokens.length));
        if (!ours.stoppedAtEog) expect(ours.tokens.length).toBe(N_GREEDY);
        // Not a degenerate loop: the continuation visits several tokens.
        expect(new Set(ref).size).toBeGreaterThan(8);
      }, TIMEOUT);
    }

    // Both engines' default F16 KV cache: llama.cpp's F16 attention matmuls round the queries and
    // the probabilities to F16 too, and moerun does the same.
    it('F16 weights, F16 KV cache: prompt logits equal llama.cpp bit for bit at every position', async () => {
      const path = await modelFile(c, 'f16');
      const [ref, ours] = await Promise.all([refLogits(path, 'f16'), ourLogits(path, 'f16')]);
      report(c, 'f16 (f16 KV)', ours.logits, ref, ours.kvBytesPerToken, c.llamaKvBytesPerToken / 2);
      expect(ours.kvBytesPerToken).toBe(c.llamaKvBytesPerToken / 2);
      expect(bitDifferences(ours.logits, ref)).toEqual(BIT_IDENTICAL);
    }, TIMEOUT);

    it("F16: llama.cpp's logits stay at F16 distance from its F32 twin (no routing choice flips)", async () => {
      const [f32, f16] = await Promise.all([modelFile(c, 'f32'), modelFile(c, 'f16')]);
      const [a, b] = await Promise.all([refLogits(f32), refLogits(f16)]);
      const cmp = compareLogits(b, a, N_VOCAB);
      expect(cmp.nmse).toBeGreaterThan(0); // really a different file
      // F16 weights alone move logits by NMSE ~1e-7..1e-6; one flipped expert choice by ~1e-2.
      expect(worstRowNmse(b, a, N_VOCAB)).toBeLessThan(1e-4);
      expect(cmp.top1Decisive.fraction).toBe(1);
    }, TIMEOUT);
  });
}

// ============================================================================================
// Threads split the work, never a sum: the logits do not depend on the thread count
// ============================================================================================

describe('thread count', () => {
  for (const name of ['qwen3moe', 'deepseek2-v3'] as const) {
    it(`${name}: 1 and 2 threads give the same F16 logits, bit for bit`, async () => {
      const c = CASES.find((x) => x.name === name)!;
      const path = await modelFile(c, 'f16');
      const run = (threads: number) =>
        withModel(
          path,
          async (model) => {
            const session = model.createSession({ contextSize: CONTEXT, kvCacheType: 'f16' });
            try {
              return await session.evaluate(PROMPT, { logits: 'all' });
            } finally {
              await session.dispose();
            }
          },
          threads,
        );
      const [one, two] = [await run(1), await run(2)];
      expect(Buffer.from(two.buffer, two.byteOffset, two.byteLength).equals(Buffer.from(one.buffer, one.byteOffset, one.byteLength))).toBe(true);
    }, TIMEOUT);
  }
});

// ============================================================================================
// KV cache types: each stays close to the F32 cache (every attention path, MLA included)
// ============================================================================================

describe('KV cache types', () => {
  // Measured (worst of these cases): F16 8e-7, BF16 9e-6, Q8_0 9e-5; bounds with headroom, and far
  // below what a wrong row or head (NMSE ~1) would give.
  const BOUND = { f16: 1e-5, bf16: 1e-4, q8_0: 1e-3 } as const;
  for (const name of ['qwen3moe', 'deepseek2-v3'] as const) {
    it(`${name}: F16, BF16 and Q8_0 caches give logits close to the F32 cache's`, async () => {
      const c = CASES.find((x) => x.name === name)!;
      const path = await modelFile(c, 'f16');
      await withModel(path, async (model) => {
        const logitsFor = async (kvCacheType: 'f32' | 'f16' | 'bf16' | 'q8_0') => {
          const session = model.createSession({ contextSize: CONTEXT, kvCacheType });
          try {
            return await session.evaluate(PROMPT, { logits: 'all' });
          } finally {
            await session.dispose();
          }
        };
        const ref = await logitsFor('f32');
        for (const kv of ['f16', 'bf16', 'q8_0'] as const) {
          const e = nmse(await logitsFor(kv), ref);
          console.log(`${name}: ${kv} KV cache vs F32: NMSE ${e.toExponential(2)}`);
          expect(e).toBeGreaterThan(0); // really a different cache
          expect(e).toBeLessThanOrEqual(BOUND[kv]);
        }
      });
    }, TIMEOUT);
  }
});

// ============================================================================================
// Each feature reaches llama.cpp (and moerun agrees with it on the variant too)
// ============================================================================================

interface Feature {
  /** What the variant turns off or changes. */
  name: string;
  base: string;
  edits: VariantEdits;
  /** false: the edit must NOT change the logits (e.g. next-token-prediction layers are skipped). */
  changes?: boolean;
}

const zero = (v: Float32Array) => v.fill(0);
const negate = (v: Float32Array) => v.map((x) => -x);

const FEATURES: Feature[] = [
  { name: 'selection bias (exp_probs_b zeroed)', base: 'bailingmoe2', edits: { tensors: [{ match: /exp_probs_b\.bias$/, edit: zero }] } },
  {
    name: 'expert groups (expert_group_count dropped)',
    base: 'bailingmoe2',
    edits: { metadata: { 'bailingmoe2.expert_group_count': undefined, 'bailingmoe2.expert_group_used_count': undefined } },
  },
  { name: 'weight scale (expert_weights_scale 2.5 → 1)', base: 'bailingmoe2', edits: { metadata: { 'bailingmoe2.expert_weights_scale': { type: 'f32', value: 1 } } } },
  { name: 'weight normalization (expert_weights_norm dropped)', base: 'bailingmoe2', edits: { metadata: { 'bailingmoe2.expert_weights_norm': undefined } } },
  { name: 'partial RoPE (rope.dimension_count 32 → 64, the head size)', base: 'bailingmoe2', edits: { metadata: { 'bailingmoe2.rope.dimension_count': { type: 'u32', value: 64 } } } },
  { name: 'shared expert (ffn_down_shexp zeroed)', base: 'bailingmoe2', edits: { tensors: [{ match: /ffn_down_shexp/, edit: zero }] } },
  {
    name: 'next-token-prediction layer (its weights negated: skipped, no change)',
    base: 'bailingmoe2',
    edits: { tensors: [{ match: /^blk\.3\./, edit: negate }] },
    changes: false,
  },
  { name: 'selection bias (exp_probs_b zeroed)', base: 'deepseek2-v3', edits: { tensors: [{ match: /exp_probs_b\.bias$/, edit: zero }] } },
  {
    name: 'expert groups (expert_group_count dropped)',
    base: 'deepseek2-v3',
    edits: { metadata: { 'deepseek2.expert_group_count': undefined, 'deepseek2.expert_group_used_count': undefined } },
  },
  { name: 'weight scale (expert_weights_scale 2.5 → 1)', base: 'deepseek2-v3', edits: { metadata: { 'deepseek2.expert_weights_scale': { type: 'f32', value: 1 } } } },
  {
    name: 'YaRN (rope.scaling.* dropped)',
    base: 'deepseek2-v3',
    edits: {
      metadata: {
        'deepseek2.rope.scaling.type': undefined, 'deepseek2.rope.scaling.factor': undefined,
        'deepseek2.rope.scaling.original_context_length': undefined, 'deepseek2.rope.scaling.yarn_log_multiplier': undefined,
      },
    },
  },
  { name: 'YaRN mscale (yarn_log_multiplier 0.0707 → 0.1)', base: 'deepseek2-v2lite', edits: { metadata: { 'deepseek2.rope.scaling.yarn_log_multiplier': { type: 'f32', value: 0.1 } } } },
  { name: 'shared-expert sigmoid gate (ffn_gate_inp_shexp negated)', base: 'qwen2moe', edits: { tensors: [{ match: /ffn_gate_inp_shexp/, edit: negate }] } },
  { name: 'expert_used_count 2 → 1', base: 'qwen3moe', edits: { metadata: { 'qwen3moe.expert_used_count': { type: 'u32', value: 1 } } } },
];

describe('each feature reaches llama.cpp', () => {
  for (const f of FEATURES) {
    const c = CASES.find((x) => x.name === f.base)!;
    it(`${f.base}: ${f.name}`, async () => {
      const basePath = await modelFile(c, 'f32');
      const slug = f.name.replace(/[^a-z0-9]+/gi, '-').slice(0, 40);
      const variant = (await writeVariant({ ...c.options, type: 'f32', out: join(dir, `${c.name}-${slug}.gguf`) }, f.edits)).path;
      const [base, ref] = await Promise.all([refLogits(basePath), refLogits(variant)]);
      const d = nmse(ref, base);
      console.log(`${f.base}: ${f.name}: llama.cpp logits move by NMSE ${d.toExponential(2)}`);
      if (f.changes === false) {
        expect(d).toBe(0);
      } else {
        // Far above rounding (1e-13): the feature moves llama.cpp's logits on this model.
        expect(d).toBeGreaterThan(1e-4);
      }
      if (implemented.includes(c.name)) {
        const ours = await ourLogits(variant);
        expect(bitDifferences(ours.logits, ref)).toEqual(BIT_IDENTICAL);
        if (f.changes === false) expect(bitDifferences(ours.logits, (await ourLogits(basePath)).logits)).toEqual(BIT_IDENTICAL);
      }
    }, TIMEOUT);
  }
});

// ============================================================================================
// The routing conditioning's premise: only token_embd writes the router channels, only routers read them
// ============================================================================================

describe('router channels', () => {
  const RESERVED = 32; // make-model's default routerChannels for MoE models
  for (const c of CASES.filter((x) => x.name !== 'qwen2')) {
    it(`${c.name}: reserved channels are written by token_embd only and read by the routers only`, () => {
      const { weights } = makeModelParts({ ...c.options, out: 'unused' });
      const nEmbd = 256;
      const first = nEmbd - RESERVED;
      let checked = 0;
      for (const w of weights) {
        if (/\.nextn\.|layer_output_norm/.test(w.name)) continue;
        const [ne0, ne1 = 1] = w.shape;
        const reads = ne0 === nEmbd && /(attn_(q|k|v|qkv|q_a|kv_a_mqa)|ffn_(gate|up)(_exps|_shexp)?|ffn_gate_inp_shexp)\.weight$|^output\.weight$/.test(w.name);
        const writes = ne1 === nEmbd && /(attn_output|ffn_down(_exps|_shexp)?)\.weight$/.test(w.name);
        const router = /ffn_gate_inp\.weight$/.test(w.name);
        if (!reads && !writes && !router) continue;
        const v = w.values();
        let leak = 0;
        for (let i = 0; i < v.length; i++) {
          const channel = writes ? Math.floor(i / ne0) % ne1 : i % ne0;
          if ((channel >= first) !== router && v[i] !== 0) leak++;
        }
        expect(leak, w.name).toBe(0);
        checked++;
      }
      expect(checked).toBeGreaterThan(8);
      // The embedding does write them.
      const embd = weights.find((w) => w.name === 'token_embd.weight')!.values();
      expect(embd.subarray(first, nEmbd).some((x) => x !== 0)).toBe(true);
    });
  }
});
