// The CUDA backend's test models: every architecture's well-conditioned synthetic model
// (scripts/make-model.ts, the shapes of test/arch.test.ts) in the weight types the CUDA checks run,
// written for test_cuda_backend --models: on the GPU machine (bench/peer/gpu-prepare.ts fills
// .device/models) and under the CUDA emulator (test/cuda-emulator.test.ts, a subset).
//
// <name>-<type>.gguf, type: F32 (dense), F16 (MLA), Q8_0, Q4_K_M (moerun's quantizer) or IQ-mix
// (one lattice type per kind of weight, with an importance matrix computed here).
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { computeImatrix } from '../lib/imatrix.js';
import { quantize } from '../lib/quantize.js';
import { makeModel, type MakeModelOptions } from './make-model.js';

export type CudaTestType = 'F32' | 'F16' | 'Q8_0' | 'Q4_K_M' | 'IQ-mix';

export const cudaTestModels: { name: string; options: Omit<MakeModelOptions, 'out'>; types: CudaTestType[] }[] = [
  { name: 'llama', options: { arch: 'llama' }, types: ['F32', 'Q4_K_M'] },
  { name: 'llama-moe', options: { arch: 'llama', nExpert: 8, nExpertUsed: 2, nFfExp: 256 }, types: ['Q8_0', 'Q4_K_M', 'IQ-mix'] },
  { name: 'qwen2', options: { arch: 'qwen2' }, types: ['F32', 'Q4_K_M'] },
  { name: 'qwen3moe', options: { arch: 'qwen3moe', nExpert: 8, nExpertUsed: 2, nFfExp: 256 }, types: ['Q4_K_M'] },
  { name: 'qwen2moe', options: { arch: 'qwen2moe' }, types: ['Q4_K_M'] },
  { name: 'olmoe', options: { arch: 'olmoe' }, types: ['Q4_K_M'] },
  { name: 'bailingmoe2', options: { arch: 'bailingmoe2' }, types: ['Q4_K_M'] },
  { name: 'deepseek2-v3', options: { arch: 'deepseek2' }, types: ['F16', 'Q4_K_M'] },
  {
    name: 'deepseek2-v2lite',
    options: {
      arch: 'deepseek2', qLoraRank: 0, expertGating: 'softmax', expertSelectionBias: false, nExpertGroups: 0,
      expertWeightsNorm: false, expertWeightsScale: 0, nExpertShared: 2, yarnMscaleAllDim: 0.707,
    },
    types: ['Q4_K_M'],
  },
];

// IQ-mix: one lattice type per kind of weight (IQ2_S's recipe, then overrides), so a model runs
// through all seven; IQ1_S, IQ1_M, IQ2_XXS and IQ2_XS need an importance matrix. Gate and up
// experts differ in type, as in llama.cpp's low-bit mixes.
async function quantizeIqMix(source: string, out: string): Promise<void> {
  const words = ['once', 'upon', 'a', 'time', 'there', 'was', 'a', 'little', 'girl', 'named', 'lily'];
  const text = Array.from({ length: 600 }, (_, i) => words[(i * 7919) % words.length]).join(' ');
  const imatrix = await computeImatrix(source, text, { contextSize: 64, chunks: 2, threads: 2 });
  await quantize(source, out, 'IQ2_S', {
    threads: 2,
    imatrix,
    tensorTypes: [
      { pattern: 'ffn_gate_exps', type: 'IQ1_S' }, { pattern: 'ffn_up_exps', type: 'IQ1_M' }, { pattern: 'ffn_down_exps', type: 'IQ2_XXS' },
      { pattern: 'attn_v', type: 'IQ2_XS' }, { pattern: 'attn_q', type: 'IQ3_XXS' }, { pattern: 'attn_k', type: 'IQ3_S' },
      { pattern: 'attn_output', type: 'IQ2_S' },
    ],
  });
}

/**
 * Writes the models (all, or those whose `<name>-<type>` `want` accepts) into `dir`, which is
 * emptied first; returns their paths.
 */
export async function writeCudaTestModels(dir: string, want: (file: string) => boolean = () => true): Promise<string[]> {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const written: string[] = [];
  const scratch = path.join(dir, 'source-F32.gguf');  // each architecture's F32 file, quantized from
  for (const a of cudaTestModels) {
    const types = a.types.filter((t) => want(`${a.name}-${t}`));
    if (types.length === 0) continue;
    await makeModel({ ...a.options, out: scratch });
    for (const t of types) {
      const out = path.join(dir, `${a.name}-${t}.gguf`);
      if (t === 'F32') copyFileSync(scratch, out);
      else if (t === 'F16') await makeModel({ ...a.options, type: 'f16', out });
      else if (t === 'IQ-mix') await quantizeIqMix(scratch, out);
      else await quantize(scratch, out, t, { threads: 2 });
      written.push(out);
    }
  }
  rmSync(scratch, { force: true });
  return written;
}
