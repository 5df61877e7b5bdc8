// The CPU's interleaved weight rows (native/cpu/interleave.h): where the CPU path has interleaved
// tiles (AVX512_VNNI: Q4_K, Q5_K), the loader rewrites those weights at load, in the private
// copy (weightMemory 'copy') or in private memory that replaces their file pages ('map'). The
// kernels over that layout sum exactly as the ones over the rows in place, so the logits must be
// the same bits as a load that keeps the file's layout (prefetch: false skips the rewrite).
// test_kernels checks each kernel against the rows in place; this checks the loader and the model.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { loadModel, quantize } from 'moerun';
import { makeModel } from '../scripts/make-model.js';

const dir = mkdtempSync(join(tmpdir(), 'moerun-interleave-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('interleaved weight rows', () => {
  it('give the same logits as the rows in place, copied or mapped (qwen3moe, Q4_K_M)', async () => {
    const f32 = join(dir, 'qwen3moe-f32.gguf');
    const q = join(dir, 'qwen3moe-q4_k_m.gguf');
    await makeModel({ arch: 'qwen3moe', nExpert: 8, nExpertUsed: 2, nFfExp: 256, out: f32 });
    await quantize(f32, q, 'Q4_K_M', { threads: 1 });
    await using copied = await loadModel(q, { threads: 2, weightMemory: 'copy' });
    await using mapped = await loadModel(q, { threads: 2, weightMemory: 'map' });
    await using inPlace = await loadModel(q, { threads: 2, weightMemory: 'map', prefetch: false });
    expect(inPlace.info.weightsArranged).toBe(0);
    expect(mapped.info.weightsArranged).toBe(copied.info.weightsArranged);
    if (copied.info.weightsArranged === 0) {
      console.log(`interleave: the ${copied.info.cpuPath} path of this CPU has no interleaved tiles; only the unarranged load ran`);
    } else {
      // Most of the file: every matmul weight but the token embedding.
      expect(copied.info.weightsArranged).toBeGreaterThan(0.5 * copied.info.sizeBytes);
    }
    const tokens = inPlace.tokenize('Once upon a time, in a land far away, there was');
    const logits = async (m: typeof inPlace): Promise<number[]> => {
      await using s = m.createSession({ contextSize: 64 });
      const prompt = Array.from(await s.evaluate(tokens));  // a prompt batch: the packed tiles
      const step = Array.from(await s.evaluate([tokens[1]!]));  // one token: the decode kernels
      return [...prompt, ...step];
    };
    const want = await logits(inPlace);
    expect(await logits(copied)).toEqual(want);
    expect(await logits(mapped)).toEqual(want);
  }, 120_000);

  it('report the rewrite as load progress and stop it on an abort (mapped and copied)', async () => {
    const q = join(dir, 'qwen3moe-q4_k_m.gguf');  // from the test above
    for (const weightMemory of ['map', 'copy'] as const) {
      const fractions: number[] = [];
      await using m = await loadModel(q, { threads: 2, weightMemory, onProgress: (f) => fractions.push(f) });
      // Mapped, the rewrite reports its bytes first, then the page walk the rest: never backwards.
      expect(fractions.length).toBeGreaterThan(1);
      for (let i = 1; i < fractions.length; ++i) expect(fractions[i]).toBeGreaterThanOrEqual(fractions[i - 1]!);
      expect(fractions.at(-1)).toBe(1);
      if (weightMemory === 'map' && m.info.weightsArranged > 0) {
        // The first report comes from the rewrite: at most the share of the bytes it rewrites.
        expect(fractions[0]).toBeLessThanOrEqual(m.info.weightsArranged / m.info.sizeBytes + 1e-9);
      }
      // Aborted at its first report, the load stops with ERR_ABORTED and leaves nothing behind.
      const c = new AbortController();
      const load = loadModel(q, { threads: 2, weightMemory, signal: c.signal, onProgress: () => c.abort() });
      await expect(load).rejects.toMatchObject({ code: 'ERR_ABORTED' });
    }
  }, 120_000);
});
