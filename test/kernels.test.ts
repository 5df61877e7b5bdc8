// The C++ kernel driver (native/test/test_kernels.cpp), run once per CPU path this machine has:
// every SIMD kernel against the scalar reference on random data with its per-type NMSE bound, and
// the reference quantizers against llama.cpp's bytes (test/fixtures/quant). Then
// native/test/ggml_orders.cpp: llama.cpp's own row kernels (each CPU variant of node-llama-cpp's
// prebuilt ggml this machine runs) against moerun's F32/F16 dots, softmax and SwiGLU, bit for bit.
// The drivers are built with cmake into build-core/, without Node, as a developer would build them.
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { cpuInfo } from 'moerun';
import { llamaBins } from './helpers/llama-tools.js';
import { hasTool, run as runTool } from './helpers/run.js';
import { makeModel, type MakeModelOptions } from '../scripts/make-model.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const buildDir = path.join(root, 'build-core');
const driver = path.join(buildDir, 'test_kernels');
const ordersDriver = path.join(buildDir, 'ggml_orders');
const seamDriver = path.join(buildDir, 'backend_seam');
const splitDriver = path.join(buildDir, 'moe_split');
const amxRefusalDriver = path.join(buildDir, 'amx_refusal');
const hasCmake = hasTool('cmake', 'kernels.test');
const run = (cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env) => runTool(cmd, args, { cwd: root, env });

// Both drivers, built once for the file: configure once (cmake keeps the cache), then an
// incremental build of just the drivers.
if (hasCmake) {
  beforeAll(async () => {
    if (!existsSync(path.join(buildDir, 'CMakeCache.txt'))) {
      const c = await run('cmake', ['-S', '.', '-B', buildDir, '-DCMAKE_BUILD_TYPE=Release']);
      if (c.status !== 0) throw new Error(`cmake configure failed:\n${c.output.slice(-4000)}`);
    }
    const b = await run('cmake', ['--build', buildDir, '-j2', '--target', 'test_kernels', 'ggml_orders', 'backend_seam', 'moe_split', 'amx_refusal']);
    if (b.status !== 0) throw new Error(`cmake build of the kernel drivers failed:\n${b.output.slice(-4000)}`);
  }, 600_000);
}

describe.skipIf(!hasCmake)('test_kernels (C++)', () => {
  const paths = cpuInfo().supportedPaths;
  console.log(`kernels.test: running test_kernels for the CPU paths ${paths.join(', ')}`);

  it.each(paths)('passes on the %s path', async (cpuPath) => {
    const r = await run(driver, [], { ...process.env, MOERUN_CPU: cpuPath });
    const failed = r.output.split('\n').filter((l) => /FAIL/.test(l));
    if (r.status !== 0) console.log(`test_kernels (MOERUN_CPU=${cpuPath}) failed:\n${failed.join('\n') || r.output.slice(-4000)}`);
    else console.log(`test_kernels ran on the ${cpuPath} path: ${r.output.trim().split('\n').at(-1)}`);
    expect(r.status).toBe(0);
    expect(r.output).toContain(`active path ${cpuPath}`); // the driver really ran this path
  }, 300_000);
});

// Files built with ISA flags (-mavx2, -mavx512*, arm64's dotprod/i8mm) must run no code before
// the dispatcher has checked the CPU: a dynamic initializer of a namespace-scope object there is
// compiled for that ISA and runs at load on every CPU (a table filled by a loop GCC vectorized
// with AVX-512 made the addon fault under valgrind, and would on any AVX2-only CPU).
const hasNm = hasCmake && hasTool('nm', 'kernels.test');
// The amx path where Linux refuses the tile state (a small sigaltstack makes it refuse): the
// best other path, its tiles run, and MOERUN_CPU=amx is an error. A CPU without AMX has nothing
// to refuse, and the driver says so.
describe.skipIf(!hasCmake)('AMX refused by the OS (native/test/amx_refusal.cpp)', () => {
  it('falls back to the best other path, and MOERUN_CPU=amx is then an error', async () => {
    const { MOERUN_CPU: _, ...env } = process.env;
    const r = await run(amxRefusalDriver, [], env);
    console.log(`amx_refusal: ${r.output.trim()}`);
    expect(r.status, r.output).toBe(0);
    expect(r.output).toMatch(/^(refused: |no AMX on this CPU)/);
    if (r.output.startsWith('refused')) {
      const forced = await run(amxRefusalDriver, [], { ...env, MOERUN_CPU: 'amx' });
      expect(forced.status, forced.output).toBe(0);
      expect(forced.output).toContain('MOERUN_CPU=amx is an error');
    }
  });
});

describe.skipIf(!hasNm)('ISA-specific objects (C++)', () => {
  it('hold no static initializers', async () => {
    const objects: string[] = [];
    const walk = (dir: string): void => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) walk(p);
        else if (e.name.endsWith('.o')) objects.push(p);
      }
    };
    const isaDirs = readdirSync(path.join(buildDir, 'CMakeFiles')).filter((d) => /^moerun_(avx2|avx512|neon\w*)\.dir$/.test(d));
    for (const d of isaDirs) walk(path.join(buildDir, 'CMakeFiles', d));
    expect(objects.length).toBeGreaterThan(0);
    const offenders: string[] = [];
    for (const o of objects) {
      const r = await run('nm', [o]);
      expect(r.status, r.output).toBe(0);
      if (/_GLOBAL__sub_I_/.test(r.output)) offenders.push(path.relative(buildDir, o));
    }
    console.log(`kernels.test: ${objects.length} ISA objects checked for static initializers`);
    expect(offenders).toEqual([]);
  });
});

describe.skipIf(!hasCmake)('ggml_orders (C++): llama.cpp\'s row kernels as the oracle', () => {
  const hasBins = existsSync(llamaBins);
  if (!hasBins && process.env.CI === 'true') throw new Error(`kernels.test: no node-llama-cpp binaries at ${llamaBins}, and CI=true forbids skipping`);
  if (!hasBins) console.log(`kernels.test: no node-llama-cpp binaries at ${llamaBins}, so ggml_orders is skipped`);

  it.skipIf(!hasBins)('moerun sums F32/F16 dots, softmax and SwiGLU as every runnable llama.cpp CPU variant does', async () => {
    const r = await run(ordersDriver, [llamaBins]);
    console.log(`ggml_orders:\n${r.output.trim()}`);
    expect(r.status).toBe(0);
    // Not vacuous: at least one variant ran where this CPU has a SIMD path.
    if (cpuInfo().supportedPaths.some((p) => p !== 'scalar')) expect(r.output).toMatch(/passed: [1-9]\d* variant/);
  }, 120_000);
});

// native/test/backend_seam.cpp: a second backend whose activations are scrambled in memory (each
// float's bits XOR-ed, decoded only inside its operations) gives the CPU backend's logits bit for
// bit on every architecture. Had runtime/ touched an activation itself, or an operation's
// contract missed a region it reads or writes, the logits would differ (checked when it was
// written, by moving one residual add out of the backend: every model then failed).
describe.skipIf(!hasCmake)('backend seam (C++): every architecture through a backend runtime/ cannot read', () => {
  it('gives the CPU backend\'s logits bit for bit, F32 and F16 KV caches', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'moerun-seam-'));
    try {
      const models: Omit<MakeModelOptions, 'out'>[] = [
        { arch: 'llama' }, { arch: 'qwen2' }, { arch: 'qwen2moe' }, { arch: 'qwen3moe', nExpert: 8 }, { arch: 'olmoe' },
        { arch: 'bailingmoe2' }, { arch: 'deepseek2' }, { arch: 'deepseek2', qLoraRank: 0 },
      ];
      const files: string[] = [];
      for (const [i, m] of models.entries()) {
        const out = path.join(dir, `${i}-${m.arch}.gguf`);
        await makeModel({ ...m, out });
        files.push(out);
      }
      const r = await run(seamDriver, files);
      console.log(`backend_seam:\n${r.output.trim()}`);
      expect(r.status).toBe(0);
      expect(r.output.match(/bit-identical/g)?.length).toBe(2 * models.length);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 300_000);
});

// native/test/moe_split.cpp: a MoE layer computed in the parts a GPU/CPU split would compute it in
// (issue 14): route, the experts of a random half, the experts of the other half, the shared
// expert. The parts add up to the whole (NMSE <= 1e-12: only the summation order may differ), the
// all-experts steps equal ffn_moe bit for bit (where the shared expert has the routed experts'
// shape, ffn_moe runs it in their passes), and experts no token chose contribute zeros.
describe.skipIf(!hasCmake)('MoE layer split (C++): the CPU half of a hybrid layer', () => {
  it('adds up to the whole layer on every MoE architecture', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'moerun-split-'));
    try {
      const models: Omit<MakeModelOptions, 'out'>[] = [
        { arch: 'qwen3moe', nExpert: 16, nExpertUsed: 4 }, { arch: 'qwen2moe', type: 'f16' }, { arch: 'olmoe' },
        { arch: 'bailingmoe2' }, { arch: 'deepseek2' },
        // A gated shared expert as wide as the routed ones: ffn_moe runs it in the experts' passes
        // (F16: its dense summation order there), which must equal ffn_moe_shared's result.
        { arch: 'qwen2moe', type: 'f16', nFfShexp: 256 }, { arch: 'qwen2moe', nFfShexp: 256 },
      ];
      const files: string[] = [];
      for (const [i, m] of models.entries()) {
        const out = path.join(dir, `${i}-${m.arch}.gguf`);
        await makeModel({ ...m, out });
        files.push(out);
      }
      const r = await run(splitDriver, files);
      console.log(`moe_split:\n${r.output.trim()}`);
      expect(r.status).toBe(0);
      expect(r.output).not.toMatch(/FAIL/);
      expect(r.output).toMatch(/(\d+) MoE layers checked, 0 failed/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 300_000);
});
