// Prepares .device/ (git-ignored) for bench/peer/gpu-check.sh, on a CPU machine with nvcc: the
// CUDA library and C++ drivers compiled for sm_90a, and every architecture's test model.
//
//   npx tsx bench/peer/gpu-prepare.ts            # then, on the GPU machine: bash bench/peer/gpu-check.sh
//
// .device/cuda/   libmoerun_cuda.so and test_cuda_backend (the core linked in statically,
//                 the C++ runtime too, so they need only glibc there)
// .device/models/ <arch>-<type>.gguf: scripts/make-model.ts's well-conditioned models (the
//                 shapes of test/arch.test.ts): every architecture at Q4_K_M (moerun's quantizer),
//                 float files (F32 dense, F16 MLA) and Q8_0 for a few, and llama-moe with the
//                 seven lattice types (IQ-mix: IQ1_S, IQ1_M, IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS,
//                 IQ3_S, with an importance matrix computed here), ~50 MiB in all: the device tool
//                 carries at most 64 MiB with the working tree. Every op and weight type (TQ1_0,
//                 TQ2_0 and MXFP4 too, which no file type writes) is also checked on its own by
//                 test_cuda_backend --ops.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { computeImatrix } from '../../lib/imatrix.js';
import { quantize } from '../../lib/quantize.js';
import { makeModel, type MakeModelOptions } from '../../scripts/make-model.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const device = path.join(root, '.device');
const build = path.join(root, 'build-cuda');

type Written = 'F32' | 'F16' | 'Q8_0' | 'Q4_K_M' | 'IQ-mix';
const archs: { name: string; options: Omit<MakeModelOptions, 'out'>; types: Written[] }[] = [
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
// through all seven; IQ1_S, IQ1_M, IQ2_XXS and IQ2_XS need an importance matrix.
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

function sh(cmd: string, args: string[]): void {
  execFileSync(cmd, args, { cwd: root, stdio: 'inherit' });
}

// ---- binaries ----
sh('cmake', ['-S', '.', '-B', build, '-DCMAKE_BUILD_TYPE=Release', '-DMOERUN_CUDA=ON']);
sh('flock', ['/tmp/moerun-build.lock', 'nice', 'cmake', '--build', build, '-j2', '--target', 'moerun_cuda', 'test_cuda_backend']);
rmSync(path.join(device, 'cuda'), { recursive: true, force: true });
mkdirSync(path.join(device, 'cuda'), { recursive: true });
for (const f of ['libmoerun_cuda.so', 'test_cuda_backend']) copyFileSync(path.join(build, f), path.join(device, 'cuda', f));

// ---- models ----
const models = path.join(device, 'models');
rmSync(models, { recursive: true, force: true });
mkdirSync(models, { recursive: true });
let bytes = 0, count = 0;
const scratch = path.join(models, 'source-F32.gguf');  // each architecture's F32 file, quantized from
for (const a of archs) {
  await makeModel({ ...a.options, out: scratch });
  for (const t of a.types) {
    const out = path.join(models, `${a.name}-${t}.gguf`);
    if (t === 'F32') copyFileSync(scratch, out);
    else if (t === 'F16') await makeModel({ ...a.options, type: 'f16', out });
    else if (t === 'IQ-mix') await quantizeIqMix(scratch, out);
    else await quantize(scratch, out, t, { threads: 2 });
    bytes += statSync(out).size;
    ++count;
  }
}
rmSync(scratch);
console.log(`gpu-prepare: .device/cuda and ${count} models (${(bytes / 2 ** 20).toFixed(1)} MiB) ready`);
