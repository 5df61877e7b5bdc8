// Model files that are well-formed GGUF but inconsistent as models: each is refused at load with a
// MoerunError naming what is wrong, never a crash or an error deep inside generation.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { bundledModelPath, loadModel, MoerunError } from 'moerun';
import { writeGguf, type GgufValue } from '../lib/gguf/writer.js';
import { makeModelSpec, type MakeModelOptions } from '../scripts/make-model.js';

const dir = mkdtempSync(path.join(tmpdir(), 'moerun-hostile-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A make-model file with some metadata replaced (`edit` returns the new value, or undefined to drop the key). */
async function edited(name: string, options: Omit<MakeModelOptions, 'out'>, edit: (key: string, value: GgufValue) => GgufValue | undefined): Promise<string> {
  const out = path.join(dir, `${name}.gguf`);
  const spec = makeModelSpec({ ...options, out });
  const metadata = (spec.metadata as [string, GgufValue][]).flatMap(([k, v]): [string, GgufValue][] => {
    const nv = edit(k, v);
    return nv === undefined ? [] : [[k, nv]];
  });
  await writeGguf(out, { ...spec, metadata });
  return out;
}

describe('inconsistent models are refused at load', () => {
  it('a vocabulary of 300 tokens beside embedding and output matrices of 512 rows', async () => {
    const file = await edited('vocab-300', { arch: 'llama', nVocab: 512 }, (k, v) =>
      k === 'tokenizer.ggml.tokens' || k === 'tokenizer.ggml.scores' || k === 'tokenizer.ggml.token_type'
        ? ((v as unknown as { slice(a: number, b: number): GgufValue }).slice(0, 300) as GgufValue)
        : v,
    );
    await expect(loadModel(file, { threads: 1 })).rejects.toMatchObject({
      code: 'ERR_BAD_FORMAT',
      message: expect.stringMatching(/the vocabulary has 300 tokens but token_embd.weight has 512 rows/),
    });
  });

  it('an expert count of 2^31 is named as the file stores it', async () => {
    const file = await edited('experts-2p31', { arch: 'qwen3moe', nExpert: 8 }, (k, v) =>
      k === 'qwen3moe.expert_count' ? { type: 'u32', value: 2 ** 31 } : v,
    );
    await expect(loadModel(file, { threads: 1 })).rejects.toMatchObject({
      code: 'ERR_BAD_FORMAT',
      message: expect.stringMatching(/'qwen3moe.expert_count' is 2147483648, not a count/),
    });
  });

  it('a negative head count (i32) is not a count', async () => {
    const file = await edited('heads-negative', { arch: 'llama' }, (k, v) => (k === 'llama.attention.head_count' ? { type: 'i32', value: -8 } : v));
    await expect(loadModel(file, { threads: 1 })).rejects.toMatchObject({
      code: 'ERR_BAD_FORMAT',
      message: expect.stringMatching(/'llama.attention.head_count' is -8, not a count/),
    });
  });
});

describe('token ids out of range', () => {
  it('are a MoerunError in evaluate and generate, never a RangeError from inside', async () => {
    await using m = await loadModel(bundledModelPath, { threads: 1 });
    const s = m.createSession({ contextSize: 64 });
    for (const bad of [[512], [1, -1], [1, 2.5], [1e9]]) {
      const viaEvaluate = await s.evaluate(bad).then(() => undefined, (e: unknown) => e);
      const viaGenerate = await (async () => {
        for await (const _ of s.generate(bad, { maxTokens: 2 })) { /* drain */ }
      })().then(() => undefined, (e: unknown) => e);
      for (const err of [viaEvaluate, viaGenerate]) {
        expect(err).toBeInstanceOf(MoerunError);
        expect(err).toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringMatching(/Expected token ids in \[0, 512\)/) });
      }
    }
    expect(() => m.detokenize([600])).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
  });
});

describe('faults as errors', () => {
  it('a context the host cannot hold is ERR_OUT_OF_MEMORY before anything is allocated, and the model goes on', async () => {
    await using m = await loadModel(bundledModelPath, { threads: 1 });
    // stories260K: 640 bytes of F16 cache per token, so 10^8 tokens are 60 GiB and 10^9 are 600 GiB.
    for (const contextSize of [1e8, 1e9, 2 ** 31 - 1]) {
      expect(() => m.createSession({ contextSize })).toThrow(
        expect.objectContaining({ code: 'ERR_OUT_OF_MEMORY', message: expect.stringMatching(/a KV cache of \d+ tokens needs [\d.]+ GiB, but this host has [\d.]+ GiB available/) }),
      );
    }
    expect((await m.createSession({ contextSize: 64 }).generate('Once', { maxTokens: 3, temperature: 0 }).text()).length).toBeGreaterThan(0);
  });

  it('a context size past 32 bits is refused, not wrapped (2^31 once read as -2^31)', async () => {
    await using m = await loadModel(bundledModelPath, { threads: 1 });
    for (const contextSize of [2 ** 31, 3e9, 2 ** 53]) {
      expect(() => m.createSession({ contextSize })).toThrow(
        expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', message: `contextSize ${contextSize} is larger than the largest supported, 2147483647` }),
      );
    }
  });
});
