// Prepares .device/ (git-ignored) for bench/peer/gpu-check.sh, on a CPU machine with nvcc: the
// CUDA library and C++ drivers compiled for sm_90a, and every architecture's test model.
//
//   npx tsx bench/peer/gpu-prepare.ts            # then, on the GPU machine: bash bench/peer/gpu-check.sh
//
// .device/cuda/   libmoerun_cuda.so and test_cuda_backend (the core linked in statically,
//                 the C++ runtime too, so they need only glibc there)
// .device/models/ <arch>-<type>.gguf: scripts/make-model.ts's well-conditioned models (the
//                 shapes of test/arch.test.ts): every architecture at Q4_K_M (moerun's quantizer),
//                 float files (F32 dense, F16 MLA) and Q8_0 for a few, ~50 MiB in all: the device
//                 tool carries at most 64 MiB with the working tree. Every op and weight type is
//                 also checked on its own by test_cuda_backend --ops.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { quantize } from '../../lib/quantize.js';
import { makeModel, type MakeModelOptions } from '../../scripts/make-model.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const device = path.join(root, '.device');
const build = path.join(root, 'build-cuda');

type Written = 'F32' | 'F16' | 'Q8_0' | 'Q4_K_M';
const archs: { name: string; options: Omit<MakeModelOptions, 'out'>; types: Written[] }[] = [
  { name: 'llama', options: { arch: 'llama' }, types: ['F32', 'Q4_K_M'] },
  { name: 'llama-moe', options: { arch: 'llama', nExpert: 8, nExpertUsed: 2, nFfExp: 256 }, types: ['Q8_0', 'Q4_K_M'] },
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
    else await quantize(scratch, out, t, { threads: 2 });
    bytes += statSync(out).size;
    ++count;
  }
}
rmSync(scratch);
console.log(`gpu-prepare: .device/cuda and ${count} models (${(bytes / 2 ** 20).toFixed(1)} MiB) ready`);
