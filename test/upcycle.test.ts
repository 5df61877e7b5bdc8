// Upcycling (DESIGN.md, "A real trained model" → Upcycling test): stories260K turned into a llama
// MoE (Mixtral layout) whose every expert is the dense FFN with its hidden units permuted by the
// expert's own random permutation, behind a random router. Every expert computes the same function
// and Mixtral renormalizes the routing weights over the top k, so the MoE's logits must equal the
// dense model's (NMSE ≤ 1e-10) for top-k = 1, 2 and all experts: this exercises routing, gather and
// combine exactly, on trained weights. llama.cpp must agree on the upcycled files too. A control
// file whose expert 0 differs shows that the router really picks experts (the check has teeth).

import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { bundledModelPath, loadModel, readGgufInfo, type GgufInfo } from 'moerun';
import { encodeF32, writeGguf, type GgufTensorInput, type GgufValue } from '../lib/gguf/writer.js';
import { nmse } from './helpers/metrics.js';
import { llamaCppLogits } from './helpers/oracle.js';
import { rng } from './helpers/random.js';

const N_EXPERT = 4;
const CONTEXT = 64;
const ORACLE = { threads: 1, contextSize: CONTEXT } as const;
const TIMEOUT = 120_000;

const dir = mkdtempSync(join(tmpdir(), 'moerun-upcycle-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// ============================================================================================
// Building the upcycled file
// ============================================================================================


function permutation(n: number, next: () => number): Int32Array {
  const p = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [p[i], p[j]] = [p[j]!, p[i]!];
  }
  return p;
}

/** The metadata of `info` with explicit GGUF types (llama.cpp checks them), plus `extra`. */
function metadataOf(info: GgufInfo, extra: [string, GgufValue][]): [string, GgufValue][] {
  const out: [string, GgufValue][] = [];
  for (const [key, value] of Object.entries(info.metadata)) {
    if (key === 'llama.attention.layer_norm_rms_epsilon') out.push([key, { type: 'f32', value: value as number }]);
    else out.push([key, value as GgufValue]);
  }
  return [...out, ...extra];
}

interface UpcycleOptions {
  nExpertUsed: number;
  /** Control: scale expert 0's down projection by this (1 = a true upcycle). */
  expert0Scale?: number;
  seed?: number;
}

/**
 * stories260K as a Mixtral-style MoE: per layer a random router `ffn_gate_inp` (n_expert, n_embd)
 * and stacked experts, expert e = the dense FFN with hidden unit j taken from unit perm_e[j].
 */
async function writeUpcycled(info: GgufInfo, bytes: Buffer, out: string, o: UpcycleOptions): Promise<string> {
  const next = rng(o.seed ?? 1234);
  const f32 = (name: string): { t: GgufInfo['tensors'][number]; v: Float32Array } => {
    const t = info.tensors.find((x) => x.name === name);
    if (!t || t.type !== 'F32') throw new Error(`upcycle: expected an F32 tensor ${name}`);
    return { t, v: new Float32Array(bytes.buffer.slice(bytes.byteOffset + t.offset, bytes.byteOffset + t.offset + t.byteSize)) };
  };
  const nEmbd = info.metadata['llama.embedding_length'] as number;
  const nFf = info.metadata['llama.feed_forward_length'] as number;
  const tensors: GgufTensorInput[] = [];
  for (const t of info.tensors) {
    const m = /^blk\.(\d+)\.ffn_(gate|up|down)\.weight$/.exec(t.name);
    if (!m) {
      tensors.push({ name: t.name, type: 'F32', shape: t.shape, data: f32(t.name).v });
      continue;
    }
    if (m[2] !== 'gate') continue; // the layer's experts are written once, at its ffn_gate
    const il = m[1];
    const gate = f32(`blk.${il}.ffn_gate.weight`).v; // (n_ff, n_embd): row j is hidden unit j
    const up = f32(`blk.${il}.ffn_up.weight`).v;
    const down = f32(`blk.${il}.ffn_down.weight`).v; // (n_embd, n_ff): column j is hidden unit j
    const router = Float32Array.from({ length: nEmbd * N_EXPERT }, () => (next() - 0.5) * 2); // (n_expert, n_embd)
    const gateExps = new Float32Array(nEmbd * nFf * N_EXPERT); // (n_expert, n_ff, n_embd)
    const upExps = new Float32Array(nEmbd * nFf * N_EXPERT);
    const downExps = new Float32Array(nFf * nEmbd * N_EXPERT); // (n_expert, n_embd, n_ff)
    for (let e = 0; e < N_EXPERT; e++) {
      const perm = permutation(nFf, next);
      const scale = e === 0 ? (o.expert0Scale ?? 1) : 1;
      for (let j = 0; j < nFf; j++) {
        const src = perm[j]!;
        gateExps.set(gate.subarray(src * nEmbd, (src + 1) * nEmbd), (e * nFf + j) * nEmbd);
        upExps.set(up.subarray(src * nEmbd, (src + 1) * nEmbd), (e * nFf + j) * nEmbd);
        for (let r = 0; r < nEmbd; r++) downExps[(e * nEmbd + r) * nFf + j] = scale * down[r * nFf + src]!;
      }
    }
    tensors.push({ name: `blk.${il}.ffn_gate_inp.weight`, type: 'F32', shape: [nEmbd, N_EXPERT], data: encodeF32(router) });
    tensors.push({ name: `blk.${il}.ffn_gate_exps.weight`, type: 'F32', shape: [nEmbd, nFf, N_EXPERT], data: encodeF32(gateExps) });
    tensors.push({ name: `blk.${il}.ffn_up_exps.weight`, type: 'F32', shape: [nEmbd, nFf, N_EXPERT], data: encodeF32(upExps) });
    tensors.push({ name: `blk.${il}.ffn_down_exps.weight`, type: 'F32', shape: [nFf, nEmbd, N_EXPERT], data: encodeF32(downExps) });
  }
  const metadata = metadataOf(info, [
    ['llama.expert_count', { type: 'u32', value: N_EXPERT }],
    ['llama.expert_used_count', { type: 'u32', value: o.nExpertUsed }],
  ]);
  await writeGguf(out, { metadata, tensors });
  return out;
}

// ============================================================================================
// Tests
// ============================================================================================

async function ourLogits(path: string, prompt: number[]): Promise<Float32Array> {
  const model = await loadModel(path, { threads: 1 });
  try {
    const session = model.createSession({ contextSize: CONTEXT, kvCacheType: 'f32' });
    return await session.evaluate(prompt, { logits: 'all' });
  } finally {
    await model.dispose();
  }
}

describe('upcycled stories260K (every expert = the dense FFN, permuted)', () => {
  let info: GgufInfo;
  let bytes: Buffer;
  let prompt: number[];
  let dense: Float32Array;
  let denseRef: Float32Array;

  beforeAll(async () => {
    info = await readGgufInfo(bundledModelPath);
    bytes = readFileSync(bundledModelPath);
    const model = await loadModel(bundledModelPath, { threads: 1 });
    prompt = Array.from(model.tokenize('Once upon a time, there was a little girl named Lily. She loved to play'));
    await model.dispose();
    expect(prompt[0]).toBe(1); // BOS
    [dense, denseRef] = await Promise.all([
      ourLogits(bundledModelPath, prompt),
      llamaCppLogits(bundledModelPath, prompt, ORACLE).then((r) => r.logits),
    ]);
    expect(nmse(dense, denseRef)).toBeLessThanOrEqual(1e-10);
  }, TIMEOUT);

  for (const k of [1, 2, N_EXPERT]) {
    it(`top-${k} of ${N_EXPERT}: moerun's logits equal the dense model's, and llama.cpp's`, async () => {
      const path = await writeUpcycled(info, bytes, join(dir, `upcycled-top${k}.gguf`), { nExpertUsed: k });
      const loaded = await loadModel(path, { threads: 1 });
      expect(loaded.info).toMatchObject({ architecture: 'llama', expertCount: N_EXPERT, expertUsedCount: k });
      await loaded.dispose();
      const [ours, ref] = await Promise.all([ourLogits(path, prompt), llamaCppLogits(path, prompt, ORACLE).then((r) => r.logits)]);
      const vsDense = nmse(ours, dense);
      console.log(`upcycled top-${k}: NMSE vs dense ${vsDense.toExponential(2)}, vs llama.cpp ${nmse(ours, ref).toExponential(2)}, llama.cpp vs its dense ${nmse(ref, denseRef).toExponential(2)}`);
      expect(vsDense).toBeLessThanOrEqual(1e-10);
      expect(nmse(ours, ref)).toBeLessThanOrEqual(1e-10);
      expect(nmse(ref, denseRef)).toBeLessThanOrEqual(1e-10);
    }, TIMEOUT);
  }

  it('control: with expert 0 changed, the logits leave the dense ones, and moerun still matches llama.cpp', async () => {
    const path = await writeUpcycled(info, bytes, join(dir, 'control.gguf'), { nExpertUsed: 2, expert0Scale: 0 });
    const [ours, ref] = await Promise.all([ourLogits(path, prompt), llamaCppLogits(path, prompt, ORACLE).then((r) => r.logits)]);
    // Some token routes to expert 0 somewhere: the comparison with the dense model can fail.
    console.log(`control (expert 0 silenced): llama.cpp vs dense NMSE ${nmse(ref, denseRef).toExponential(2)}, moerun vs llama.cpp ${nmse(ours, ref).toExponential(2)}`);
    expect(nmse(ref, denseRef)).toBeGreaterThan(1e-4);
    expect(nmse(ours, ref)).toBeLessThanOrEqual(1e-10);
  }, TIMEOUT);
});
