// The oracle harness and make-model against llama.cpp (node-llama-cpp, in a child process):
// make-model's files load and give finite, well-conditioned logits; the F16 file agrees with its
// F32 twin; each structural option (tied embeddings, experts, expert_used_count) reaches llama.cpp;
// greedy decoding is consistent with teacher forcing; failures come back as OracleError.
// Also unit tests for the metrics.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { writeGguf, type GgufValue } from '../lib/gguf/writer.js';
import { makeModel, makeModelSpec, type MakeModelOptions } from '../scripts/make-model.js';
import { argmaxRows, compareLogits, decisivePositions, maxAbsDiff, nmse, top1Agreement } from './helpers/metrics.js';
import { OracleError, hostHasAmx, llamaCppGenerate, llamaCppLogits, oracleLauncher } from './helpers/oracle.js';
import { run } from './helpers/run.js';

const dir = mkdtempSync(join(tmpdir(), 'moerun-oracle-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const N_VOCAB = 512;
// BOS, then a mix of byte tokens and word pieces.
const PROMPT = [1, 300, 72, 350, 301, 400, 120, 302, 450, 303, 500, 304];
const OPTS = { threads: 1 } as const;
const TIMEOUT = 180_000; // several llama.cpp runs each: minutes on a loaded 2-core machine

const model = (name: string, o: Partial<MakeModelOptions> = {}) => makeModel({ arch: 'llama', out: join(dir, name), seed: 7, ...o });

const finite = (x: Float32Array) => x.every(Number.isFinite);

describe('llama.cpp oracle on make-model files', () => {
  let f32Path = '';
  let f32Logits: Float32Array;

  beforeAll(async () => {
    f32Path = (await model('llama-f32.gguf')).path;
    f32Logits = (await llamaCppLogits(f32Path, PROMPT, OPTS)).logits;
  }, TIMEOUT);

  it('gives finite, decisive logits for every position, identically on a second run', async () => {
    const again = await llamaCppLogits(f32Path, PROMPT, OPTS);
    expect(again.nVocab).toBe(N_VOCAB);
    expect(f32Logits.length).toBe(PROMPT.length * N_VOCAB);
    expect(finite(f32Logits)).toBe(true);
    expect(Buffer.from(again.logits.buffer).equals(Buffer.from(f32Logits.buffer))).toBe(true); // F32 KV: bit-identical
    // Well conditioned: logits ~ N(0, outputScale²) and a clear top-1 almost everywhere.
    const rms = Math.sqrt(f32Logits.reduce((s, v) => s + v * v, 0) / f32Logits.length);
    expect(rms).toBeGreaterThan(2);
    expect(rms).toBeLessThan(8);
    expect(decisivePositions(f32Logits, N_VOCAB).length).toBeGreaterThanOrEqual(PROMPT.length - 1);
    // Positions differ (attention and the token both matter).
    const top = argmaxRows(f32Logits, N_VOCAB);
    expect(new Set(top).size).toBeGreaterThan(PROMPT.length / 2);
  }, TIMEOUT);

  it('F16 weights agree with the F32 twin to F16 precision (the converter and byte order are right)', async () => {
    const f16 = await llamaCppLogits((await model('llama-f16.gguf', { type: 'f16' })).path, PROMPT, OPTS);
    const c = compareLogits(f16.logits, f32Logits, N_VOCAB);
    expect(c.nmse).toBeGreaterThan(0); // it really is a different file
    expect(c.nmse).toBeLessThan(1e-5);
    expect(c.top1Decisive.fraction).toBe(1);
  }, TIMEOUT);

  it('tied embeddings, Mixtral experts and qwen3moe all reach llama.cpp', async () => {
    const tied = await llamaCppLogits((await model('tied.gguf', { tiedEmbeddings: true })).path, PROMPT, OPTS);
    expect(finite(tied.logits)).toBe(true);
    expect(nmse(tied.logits, f32Logits)).toBeGreaterThan(0.5);

    const moe2 = await llamaCppLogits((await model('moe2.gguf', { nExpert: 4, nExpertUsed: 2, nFfExp: 256 })).path, PROMPT, OPTS);
    const moe1 = await llamaCppLogits((await model('moe1.gguf', { nExpert: 4, nExpertUsed: 1, nFfExp: 256 })).path, PROMPT, OPTS);
    expect(finite(moe2.logits) && finite(moe1.logits)).toBe(true);
    // Same weights, top-2 vs top-1 routing: expert_used_count changes llama.cpp's logits.
    const d = nmse(moe1.logits, moe2.logits);
    expect(d).toBeGreaterThan(1e-3);
    expect(decisivePositions(moe2.logits, N_VOCAB).length).toBeGreaterThanOrEqual(PROMPT.length - 2);

    // qwen3moe = the same weights plus QK-norm: loads, and the norm changes the logits.
    const q3 = await llamaCppLogits((await model('qwen3moe.gguf', { arch: 'qwen3moe', nExpert: 4, nExpertUsed: 2, nFfExp: 256 })).path, PROMPT, OPTS);
    expect(finite(q3.logits)).toBe(true);
    expect(nmse(q3.logits, moe2.logits)).toBeGreaterThan(1e-2);
  }, TIMEOUT);

  it('qwen2 (llama plus Q/K/V biases) loads, and the biases change the logits', async () => {
    const q2 = await llamaCppLogits((await model('qwen2.gguf', { arch: 'qwen2' })).path, PROMPT, OPTS);
    expect(finite(q2.logits)).toBe(true);
    expect(nmse(q2.logits, f32Logits)).toBeGreaterThan(1e-2);
    expect(decisivePositions(q2.logits, N_VOCAB).length).toBeGreaterThanOrEqual(PROMPT.length - 2);
  }, TIMEOUT);

  it('greedy generation matches teacher-forced argmax over its own output', async () => {
    const n = 8;
    const gen = await llamaCppGenerate(f32Path, PROMPT, n, OPTS);
    expect(gen.tokens.length).toBe(n);
    expect(gen.logits.length).toBe(n * N_VOCAB);
    // Row 0 is the prompt's last position: identical to the teacher-forced batch.
    expect(maxAbsDiff(gen.logits.subarray(0, N_VOCAB), f32Logits.subarray((PROMPT.length - 1) * N_VOCAB))).toBeLessThan(1e-4);
    expect(Array.from(argmaxRows(gen.logits, N_VOCAB))).toEqual(gen.tokens);
    // Teacher-force prompt + generated[0..n-2]: the argmax of the last n rows is the generation.
    const forced = await llamaCppLogits(f32Path, [...PROMPT, ...gen.tokens.slice(0, -1)], OPTS);
    const tail = forced.logits.subarray((PROMPT.length - 1) * N_VOCAB);
    expect(nmse(gen.logits, tail)).toBeLessThan(1e-10); // one-token decode vs batch: same math
    expect(Array.from(argmaxRows(tail, N_VOCAB))).toEqual(gen.tokens);
  }, TIMEOUT);

  it('reports a file llama.cpp cannot load as an OracleError, not a crash', async () => {
    // A file llama.cpp's loader rejects: its reason is in the error.
    const spec = makeModelSpec({ arch: 'llama', out: 'unused' });
    const metadata = (spec.metadata as [string, GgufValue][]).map(([k, v]): [string, GgufValue] => [k, k === 'llama.feed_forward_length' ? 300 : v]);
    const wrongShape = join(dir, 'wrong-shape.gguf');
    await writeGguf(wrongShape, { ...spec, metadata });
    const err = await llamaCppLogits(wrongShape, [1, 2], OPTS).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OracleError);
    expect((err as OracleError).exitCode).toBe(1);
    expect((err as OracleError).message).toMatch(/blk\.0\.ffn_gate\.weight' has wrong shape/);
    await expect(llamaCppLogits(f32Path, [], OPTS)).rejects.toThrow(/non-empty array/);
    await expect(llamaCppLogits(f32Path, [1], { thread: 2 } as never)).rejects.toThrow("Unknown oracle option 'thread'");
  }, TIMEOUT);
});

describe('the oracle on an AMX host', () => {
  // llama.cpp's AMX buffer type computes F16 matmuls with other kernels (and aborts on deepseek2 F16
  // files); the oracle refuses it the tile state so that it runs its CPU kernels on every host.
  it('runs llama.cpp under no_amx_tiles there, and directly elsewhere', async () => {
    const prefix = await oracleLauncher();
    if (!hostHasAmx()) {
      expect(prefix).toEqual([]);
      return;
    }
    expect(prefix).toHaveLength(1);
    // The launcher exits 2 unless its filter refused the tile state request; then it execs the program.
    const r = await run(prefix[0], [process.execPath, '-e', 'process.exit(7)']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(7);
  }, TIMEOUT);
});

describe('metrics', () => {
  it('nmse, maxAbsDiff and argmax', () => {
    const ref = Float32Array.of(1, 2, 3, 4);
    expect(nmse(ref, ref)).toBe(0);
    expect(nmse(Float32Array.of(1, 2, 3, 5), ref)).toBeCloseTo(1 / 30, 12);
    expect(maxAbsDiff(Float32Array.of(1, 2.5, 3, 3), ref)).toBe(1);
    expect(Number.isNaN(nmse(Float32Array.of(1, NaN, 3, 4), ref))).toBe(true);
    expect(Number.isNaN(maxAbsDiff(Float32Array.of(1, NaN, 3, 4), ref))).toBe(true);
    expect(() => nmse(ref, ref.subarray(1))).toThrow(/equal length/);
    expect(Array.from(argmaxRows(Float32Array.of(0, 5, 5, -1, -2, -Infinity), 3))).toEqual([1, 0]);
    expect(() => argmaxRows(ref, 3)).toThrow(/multiple of nVocab 3/);
  });

  it('top-1 agreement on all and decisive rows', () => {
    // Row 0: clear lead. Row 1: a near-tie (lead 0.01, RMS ~ 7). Row 2: clear lead.
    const ref = Float32Array.of(10, 0, 1, /**/ 10, 9.99, 0, /**/ 0, 0, 10);
    const a = Float32Array.of(10, 0, 1, /**/ 9.99, 10, 0, /**/ 10, 0, 9);
    expect(decisivePositions(ref, 3)).toEqual([0, 2]);
    expect(decisivePositions(ref, 3, 0)).toEqual([0, 1, 2]);
    expect(top1Agreement(a, ref, 3)).toEqual({ agree: 1, total: 3, fraction: 1 / 3, mismatches: [1, 2] });
    const c = compareLogits(a, ref, 3);
    expect(c.top1Decisive).toEqual({ agree: 1, total: 2, fraction: 0.5, mismatches: [2] });
    expect(c.maxAbsDiff).toBe(10);
  });
});
