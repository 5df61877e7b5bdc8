// The CUDA backend's kernels, run where there is no GPU: native/cuda/emulator compiles the same
// .cu files with the host compiler and runs them on the CPU (a block at a time, its threads as
// fibers that meet at __syncthreads and at warp shuffles), behind the same C table as the real
// libmoerun_cuda.so. So every CI run checks what the GPU machine's gpu-check.sh checks, as far as a
// CPU can: indexing, synchronisation, routing, every weight type's dot products, whole models and
// the addon's path to a "GPU". Not checked here: the device's own float functions (expf & co.
// differ in last bits), races the fixed thread order hides, speed.
//
// The drivers are built with cmake into build-cuda-emulator/ (the core and test_cuda_backend, the
// emulated library; no nvcc needed): about two minutes on two cores.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasTool, run } from './helpers/run.js';
import { writeCudaTestModels } from '../scripts/cuda-test-models.js';
import { makeModel } from '../scripts/make-model.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const buildDir = path.join(root, 'build-cuda-emulator');
const library = path.join(buildDir, 'libmoerun_cuda_emulator.so');
const stories = path.join(root, 'models', 'stories260K.gguf');
const emulated = { ...process.env, MOERUN_CUDA_LIBRARY: library };
const hasCmake = hasTool('cmake', 'cuda-emulator.test');

/** "N checks, M failed" of a driver's output, and its FAIL lines. */
function summary(output: string): { checks: number; failed: number; failures: string[] } {
  const m = /(\d+) checks, (\d+) failed/.exec(output);
  return { checks: Number(m?.[1] ?? 0), failed: Number(m?.[2] ?? -1), failures: output.split('\n').filter((l) => l.startsWith('FAIL')) };
}

describe.skipIf(!hasCmake)('the CUDA backend under the CUDA emulator', () => {
  let modelsDir = '';  // the synthetic models, made by the models test

  beforeAll(async () => {
    if (!existsSync(path.join(buildDir, 'CMakeCache.txt'))) {
      const c = await run('cmake', ['-S', '.', '-B', buildDir, '-DCMAKE_BUILD_TYPE=Release', '-DMOERUN_CUDA=OFF', '-DMOERUN_CUDA_EMULATOR=ON'], { cwd: root });
      if (c.status !== 0) throw new Error(`cmake configure failed:\n${c.output.slice(-4000)}`);
    }
    const b = await run('cmake', ['--build', buildDir, '-j2', '--target', 'test_cuda_backend', 'moerun_cuda_emulator', 'test_emulator',
      'test_cuda_dots_emulated', 'test_cuda_ops_emulated'], { cwd: root });
    if (b.status !== 0) throw new Error(`building the CUDA emulator and test_cuda_backend failed:\n${b.output.slice(-4000)}`);
  }, 900_000);

  afterAll(() => {
    if (modelsDir) rmSync(modelsDir, { recursive: true, force: true });
  });

  it("keeps CUDA's semantics: barriers, shared memory, shuffles; deadlocks and bad launches are errors", async () => {
    const r = await run(path.join(buildDir, 'test_emulator'), []);
    if (r.status !== 0) console.log(r.output);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('ok   threads split between __syncthreads and a shuffle: a launch failure');
    expect(r.stdout).toContain('0 failed');
  }, 60_000);

  it("computes every weight type's units and the routing as specified (dot.cuh, route.cuh, built by g++)", async () => {
    const dots = await run(path.join(buildDir, 'test_cuda_dots_emulated'), []);
    const ops = await run(path.join(buildDir, 'test_cuda_ops_emulated'), []);
    if (dots.status !== 0) console.log(dots.output.split('\n').filter((l) => l.startsWith('FAIL')).join('\n'));
    if (ops.status !== 0) console.log(ops.output.slice(-4000));
    expect(dots.status).toBe(0);
    expect(dots.output).toContain('ok   MXFP4   unit_dot sums vs reference vec_dot (NMSE)');
    expect(ops.status).toBe(0);
    expect(ops.output).toContain('0 failed');
  }, 60_000);

  it('runs every op as the CPU backend does (all 25 weight types, FFNs, MoE, attention), by NMSE', async () => {
    const r = await run(path.join(buildDir, 'test_cuda_backend'), ['--ops'], { env: emulated });
    const s = summary(r.stdout);
    console.log(`cuda-emulator.test: test_cuda_backend --ops: ${s.checks} checks, ${s.failed} failed${s.failures.length ? `\n${s.failures.join('\n')}` : ''}`);
    expect(r.stdout).toContain('moerun CUDA emulator (the host CPU)');
    expect(s.failures).toEqual([]);
    expect(r.status).toBe(0);
    expect(s.checks).toBeGreaterThanOrEqual(200);
  }, 300_000);

  it("runs whole models as the CPU does: every position's logits, decode steps (dense, MoE, MLA, lattice mix with mixed gate/up types)", async () => {
    modelsDir = mkdtempSync(path.join(os.tmpdir(), 'moerun-cuda-emu-'));
    const want = new Set(['llama-F32', 'qwen3moe-Q4_K_M', 'bailingmoe2-Q4_K_M', 'deepseek2-v3-F16', 'llama-moe-IQ-mix']);
    const files = await writeCudaTestModels(modelsDir, (f) => want.has(f));
    expect(files.length).toBe(want.size);
    const r = await run(path.join(buildDir, 'test_cuda_backend'), ['--greedy', '24', '--models', ...files], { env: emulated });
    const s = summary(r.stdout);
    console.log(`cuda-emulator.test: test_cuda_backend --models (${files.length} files): ${s.checks} checks, ${s.failed} failed\n` +
      r.stdout.split('\n').filter((l) => /^(ok|FAIL) +model .* (logits|greedy|decode steps)/.test(l)).join('\n'));
    expect(s.failures).toEqual([]);
    expect(r.status).toBe(0);
    // Per KV type (F32, F16): the F32 file logits and greedy tokens; the others logits, top-1,
    // decode steps and their top-1, for the four MoE files under three placements each (all
    // experts on the device, all on the host, split by a budget), and the split's expert cache
    // (hits, misses and loads all happened).
    expect(s.checks).toBe(2 * 2 + 4 * (3 * 2 * 4 + 1));
    for (const f of files.filter((f) => !f.includes('llama-F32'))) {
      const name = path.basename(f);
      expect(r.stdout).toContain(`ok   model ${name} [experts on the host] kv=F32 logits`);
      expect(r.stdout).toMatch(new RegExp(`\\(${name} \\[experts split\\]: \\d+ of \\d+ experts on the device\\)`));
      expect(r.stdout).toMatch(new RegExp(`ok   model ${name} \\[experts split\\] expert cache: \\d+ hits`));
    }
  }, 900_000);

  it('computes the host experts of prompt batches on the device in waves: through staging slots, the cache, fixed slots', async () => {
    const file = path.join(modelsDir, 'qwen3moe-Q4_K_M.gguf');  // made by the test above
    expect(existsSync(file)).toBe(true);
    const r = await run(path.join(buildDir, 'test_cuda_backend'), ['--waves', '--greedy', '8', '--models', file], { env: emulated });
    const s = summary(r.stdout);
    console.log(`cuda-emulator.test: test_cuda_backend --waves: ${s.checks} checks, ${s.failed} failed${s.failures.length ? `\n${s.failures.join('\n')}` : ''}`);
    expect(s.failures).toEqual([]);
    expect(r.status).toBe(0);
    for (const label of ['experts on the host, waves', 'experts split, waves', 'experts split, fixed slots, waves']) {
      expect(r.stdout).toContain(`ok   model qwen3moe-Q4_K_M.gguf [${label}] kv=F32 logits`);
    }
    expect(s.checks).toBe(6 * 2 * 4 + 1);  // six placements, two KV types, four checks each; the split's cache
  }, 600_000);

  it("places a MoE model by one option: gpu { experts: 'cpu' } or { vram } keeps routed experts on the host, computed by the CPU", async () => {
    const file = path.join(modelsDir || mkdtempSync(path.join(os.tmpdir(), 'moerun-cuda-emu-')), 'qwen3moe-F32-addon.gguf');
    await makeModel({ arch: 'qwen3moe', nExpert: 8, nExpertUsed: 2, nFfExp: 256, out: file });
    const script = `import { loadModel } from 'moerun';
      const file = ${JSON.stringify(file)};
      const out = {};
      const probe = await loadModel(file, { gpu: false });
      const all = probe.planPlacement({ vram: '64GiB', contextSize: 4096 });
      await probe.dispose();
      const half = all.device.totalBytes - Math.floor(all.device.expertBytes / 2);
      for (const [label, gpu] of [['cpu', false], ['device', { mode: 'cuda' }], ['host', { mode: 'cuda', experts: 'cpu' }], ['split', { mode: 'cuda', vram: half }]]) {
        const m = await loadModel(file, { gpu });
        let text = '';
        const session = m.createSession({ kvCacheType: 'f32' });
        for await (const c of session.generate('hello world', { maxTokens: 16, temperature: 0 })) text += c.text;
        const p = m.info.placement;
        const stats = session.lastStats;
        out[label] = { backend: m.info.backend, text, deviceExperts: p?.device.expertCount, hostExperts: p?.host.expertCount, hostExpertBytes: p?.host.expertBytes,
          cache: stats?.expertCache ?? null };
        await m.dispose();
      }
      process.stdout.write(JSON.stringify(out));`;
    const r = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: root, env: emulated });
    if (r.status !== 0) throw new Error(`child failed (${r.status}):\n${r.output}`);
    const out = JSON.parse(r.stdout);
    console.log(`cuda-emulator.test: placements ${JSON.stringify(out)}`);
    expect(out.cpu.backend).toBe('cpu');
    expect(out.device).toMatchObject({ backend: 'cuda', deviceExperts: 16, hostExperts: 0 });
    expect(out.host).toMatchObject({ backend: 'cuda', deviceExperts: 0, hostExperts: 16 });
    expect(out.host.hostExpertBytes).toBeGreaterThan(0);
    expect(out.split.backend).toBe('cuda');
    expect(out.split.deviceExperts).toBeGreaterThan(0);
    expect(out.split.hostExperts).toBeGreaterThan(0);
    // The split's device slots are a cache: over the prompt and 16 tokens it hit, missed and loaded.
    expect(out.split.cache.hits).toBeGreaterThan(0);
    expect(out.split.cache.misses).toBeGreaterThan(0);
    expect(out.split.cache.loads).toBeGreaterThan(0);
    expect(out.split.cache.hitRate).toBeCloseTo(out.split.cache.hits / (out.split.cache.hits + out.split.cache.misses), 10);
    expect(out.device.cache).toBeNull();
    expect(out.host.cache).toBeNull();
    for (const label of ['device', 'host', 'split']) expect(out[label].text).toBe(out.cpu.text);  // an F32 file: the same greedy text
    expect(out.cpu.text.length).toBeGreaterThan(0);
  }, 180_000);

  it("serves the addon as a GPU: gpu 'cuda' loads on it and generates the CPU's text", async () => {
    const script = `import { loadModel } from 'moerun';
      const out = {};
      for (const gpu of [false, 'cuda']) {
        const m = await loadModel(${JSON.stringify(stories)}, { gpu });
        let text = '';
        for await (const c of m.createSession({ kvCacheType: 'f32' }).generate('Once upon a time', { maxTokens: 24, temperature: 0 })) text += c.text;
        out[String(gpu)] = { backend: m.info.backend, backendName: m.info.backendName, text };
        await m.dispose();
      }
      process.stdout.write(JSON.stringify(out));`;
    const r = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: root, env: emulated });
    if (r.status !== 0) throw new Error(`child failed (${r.status}):\n${r.output}`);
    const out = JSON.parse(r.stdout);
    console.log(`cuda-emulator.test: ${out.cuda.backendName}: ${JSON.stringify(out.cuda.text)}`);
    expect(out.false.backend).toBe('cpu');
    expect(out.cuda.backend).toBe('cuda');
    expect(out.cuda.backendName).toContain('moerun CUDA emulator');
    expect(out.cuda.text).toBe(out.false.text);
    expect(out.cuda.text).toContain('there was a little girl named Lily');
  }, 120_000);
});
