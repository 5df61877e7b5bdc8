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
// Then it runs those checks here under the CUDA emulator (a few minutes), which finds the bugs
// that do not need a GPU to show before the device's minutes are spent.
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeCudaTestModels } from '../../scripts/cuda-test-models.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const device = path.join(root, '.device');
const build = path.join(root, 'build-cuda');

function sh(cmd: string, args: string[]): void {
  execFileSync(cmd, args, { cwd: root, stdio: 'inherit' });
}

// ---- binaries ----
sh('cmake', ['-S', '.', '-B', build, '-DCMAKE_BUILD_TYPE=Release', '-DMOERUN_CUDA=ON']);
sh('flock', ['/tmp/moerun-build.lock', 'nice', 'cmake', '--build', build, '-j2', '--target', 'moerun_cuda', 'test_cuda_backend',
  'moerun_cuda_emulator']);
rmSync(path.join(device, 'cuda'), { recursive: true, force: true });
mkdirSync(path.join(device, 'cuda'), { recursive: true });
for (const f of ['libmoerun_cuda.so', 'test_cuda_backend']) copyFileSync(path.join(build, f), path.join(device, 'cuda', f));

// ---- models ----
const written = await writeCudaTestModels(path.join(device, 'models'));
const bytes = written.reduce((sum, f) => sum + statSync(f).size, 0);
const count = written.length;
console.log(`gpu-prepare: .device/cuda and ${count} models (${(bytes / 2 ** 20).toFixed(1)} MiB) ready`);

// ---- the same checks here, under the CUDA emulator (native/cuda/emulator), before GPU minutes go to them ----
const emulated = { ...process.env, MOERUN_CUDA_LIBRARY: path.join(build, 'libmoerun_cuda_emulator.so') };
const check = spawnSync(path.join(build, 'test_cuda_backend'), ['--ops', '--models', ...written], { env: emulated, encoding: 'utf8' });
const lines = (check.stdout ?? '').split('\n');
console.log(lines.filter((l) => l.startsWith('FAIL')).join('\n'));
console.log(`gpu-prepare: under the CUDA emulator: ${lines.find((l) => / checks, /.test(l)) ?? `exit ${check.status}`}`);
