// Prepares .device/bench/ (git-ignored) for the speed comparisons on the GPU machine, which has no
// Node and little time: bench/peer/cpu-scaling.sh (issue 17's 16-core CPU table) and
// bench/peer/gpu-bench.sh (issues 13 and 14, with .device/cuda from gpu-prepare.ts beside it).
//
//   npx tsx bench/peer/bench-prepare.ts            # then carry [".device/bench"] (and ".device/cuda")
//
// .device/bench/bin/     run_model, test_kernels, expand_bench_model (the C++ runtime linked in statically) and
//                        llama_cpp_bench (bench/peer/llama_cpp_bench.cpp against node-llama-cpp's
//                        libraries)
// .device/bench/bins/    node-llama-cpp's prebuilt CPU libraries (the peer `npm run bench` uses)
// .device/bench/models/  recipes of the real shapes at full depth (make-bench-model.ts --recipe:
//                        a header, xz-compressed, and a text recipe each; expand_bench_model makes
//                        the multi-GB files there at disk speed)
// .device/bench/llama-src.tar.xz   llama.cpp's source, for its CUDA build there (build-llama-cuda.sh)
// All of it stays under the device tool's 64 MiB (the sizes are printed).
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeBenchRecipe, type BenchQuant, type BenchShapeName } from '../../scripts/make-bench-model.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const out = path.join(root, '.device', 'bench');
const build = path.join(root, 'build-device');
const peerBins = path.join(root, 'node_modules', '@node-llama-cpp', 'linux-x64', 'bins', 'linux-x64');

// The rows of issues 13, 14 and 17: Ling-mini-2.0 (all 20 layers) at Q4_K_M and Q8_0, Qwen3-30B-A3B
// (all 48) at Q4_K_M.
const models: { shape: BenchShapeName; quant: BenchQuant }[] = [
  { shape: 'ling-mini-2.0', quant: 'Q4_K_M' },
  { shape: 'ling-mini-2.0', quant: 'Q8_0' },
  { shape: 'qwen3-30b-a3b', quant: 'Q4_K_M' },
];
// The CPU variants ggml_backend_load_all_from_path picks from on an x86-64 host with AVX-512 (the
// GPU machine's Sapphire Rapids), and the fallbacks below it.
const cpuVariants = ['sapphirerapids', 'icelake', 'skylakex', 'haswell', 'x64'];

function sh(cmd: string, args: string[], cwd = root): void {
  execFileSync(cmd, args, { cwd, stdio: 'inherit' });
}

rmSync(out, { recursive: true, force: true });
for (const d of ['bin', 'bins', 'models']) mkdirSync(path.join(out, d), { recursive: true });

// ---- moerun's drivers, the C++ runtime linked in ----
sh('cmake', ['-S', '.', '-B', build, '-DCMAKE_BUILD_TYPE=Release', '-DMOERUN_CUDA=OFF', '-DCMAKE_EXE_LINKER_FLAGS=-static-libstdc++ -static-libgcc']);
sh('flock', ['/tmp/moerun-build.lock', 'nice', 'cmake', '--build', build, '-j2', '--target', 'run_model', 'expand_bench_model', 'test_kernels']);
for (const f of ['run_model', 'expand_bench_model', 'test_kernels']) copyFileSync(path.join(build, f), path.join(out, 'bin', f));

// ---- llama.cpp: its source (for the CUDA build there), its CPU libraries and the C API driver ----
sh('bash', ['bench/peer/build-llama-cuda.sh', 'pack', path.join(out, 'llama-src.tar.xz')]);
const headers = path.join(build, 'llama-headers');
rmSync(headers, { recursive: true, force: true });
mkdirSync(headers, { recursive: true });
sh('tar', ['-C', headers, '-xJf', path.join(out, 'llama-src.tar.xz'), 'include', 'ggml/include']);
for (const f of readdirSync(peerBins)) {
  const keep = /^lib(llama|ggml)(\.v[\d.]+|-base)?\.so$/.test(f) || cpuVariants.some((v) => f === `libggml-cpu-${v}.so`);
  if (keep) copyFileSync(path.join(peerBins, f), path.join(out, 'bins', f));
}
sh('g++', [
  '-O2', '-std=c++17', 'bench/peer/llama_cpp_bench.cpp', `-I${headers}/include`, `-I${headers}/ggml/include`, `-L${peerBins}`,
  '-l:libllama.v0.5.0.so', '-l:libggml.v0.5.0.so', '-l:libggml-base.so', '-Wl,-rpath,$ORIGIN/../bins', '-static-libstdc++', '-static-libgcc',
  '-o', path.join(out, 'bin', 'llama_cpp_bench'),
]);

// ---- the models, as recipes ----
for (const m of models) {
  const { header } = await writeBenchRecipe(m, path.join(out, 'models'));
  sh('xz', ['-T0', '-9', header]);
}

let total = 0;
const walk = (dir: string): void => {
  for (const f of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, f.name);
    if (f.isDirectory()) walk(p);
    else total += statSync(p).size;
  }
};
walk(out);
console.log(`bench-prepare: ${path.relative(root, out)} ready, ${(total / 2 ** 20).toFixed(1)} MiB`);
