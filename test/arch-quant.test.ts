// Every seed architecture on quantized weights, against its F32 twin (issue 5; DESIGN.md, "How
// correctness is established" → Quantized files).
//
// For each architecture case of test/arch.test.ts and each weight type: make-model writes the F32
// model, our quantizer writes the quantized file, and test/helpers/twin.ts its F32 twin (every tensor
// of the quantized file dequantized and written as F32, same metadata). On a short prompt, with an
// F32 KV cache on both sides:
//   - reference: llama.cpp's logits on the twin;
//   - llama.cpp's logits on the quantized file (it quantizes activations, repacks: not exact);
//   - moerun's logits on the quantized file.
// moerun must be no further from the twin than llama.cpp is: NMSE ≤ 1.25 × llama.cpp's (+ 1e-7, for
// types where both are ~0), and top-1 agreement on the twin's decisive positions (top-1 leads the
// runner-up by ≥ 5% of the row's RMS) ≥ llama.cpp's. Where llama.cpp cannot run a file (an
// OracleError: the prebuilt binary aborts on some deepseek2 files), moerun's NMSE must instead lie
// within the range llama.cpp shows on the other architectures at that type, and the test prints that
// it fell back. "Within" is ≤ FALLBACK_FACTOR × their largest: architectures differ (llama.cpp's own
// NMSE on deepseek2-v3 is ~1.5× the largest of the others at Q8_0, Q4_0 and Q4_K_M), while a bug or a
// routing split lands at ~1e-2, 20× above.
//
// The twin is dequantized by our code, so a wrong dequantizer would move the reference itself; every
// case where llama.cpp runs therefore also bounds llama.cpp's own distance to the twin
// (LLAMA_MAX_NMSE), which a wrong twin would blow up.
//
// Routing: make-model conditions each token's expert choice on F32 weights; quantizing token_embd
// moves the router channels. routingCheck() recomputes every prompt token's top-k at every MoE layer
// from the dequantized embedding and reports, in the table, the (token, layer) choices that differ
// from the F32 model's (flips) and those that change over make-model's range of router input scales
// (near-ties), with the smallest boundary gap. A flip is shared by both engines (both run the same
// weights as the twin), so it does not invalidate the comparison; a near-tie could split the engines,
// which the per-row bound (worst row ≤ 1.25 × llama.cpp's) catches if moerun is the one that splits.
//
// Types: Q8_0, Q4_0, Q4_K_M on every architecture; every type our quantizer writes on qwen3moe.
// Everything runs at once at load (files first, then oracle calls in a pool of 2 child processes);
// each test awaits its own case.

import { mkdtempSync, rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { loadModel, quantize, readGgufInfo, type GgufInfo, type QuantizeType } from 'moerun';
import { makeModel, type MakeModelOptions } from '../scripts/make-model.js';
import { compareLogits, nmse, type LogitComparison, worstRowNmse } from './helpers/metrics.js';
import { llamaCppLogits, OracleError } from './helpers/oracle.js';
import { tensorFloats, writeF32Twin } from './helpers/twin.js';

// ============================================================================================
// Cases (the architecture cases of test/arch.test.ts: keep in step)
// ============================================================================================

type CaseOptions = Omit<MakeModelOptions, 'out' | 'type'>;

const CASES: { name: string; options: CaseOptions }[] = [
  { name: 'llama-moe', options: { arch: 'llama', nExpert: 8, nExpertUsed: 2, nFfExp: 256 } },
  { name: 'qwen2', options: { arch: 'qwen2' } },
  { name: 'qwen3moe', options: { arch: 'qwen3moe', nExpert: 8, nExpertUsed: 2, nFfExp: 256 } },
  { name: 'qwen2moe', options: { arch: 'qwen2moe' } },
  { name: 'olmoe', options: { arch: 'olmoe' } },
  { name: 'bailingmoe2', options: { arch: 'bailingmoe2' } },
  { name: 'deepseek2-v3', options: { arch: 'deepseek2' } },
  {
    name: 'deepseek2-v2lite',
    options: {
      arch: 'deepseek2', qLoraRank: 0, expertGating: 'softmax', expertSelectionBias: false, nExpertGroups: 0,
      expertWeightsNorm: false, expertWeightsScale: 0, nExpertShared: 2, yarnMscaleAllDim: 0.707,
    },
  },
];

/** Types run on every architecture. */
const COMMON_TYPES: readonly QuantizeType[] = ['Q8_0', 'Q4_0', 'Q4_K_M'];
/** The architecture that runs every type. */
const ALL_TYPES_ARCH = 'qwen3moe';
const ALL_TYPES: readonly QuantizeType[] = [
  'Q8_0', 'Q4_0', 'Q4_K_M', 'Q4_1', 'Q5_0', 'Q5_1', 'Q2_K', 'Q3_K', 'Q4_K', 'Q5_K', 'Q6_K', 'Q5_K_M', 'IQ4_NL', 'IQ4_XS', 'F16', 'BF16',
  'Q3_K_S', 'Q3_K_M', 'Q3_K_L', 'Q4_K_S', 'Q5_K_S', // llama.cpp's K-quant mixes (issue 19)
];
/** The MLA architecture also runs llama.cpp's K-quant mixes (its attn_k_b / attn_v_b, shared experts, dense first layer). */
const MLA_MIXES_ARCH = 'deepseek2-v3';
const MLA_MIXES: readonly QuantizeType[] = [...COMMON_TYPES, 'Q2_K', 'Q3_K_S', 'Q3_K_M', 'Q3_K_L', 'Q4_K_S', 'Q5_K_S'];
/** The types an architecture runs. */
const typesOf = (arch: string): readonly QuantizeType[] => (arch === ALL_TYPES_ARCH ? ALL_TYPES : arch === MLA_MIXES_ARCH ? MLA_MIXES : COMMON_TYPES);

/**
 * arch/type cases where moerun is known to fail the comparison: each entry says how (which tensor
 * types, which layer). They still run and appear in the table, marked, but do not assert; the
 * entry's test is a todo until the failure is fixed (then delete the entry).
 */
const knownFailures: Record<string, string> = {};

/**
 * llama.cpp's own NMSE vs the twin must stay below this where it runs: DESIGN.md measured 1e-5..1.6e-4
 * at Q8_0..Q4_K_M (Q2_K/Q3_K sit higher); a wrong twin (our dequantizer) or a routing split would be
 * ~1e-2 and above.
 */
const LLAMA_MAX_NMSE = 3e-3;
/**
 * Types precise enough that make-model's routing conditioning must survive them: no prompt token's
 * expert choice moves. (Q4 and below, and Q5_1, do move a few: reported in the table, not asserted.)
 */
const ROUTING_EXACT_TYPES: readonly string[] = ['Q8_0', 'Q6_K', 'F16', 'BF16'];
/** Fallback (llama.cpp cannot run the file): moerun's NMSE ≤ this × llama.cpp's largest on the other archs. */
const FALLBACK_FACTOR = 2;
/** NMSE slack for types where both engines are ~0 from the twin (F16, BF16). */
const NMSE_FLOOR = 1e-7;

const PROMPT = [1, 300, 72, 350, 301, 400, 120, 302, 450, 303, 500, 304, 17, 260, 333, 480, 99, 511];
const N_VOCAB = 512;
const CONTEXT = 32;
const ORACLE = { threads: 1, contextSize: CONTEXT } as const;
const POOL = 2;
const TIMEOUT = 300_000;

const dir = mkdtempSync(join(tmpdir(), 'moerun-arch-quant-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// ============================================================================================
// The work: files, oracle pool, moerun, routing
// ============================================================================================

/** A settled value (so that work started at load never leaves an unhandled rejection). */
type Settled<T> = { ok: true; value: T } | { ok: false; error: unknown };
const settle = <T>(p: Promise<T>): Promise<Settled<T>> =>
  p.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );

/** At most POOL oracle children at once, in request order. */
let running = 0;
const waiting: (() => void)[] = [];
async function pooled<T>(fn: () => Promise<T>): Promise<T> {
  if (running >= POOL) await new Promise<void>((resolve) => waiting.push(resolve));
  running++;
  try {
    return await fn();
  } finally {
    running--;
    waiting.shift()?.();
  }
}

async function oracle(path: string): Promise<Float32Array> {
  const r = await pooled(() => llamaCppLogits(path, PROMPT, ORACLE));
  if (r.nVocab !== N_VOCAB) throw new Error(`oracle: nVocab ${r.nVocab} on ${path}`);
  return r.logits;
}

/** moerun's teacher-forced logits for PROMPT (fresh session, F32 KV cache) and its KV bytes per token. */
async function moerun(path: string): Promise<{ logits: Float32Array; kvBytesPerToken: number }> {
  await using model = await loadModel(path, { threads: 1 });
  const session = model.createSession({ contextSize: CONTEXT, kvCacheType: 'f32' });
  try {
    const logits = await session.evaluate(PROMPT, { logits: 'all' });
    return { logits, kvBytesPerToken: session.kvCacheBytes / session.contextSize };
  } finally {
    await session.dispose();
  }
}

/** Router input scales, relative to 1/RMS(token embedding): make-model's range, finer. */
const ROUTER_SCALES = [1.25, 1.1, 1, 0.9, 0.8, 0.7, 0.6, 0.5, 0.45, 0.4, 0.35];

interface RoutingReport {
  /** (token, layer) choices of the prompt that differ from the F32 model's (at any scale). */
  flips: string[];
  /** (token, layer) choices of the quantized model that change over the scale range: near-ties. */
  unstable: string[];
  /** Smallest top-k (or group) boundary gap of the quantized model over the prompt, in score std units. */
  minMargin: number;
}

/**
 * Every prompt token's expert choice at every MoE layer, from the router channels (written only by
 * token_embd, read only by the routers: make-model's conditioning), in the F32 model and in the
 * quantized one; llama.cpp's selection (build_moe_ffn): probabilities (+ selection bias), group-limited
 * top-k, top-k.
 */
async function routingCheck(srcPath: string, srcInfo: GgufInfo, qPath: string, qInfo: GgufInfo): Promise<RoutingReport | null> {
  const arch = srcInfo.metadata['general.architecture'] as string;
  const meta = (k: string): number | undefined => srcInfo.metadata[`${arch}.${k}`] as number | undefined;
  const k = meta('expert_used_count') ?? 0;
  if (k === 0) return null;
  const nLayer = (meta('block_count') ?? 0) - (meta('nextn_predict_layers') ?? 0);
  const gating = meta('expert_gating_func') === 2 ? 'sigmoid' : 'softmax';
  const nGroups = meta('expert_group_count') ?? 0;
  const nGroupsUsed = meta('expert_group_used_count') ?? 0;
  const has = (name: string) => srcInfo.tensors.some((t) => t.name === name);
  const embdSrc = await tensorFloats(srcInfo, srcPath, 'token_embd.weight');
  const embdQ = await tensorFloats(qInfo, qPath, 'token_embd.weight');
  const nEmbd = srcInfo.tensors.find((t) => t.name === 'token_embd.weight')!.shape[0]!;

  const report: RoutingReport = { flips: [], unstable: [], minMargin: Infinity };
  for (let layer = 0; layer < nLayer; layer++) {
    const routerName = `blk.${layer}.ffn_gate_inp.weight`;
    if (!has(routerName)) continue; // a dense layer
    const w = await tensorFloats(srcInfo, srcPath, routerName);
    const g = await tensorFloats(srcInfo, srcPath, `blk.${layer}.ffn_norm.weight`);
    const biasName = `blk.${layer}.exp_probs_b.bias`;
    const bias = has(biasName) ? await tensorFloats(srcInfo, srcPath, biasName) : null;
    const nExpert = w.length / nEmbd;
    const select = (row: Float32Array, s: number): { set: string; margin: number } => {
      const score = new Float64Array(nExpert);
      for (let x = 0; x < nExpert; x++) {
        let acc = 0;
        for (let j = 0; j < nEmbd; j++) acc += w[x * nEmbd + j]! * g[j]! * row[j]!;
        score[x] = acc * s;
      }
      if (gating === 'softmax') {
        const max = Math.max(...score);
        let sum = 0;
        for (let x = 0; x < nExpert; x++) sum += (score[x] = Math.exp(score[x]! - max));
        for (let x = 0; x < nExpert; x++) score[x]! /= sum;
      } else {
        for (let x = 0; x < nExpert; x++) score[x] = 1 / (1 + Math.exp(-score[x]!));
      }
      if (bias) for (let x = 0; x < nExpert; x++) score[x]! += bias[x]!;
      let mean = 0;
      for (const v of score) mean += v / nExpert;
      let variance = 0;
      for (const v of score) variance += (v - mean) ** 2 / nExpert;
      const std = Math.sqrt(variance);
      let margin = Infinity;
      let eligible = Array.from(score.keys());
      let groupKey = '';
      if (nGroups > 1) {
        const per = nExpert / nGroups;
        const groupScore = Array.from({ length: nGroups }, (_, gi) => {
          const top = Array.from(score.subarray(gi * per, (gi + 1) * per)).sort((a, b) => b - a);
          return top[0]! + top[1]!;
        });
        const order = Array.from(groupScore.keys()).sort((a, b) => groupScore[b]! - groupScore[a]!);
        margin = (groupScore[order[nGroupsUsed - 1]!]! - groupScore[order[nGroupsUsed]!]!) / std;
        const used = new Set(order.slice(0, nGroupsUsed));
        eligible = eligible.filter((x) => used.has(Math.floor(x / per)));
        groupKey = `${[...used].sort((a, b) => a - b).join(',')}|`;
      }
      const ranked = eligible.sort((a, b) => score[b]! - score[a]!);
      if (k < ranked.length) margin = Math.min(margin, (score[ranked[k - 1]!]! - score[ranked[k]!]!) / std);
      return { set: groupKey + ranked.slice(0, k).sort((a, b) => a - b).join(','), margin };
    };
    for (const t of new Set(PROMPT)) {
      const rowSrc = embdSrc.subarray(t * nEmbd, (t + 1) * nEmbd);
      const rowQ = embdQ.subarray(t * nEmbd, (t + 1) * nEmbd);
      let sumSq = 0;
      for (const v of rowSrc) sumSq += v * v;
      const s0 = 1 / Math.sqrt(sumSq / nEmbd);
      const src = ROUTER_SCALES.map((f) => select(rowSrc, f * s0));
      const q = ROUTER_SCALES.map((f) => select(rowQ, f * s0));
      const where = `token ${t} layer ${layer}`;
      if (q.some((d, i) => d.set !== src[i]!.set)) report.flips.push(where);
      if (q.some((d) => d.set !== q[0]!.set)) report.unstable.push(where);
      for (const d of q) report.minMargin = Math.min(report.minMargin, d.margin);
    }
  }
  return report;
}

interface CaseResult {
  /** Tensor types of the quantized file, with counts (e.g. "Q4_K×12 Q6_K×3 F32×9"). */
  tensorTypes: string;
  /** llama.cpp on the quantized file vs the twin, or why llama.cpp could not run it. */
  llama: LogitComparison | OracleError;
  /** moerun on the quantized file vs the twin, or why moerun could not run it. */
  ours: LogitComparison | Error;
  /** Worst single row's NMSE vs the twin (llama.cpp, moerun). */
  worstRow: { llama: number; ours: number };
  /** moerun vs llama.cpp on the same quantized file. */
  sameFile: number;
  kvBytesPerToken: number;
  routing: RoutingReport | null;
}

const sources = new Map<string, Promise<{ path: string; info: GgufInfo }>>();
function source(c: (typeof CASES)[number]) {
  let p = sources.get(c.name);
  if (!p) {
    p = makeModel({ ...c.options, type: 'f32', out: join(dir, `${c.name}-f32.gguf`) }).then(async (r) => ({
      path: r.path,
      info: await readGgufInfo(r.path),
    }));
    sources.set(c.name, p);
  }
  return p;
}

/** Files are made one at a time (the CPU is busy with oracle children anyway); oracle calls are pooled. */
let fileChain: Promise<unknown> = Promise.resolve();
async function runCase(c: (typeof CASES)[number], type: QuantizeType): Promise<CaseResult> {
  const qPath = join(dir, `${c.name}-${type}.gguf`);
  const twinPath = join(dir, `${c.name}-${type}-twin.gguf`);
  const made = fileChain.then(async () => {
    const src = await source(c);
    await quantize(src.path, qPath, type, { threads: 1 });
    await writeF32Twin(qPath, twinPath, 1);
    const qInfo = await readGgufInfo(qPath);
    return { src, qInfo, routing: await routingCheck(src.path, src.info, qPath, qInfo) };
  });
  fileChain = made.catch(() => undefined);
  const { qInfo, routing } = await made;

  const refP = settle(oracle(twinPath));
  const llamaP = settle(oracle(qPath));
  const oursP = settle(moerun(qPath));
  const [ref, llama, ours] = await Promise.all([refP, llamaP, oursP]);
  await Promise.all([rm(qPath, { force: true }), rm(twinPath, { force: true })]);
  if (!ref.ok) throw ref.error; // llama.cpp runs F32 files of every architecture (arch.test.ts)

  const counts = new Map<string, number>();
  for (const t of qInfo.tensors) counts.set(t.type, (counts.get(t.type) ?? 0) + 1);
  const tensorTypes = [...counts].map(([t, n]) => `${t}×${n}`).join(' ');
  if (!llama.ok && !(llama.error instanceof OracleError)) throw llama.error;
  return {
    tensorTypes,
    llama: llama.ok ? compareLogits(llama.value, ref.value, N_VOCAB) : (llama.error as OracleError),
    ours: ours.ok ? compareLogits(ours.value.logits, ref.value, N_VOCAB) : (ours.error as Error),
    worstRow: {
      llama: llama.ok ? worstRowNmse(llama.value, ref.value, N_VOCAB) : NaN,
      ours: ours.ok ? worstRowNmse(ours.value.logits, ref.value, N_VOCAB) : NaN,
    },
    sameFile: ours.ok && llama.ok ? nmse(ours.value.logits, llama.value) : NaN,
    kvBytesPerToken: ours.ok ? ours.value.kvBytesPerToken : NaN,
    routing,
  };
}

// Start everything now, in test order: common types arch by arch, then the other types of the archs that run more.
const results = new Map<string, Promise<Settled<CaseResult>>>();
const key = (arch: string, type: string) => `${arch}/${type}`;
for (const c of CASES) for (const type of COMMON_TYPES) results.set(key(c.name, type), settle(runCase(c, type)));
for (const c of CASES) for (const type of typesOf(c.name)) if (!results.has(key(c.name, type))) results.set(key(c.name, type), settle(runCase(c, type)));
const started = Date.now();

async function result(arch: string, type: string): Promise<CaseResult> {
  const r = await results.get(key(arch, type))!;
  if (!r.ok) throw r.error;
  return r.value;
}

// ============================================================================================
// Table
// ============================================================================================

const rows = new Map<string, string>();
const routingNotes: string[] = [];
afterAll(() => {
  const order = CASES.flatMap((c) => typesOf(c.name).map((t) => key(c.name, t)));
  const lines = order.filter((k) => rows.has(k)).map((k) => rows.get(k)!);
  if (lines.length === 0) return;
  console.log(
    [
      `arch × type vs the F32 twin (${PROMPT.length}-token prompt, F32 KV cache; ${((Date.now() - started) / 1000).toFixed(0)} s for all cases)`,
      'arch / type              NMSE moerun  llama.cpp  worst row: moerun  llama.cpp  top-1 decisive: moerun  llama.cpp' +
        '  moerun vs llama.cpp  KV B/token  routing vs F32: flips near-ties margin',
      ...lines,
      ...(routingNotes.length > 0
        ? ['Routing choices that quantization moved (shared by both engines, which run the same weights as the twin):', ...routingNotes]
        : []),
    ].join('\n'),
  );
});

const fmt = (x: number) => (Number.isNaN(x) ? 'n/a' : x.toExponential(2));

function tableRow(arch: string, type: string, r: CaseResult, note = ''): void {
  const ours = r.ours instanceof Error ? null : r.ours;
  const llama = r.llama instanceof OracleError ? null : r.llama;
  const top1 = (c: LogitComparison | null) => (c ? `${c.top1Decisive.agree}/${c.top1Decisive.total}` : 'n/a');
  const routing = r.routing
    ? `${String(r.routing.flips.length).padStart(20)} ${String(r.routing.unstable.length).padStart(10)} ${r.routing.minMargin.toFixed(2).padStart(6)}`
    : '-'.padStart(20);
  rows.set(
    key(arch, type),
    `${`${arch} / ${type}`.padEnd(24)} ${(ours ? fmt(ours.nmse) : 'FAIL').padStart(11)} ${(llama ? fmt(llama.nmse) : 'FAIL').padStart(10)}` +
      ` ${fmt(r.worstRow.ours).padStart(18)} ${fmt(r.worstRow.llama).padStart(10)} ${top1(ours).padStart(23)} ${top1(llama).padStart(10)}` +
      ` ${fmt(r.sameFile).padStart(20)} ${String(r.kvBytesPerToken).padStart(11)} ${routing}${note ? `   ${note}` : ''}`,
  );
  if (r.routing && (r.routing.flips.length > 0 || r.routing.unstable.length > 0)) {
    routingNotes.push(
      `  ${arch} / ${type}: ${r.routing.flips.length > 0 ? `flipped vs F32 at ${r.routing.flips.join(', ')}` : ''}` +
        `${r.routing.unstable.length > 0 ? `${r.routing.flips.length > 0 ? '; ' : ''}near-tie (changes over the scale range) at ${r.routing.unstable.join(', ')}` : ''}`,
    );
  }
}

/** The largest llama.cpp NMSE vs the twin at `type` over the other architectures where it ran. */
async function llamaRange(type: string, except: string): Promise<{ min: number; max: number; n: number }> {
  const values: number[] = [];
  for (const c of CASES) {
    if (c.name === except || !results.has(key(c.name, type))) continue;
    const r = await results.get(key(c.name, type))!;
    if (r.ok && !(r.value.llama instanceof OracleError) && !knownFailures[key(c.name, type)]) values.push(r.value.llama.nmse);
  }
  return { min: Math.min(...values), max: Math.max(...values), n: values.length };
}

// ============================================================================================
// Tests
// ============================================================================================

function check(arch: string, type: QuantizeType): void {
  const known = knownFailures[key(arch, type)];
  if (known) {
    it.todo(`${type}: moerun within llama.cpp's distance of the F32 twin — known failure: ${known}`);
    it(`${type}: (known failure, reported only)`, async () => {
      tableRow(arch, type, await result(arch, type), `KNOWN FAILURE: ${known}`);
    }, TIMEOUT);
    return;
  }
  it(`${type}: moerun is no further from the F32 twin than llama.cpp (NMSE ≤ 1.25×, top-1 on decisive ≥)`, async () => {
    const r = await result(arch, type);
    if (r.ours instanceof Error) {
      tableRow(arch, type, r, `MOERUN FAILED: ${r.ours.message}`);
      throw r.ours;
    }
    const ours = r.ours;
    // The twin is decisive at most positions, so top-1 agreement means something.
    expect(ours.top1Decisive.total).toBeGreaterThanOrEqual(PROMPT.length / 2);
    expect(ours.nmse).toBeGreaterThanOrEqual(0); // not NaN
    if (r.routing && ROUTING_EXACT_TYPES.includes(type)) expect(r.routing.flips, 'routing choices moved by quantization').toEqual([]);

    if (r.llama instanceof OracleError) {
      const range = await llamaRange(type, arch);
      const why = r.llama.signal ? `killed by ${r.llama.signal}` : `exit code ${r.llama.exitCode}`;
      const note =
        `llama.cpp cannot run this file (${why}): moerun's NMSE checked against llama.cpp's range on ${range.n} other ` +
        `architectures at ${type}, ${fmt(range.min)}..${fmt(range.max)} (bound: ${FALLBACK_FACTOR}× the largest)`;
      tableRow(arch, type, r, note);
      console.log(`${arch} / ${type}: ${note}`);
      expect(range.n, `no other architecture where llama.cpp runs ${type}`).toBeGreaterThan(0);
      expect(ours.nmse).toBeLessThanOrEqual(FALLBACK_FACTOR * range.max + NMSE_FLOOR);
      expect(ours.top1Decisive.fraction).toBe(1);
      return;
    }
    tableRow(arch, type, r);
    const llama = r.llama;
    expect(llama.nmse, "llama.cpp's own distance to the twin (a wrong twin blows it up)").toBeLessThanOrEqual(LLAMA_MAX_NMSE);
    expect(ours.nmse).toBeLessThanOrEqual(1.25 * llama.nmse + NMSE_FLOOR);
    expect(ours.top1Decisive.agree).toBeGreaterThanOrEqual(llama.top1Decisive.agree);
    // Row by row too: a routing near-tie that only moerun resolved differently from the twin shows
    // here as one row at ~1e-2 (routingCheck lists the near-ties).
    expect(r.worstRow.ours, 'worst row').toBeLessThanOrEqual(1.25 * r.worstRow.llama + NMSE_FLOOR);
  }, TIMEOUT);
}

for (const c of CASES) {
  describe(c.name, () => {
    for (const type of typesOf(c.name)) check(c.name, type);
  });
}
