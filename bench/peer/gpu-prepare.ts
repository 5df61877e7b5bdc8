// Prepares .device/ (git-ignored) for bench/peer/gpu-check.sh, on a CPU machine with nvcc: the
// CUDA library and C++ drivers compiled for sm_90a, and every architecture's test model.
//
//   npx tsx bench/peer/gpu-prepare.ts            # then, on the GPU machine: bash bench/peer/gpu-check.sh
//
// .device/cuda/   libmoerun_cuda.so and test_cuda_backend (the core linked in statically,
//                 the C++ runtime too, so they need only glibc there)
// .device/models/ <arch>-<type>.gguf: scripts/make-model.ts's well-conditioned models (the
//                 shapes of test/arch.test.ts) at F32, and at Q8_0 and Q4_K_M (moerun's quantizer)
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { quantize } from '../../lib/quantize.js';
import { makeModel, type MakeModelOptions } from '../../scripts/make-model.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const device = path.join(root, '.device');
const build = path.join(root, 'build-cuda');

const archs: { name: string; options: Omit<MakeModelOptions, 'out'> }[] = [
  { name: 'llama', options: { arch: 'llama' } },
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
const quantTypes = ['Q8_0', 'Q4_K_M'] as const;

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
let bytes = 0;
for (const a of archs) {
  const f32 = path.join(models, `${a.name}-F32.gguf`);
  await makeModel({ ...a.options, out: f32 });
  bytes += statSync(f32).size;
  for (const t of quantTypes) {
    const out = path.join(models, `${a.name}-${t}.gguf`);
    await quantize(f32, out, t, { threads: 2 });
    bytes += statSync(out).size;
  }
}
console.log(`gpu-prepare: .device/cuda and ${archs.length * (1 + quantTypes.length)} models (${(bytes / 2 ** 20).toFixed(1)} MiB) ready`);
