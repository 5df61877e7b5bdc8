// What an importance matrix buys at very low bits: a model quantized to TYPE (llama.cpp's mix)
// with moerun's importance matrix, against the same mix with a uniform matrix (every column
// weighted 1: what the quantizer assumes knowing nothing about the activations), both compared
// with the F32 model by mean KL divergence and top-1 agreement on held-out text (lib/bench).
//
//   npx tsx bench/imatrix-quality.ts [--model F32.gguf] [--type IQ2_XXS] [--text FILE] [--ctx 128]
//                                    [--chunks 8] [--eval-tokens 1024] [--threads 2]
//
// Without --model it writes the synthetic qwen3moe test model (scripts/make-model.ts, 8 experts).
// The text (default: the bundled Aesop fables) is cut in two: the matrix is computed on the first
// half, KL measured on the second (held out).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

import { readFileSync } from 'node:fs';

import { measureQuality } from '../lib/bench/measure.js';
import { defaultTextPath } from '../lib/bench/options.js';
import { computeImatrix, writeImatrix, type Imatrix } from '../lib/imatrix.js';
import { quantize, type QuantizeType } from '../lib/quantize.js';
import { makeModel } from '../scripts/make-model.js';

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    type: { type: 'string', default: 'IQ2_XXS' },
    text: { type: 'string' },
    ctx: { type: 'string', default: '128' },
    chunks: { type: 'string', default: '8' },
    'eval-tokens': { type: 'string', default: '1024' },
    threads: { type: 'string', default: '2' },
  },
});
const threads = Number(values.threads);
const type = values.type as QuantizeType;

const text = readFileSync(values.text ?? defaultTextPath, 'utf8');
const calibrationText = text.slice(0, Math.floor(text.length / 2));
const evalText = text.slice(Math.floor(text.length / 2));

const dir = mkdtempSync(path.join(tmpdir(), 'moerun-imatrix-quality-'));
try {
  const f32 = values.model ?? (await makeModel({ arch: 'qwen3moe', nExpert: 8, nExpertUsed: 2, out: path.join(dir, 'qwen3moe.gguf'), type: 'f32' })).path;
  const t0 = performance.now();
  const computed = await computeImatrix(f32, calibrationText, { contextSize: Number(values.ctx), chunks: Number(values.chunks), threads });
  const computeS = (performance.now() - t0) / 1000;
  // the same entries with every column's importance 1 (sums = counts)
  const uniform: Imatrix = {
    ...computed,
    entries: new Map([...computed.entries].map(([name, e]) => [name, { sums: new Float32Array(e.sums.length).fill(1), counts: new Float32Array(e.counts.length).fill(1) }])),
  };
  const withPath = path.join(dir, `${type}-imatrix.gguf`);
  const uniformPath = path.join(dir, `${type}-uniform.gguf`);
  await writeImatrix(path.join(dir, 'imatrix.gguf'), computed);
  await quantize(f32, withPath, type, { imatrix: computed, threads });
  await quantize(f32, uniformPath, type, { imatrix: uniform, threads });
  const q = await measureQuality(f32, [uniformPath, withPath], evalText, { threads, qualityTokens: Number(values['eval-tokens']) }, dir, () => undefined);
  const [uni, imx] = q.results;
  console.log(`model ${values.model ?? 'synthetic qwen3moe (8 experts)'}, ${type}, imatrix: ${computed.chunkCount} chunks of ${computed.chunkSize} tokens (${computeS.toFixed(1)} s); evaluation: ${q.tokens} held-out tokens`);
  console.log(`  uniform importance: mean KL ${uni!.meanKl.toExponential(3)} nats, top-1 ${(uni!.top1 * 100).toFixed(1)}%`);
  console.log(`  moerun imatrix:     mean KL ${imx!.meanKl.toExponential(3)} nats, top-1 ${(imx!.top1 * 100).toFixed(1)}%  (KL ratio ${(imx!.meanKl / uni!.meanKl).toFixed(3)})`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
