// npm run bench: moerun against llama.cpp (node-llama-cpp) on real MoE shapes (and one dense one) with random weights.
//
//   npm run bench -- [--shapes ling-mini-2.0,qwen3-30b-a3b,tinyllama-1.1b] [--quants Q4_K_M,Q8_0]
//                    [--layers ling-mini-2.0=10,qwen3-30b-a3b=12] [--threads 2] [--pp 512] [--tg 128]
//                    [--repeats 3] [--json out.json]
//
// For each shape and quantization: the model file from scripts/make-bench-model.ts (cached under
// os.tmpdir()/moerun-bench), then both engines on the same file with the same threads, each in its
// own process, interleaved round by round after an excluded warm-up (lib/bench/measure.ts measureSpeed):
// pp and tg tokens/s (median, min–max), load time (file in the page cache) and peak RSS, the ratio,
// and decode's achieved weight bandwidth (active weight bytes per token × tokens/s) next to the
// memory bandwidth measured in this process with the same thread count.
//
// Depth: the default --layers keeps each model's file near 8 GiB at Q8_0 so it stays in the page
// cache of a 24 GB machine while two engines map it; per-layer speed is what the ratio measures.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';

import { readGgufInfo } from '../lib/gguf/reader.js';
import { measureBandwidth } from '../lib/bench/bandwidth.js';
import { compileBenchWorker } from '../lib/bench/engines.js';
import { gitCommit } from '../lib/bench/conditions.js';
import { activeWeightBytes } from '../lib/bench/gguf-stats.js';
import { measureSpeed } from '../lib/bench/measure.js';
import type { EngineResult } from '../lib/bench/report.js';
import { formatTable } from '../lib/cli/render.js';
import { cpuInfo } from '../lib/system.js';
import { BENCH_SHAPES, makeBenchModel, type BenchQuant, type BenchShapeName } from '../scripts/make-bench-model.js';

const { values } = parseArgs({
  options: {
    shapes: { type: 'string', default: 'ling-mini-2.0,qwen3-30b-a3b' },
    quants: { type: 'string', default: 'Q4_K_M,Q8_0' },
    layers: { type: 'string', default: 'ling-mini-2.0=10,qwen3-30b-a3b=12,olmoe-1b-7b=16,deepseek-v2-lite=12,tinyllama-1.1b=22' },
    threads: { type: 'string', default: '2' },
    pp: { type: 'string', default: '512' },
    tg: { type: 'string', default: '128' },
    repeats: { type: 'string', default: '3' },
    json: { type: 'string' },
  },
});
const shapes = values.shapes.split(',') as BenchShapeName[];
const quants = values.quants.split(',') as BenchQuant[];
const layers = new Map(values.layers.split(',').map((kv) => kv.split('=') as [string, string]).map(([k, v]) => [k, Number(v)]));
const threads = Number(values.threads);
const pp = Number(values.pp);
const tg = Number(values.tg);
const repeats = Number(values.repeats);
for (const s of shapes) if (!(s in BENCH_SHAPES)) throw new Error(`unknown shape '${s}'; known: ${Object.keys(BENCH_SHAPES).join(', ')}`);

// The engines' processes run the compiled worker, so their peak RSS is not tsx's (engines.ts).
compileBenchWorker();
const cpu = cpuInfo();
const loadStart = os.loadavg()[0]!;
const bandwidthBefore = (await measureBandwidth(threads)) / 1e9;
console.log(
  `moerun bench: commit ${gitCommit()}, node ${process.version}, ${os.cpus()[0]?.model.trim() ?? 'cpu'}, ISA path ${cpu.activePath}, ` +
    `${threads} threads; memory bandwidth ${bandwidthBefore.toFixed(1)} GB/s (read, ${threads} threads, this process)`,
);
console.log(
  `method: both engines on the same file, ${threads} threads each, each in its own process, interleaved (A B A B) for ${repeats} rounds ` +
    `after one warm-up round; pp${pp} from an empty context, tg${tg} greedy decode steps; F16 KV cache (both defaults); tokens/s as median (min–max)`,
);

// Kernel suite: the C++ driver native/test/bench_matmul (built with cmake into build-core/, as
// test/kernels.test.ts does) on every ISA path this CPU has: matvec (m = 1) and matmul (m = 64)
// per weight type, GFLOP/s and GB/s of weights.
{
  const root = fileURLToPath(new URL('..', import.meta.url));
  const buildDir = path.join(root, 'build-core');
  const run = (cmd: string, args: string[], env = process.env) => spawnSync(cmd, args, { cwd: root, env, encoding: 'utf8' });
  if (run('cmake', ['--version']).status !== 0) {
    console.log('\nkernel suite: skipped (cmake is not installed)');
  } else {
    const configured = existsSync(path.join(buildDir, 'CMakeCache.txt')) || run('cmake', ['-S', '.', '-B', buildDir, '-DCMAKE_BUILD_TYPE=Release']).status === 0;
    const built = configured && run('cmake', ['--build', buildDir, '-j2', '--target', 'bench_matmul']).status === 0;
    if (!built) {
      console.log('\nkernel suite: skipped (building native/test/bench_matmul failed)');
    } else {
      for (const isa of cpu.supportedPaths) {
        const r = run(path.join(buildDir, 'bench_matmul'), ['--threads', String(threads), '--types', 'F16,BF16,Q8_0,Q4_0,Q4_K,Q5_K,Q6_K,Q2_K,Q3_K,IQ4_XS', '--m', '1,64', '--n', '2048', '--budget', '0.2'],
          { ...process.env, MOERUN_CPU: isa });
        console.log(`\nkernel suite (${isa}): k = n = 2048, min of repeats\n${(r.stdout ?? '').trim()}`);
      }
    }
  }
}

const rows: string[][] = [];
const json: object[] = [];
const fmt = (x: number, d = 1): string => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');
const r3 = (e: EngineResult | { error: string } | undefined, key: 'pp' | 'tg'): string =>
  e && 'engine' in e ? `${fmt(e[key].median)} (${fmt(e[key].min)}–${fmt(e[key].max)})` : `failed: ${e?.error ?? 'not run'}`;
for (const shape of shapes) {
  const full = BENCH_SHAPES[shape].options.nLayer;
  const depth = Math.min(layers.get(shape) ?? full, full);
  for (const quant of quants) {
    const t0 = performance.now();
    const file = await makeBenchModel({ shape, quant, layers: depth });
    const info = await readGgufInfo(file);
    const active = activeWeightBytes(info);
    const tokens = info.metadata['tokenizer.ggml.tokens'] as string[];
    console.log(`\n${shape} (${depth} of ${full} layers) ${quant}: ${file}, ${(Number(info.fileSize) / 2 ** 30).toFixed(2)} GiB, ready in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const r = await measureSpeed(file, {
      engines: ['moerun', 'llama.cpp'], threads, pp, tg, repeats, vocabSize: tokens.length, activeBytesPerToken: active,
      onStep: (label) => process.stderr.write(`  ${label}\n`),
    });
    const m = r.moerun as EngineResult;
    const l = r['llama.cpp'];
    const ok = l && 'engine' in l ? l : undefined;
    rows.push([
      `${shape} ${depth}/${full}L`, quant, (Number(info.fileSize) / 2 ** 30).toFixed(2), (active / 1e9).toFixed(3),
      r3(m, 'pp'), r3(l, 'pp'), ok ? `${fmt(m.pp.median / ok.pp.median, 2)}×` : 'n/a',
      r3(m, 'tg'), r3(l, 'tg'), ok ? `${fmt(m.tg.median / ok.tg.median, 2)}×` : 'n/a',
      fmt(m.decodeGBs), ok ? fmt(ok.decodeGBs) : 'n/a',
      `${fmt(m.loadMs / 1000, 2)} / ${ok ? fmt(ok.loadMs / 1000, 2) : 'n/a'}`,
      `${fmt(m.peakRssBytes / 2 ** 30, 2)} / ${ok ? fmt(ok.peakRssBytes / 2 ** 30, 2) : 'n/a'}`,
    ]);
    json.push({ shape, layers: depth, fullLayers: full, quant, file, fileBytes: Number(info.fileSize), activeBytesPerToken: active, moerun: m, llamaCpp: l });
    console.log(`  moerun pp ${fmt(m.pp.median)} tg ${fmt(m.tg.median)} tok/s; llama.cpp ${ok ? `pp ${fmt(ok.pp.median)} tg ${fmt(ok.tg.median)} tok/s` : r3(l, 'pp')}`);
  }
}
const bandwidthAfter = (await measureBandwidth(threads)) / 1e9;

console.log(`\nmemory bandwidth: ${bandwidthBefore.toFixed(1)} GB/s before, ${bandwidthAfter.toFixed(1)} GB/s after (read, ${threads} threads); ` +
  `1-min load average ${loadStart.toFixed(1)} at the start, ${os.loadavg()[0]!.toFixed(1)} at the end on ${os.cpus().length} CPUs (above the CPU count, other work competed)`);
console.log(
  formatTable(
    ['model', 'quant', 'GiB', 'active GB/tok', `moerun pp${pp}`, `llama.cpp pp${pp}`, 'pp ratio', `moerun tg${tg}`, `llama.cpp tg${tg}`, 'tg ratio',
      'moerun GB/s', 'llama.cpp GB/s', 'load s m/l', 'peak RSS GiB m/l'],
    rows,
  ),
);
console.log(`ratio = moerun ÷ llama.cpp (medians), > 1: moerun faster. GB/s = active weight bytes per token × tg tokens/s; roofline = measured bandwidth ${Math.max(bandwidthBefore, bandwidthAfter).toFixed(1)} GB/s.`);
if (values.json) {
  await writeFile(values.json, JSON.stringify({ commit: gitCommit(), isa: cpu.activePath, threads, pp, tg, repeats, bandwidthGBs: [bandwidthBefore, bandwidthAfter], results: json }, null, 2) + '\n');
}
