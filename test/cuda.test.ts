// The CUDA backend where there is no GPU (this machine and CI): the addon and the core load and
// run without the NVIDIA driver and without libmoerun_cuda.so; gpu 'auto' falls back to the CPU
// saying why; gpu 'cuda' is ERR_NO_GPU naming what is missing; `moerun info` reports it. With
// nvcc, the real library is built on its own (native/cuda/CMakeLists.txt: sm_90a, the CUDA
// runtime static; about a minute) and loaded: it must see "no driver" cleanly; and the matmul
// kernels' arithmetic (native/cuda/dot.cuh, compiled for the host by test_cuda_dots) must match the
// CPU's reference dots for every weight type, and routing and RoPE (native/cuda/route.cuh, by
// test_cuda_ops) their semantics. The kernels themselves need a GPU:
// bench/peer/gpu-check.sh runs them there (its test driver, which reports "no device" and exits 77
// here, links the whole core, too slow a build for CI).
//
// Each scenario runs in its own Node process: the library is looked for once per process
// (MOERUN_CUDA_LIBRARY chooses it).
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadModel, MoerunError } from 'moerun';
import { hasCudaToolkit, run } from './helpers/run.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const stories = path.join(root, 'models', 'stories260K.gguf');
const buildDir = path.join(root, 'build-cuda-lib');
const library = path.join(buildDir, 'libmoerun_cuda.so');
const dotsDriver = path.join(buildDir, 'test_cuda_dots');
const opsDriver = path.join(buildDir, 'test_cuda_ops');

/** Runs `body` (an ES module's statements, with loadModel, gpuInfo and the model path in scope) in a child Node; returns its JSON. */
async function inChild(body: string, env: NodeJS.ProcessEnv): Promise<any> {
  const script = `import { loadModel, gpuInfo } from 'moerun'; const stories = ${JSON.stringify(stories)};
    const out = {}; ${body}; process.stdout.write(JSON.stringify(out));`;
  const r = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: root, env: { ...process.env, ...env } });
  if (r.status !== 0) throw new Error(`child failed (${r.status}):\n${r.output}`);
  return JSON.parse(r.stdout);
}

// What every no-GPU scenario checks: info, 'auto' on the CPU with the reason, 'cuda' refused, false.
const scenario = `
  out.info = gpuInfo();
  const auto = await loadModel(stories);
  out.autoInfo = { backend: auto.info.backend, backendName: auto.info.backendName, gpuNote: auto.info.gpuNote };
  let text = '';
  for await (const c of auto.createSession().generate('Once upon a time', { maxTokens: 8, temperature: 0 })) text += c.text;
  out.text = text;
  await auto.dispose();
  try { await loadModel(stories, { gpu: 'cuda' }); out.cuda = 'loaded'; } catch (e) { out.cuda = { code: e.code, message: e.message, name: e.name }; }
  try { await loadModel(stories, { gpu: { mode: 'cuda', experts: 'cpu' } }); out.cudaObject = 'loaded'; } catch (e) { out.cudaObject = { code: e.code }; }
  const budgeted = await loadModel(stories, { gpu: { vram: '8GiB' } });
  out.budgeted = { backend: budgeted.info.backend, placement: budgeted.info.placement ?? null };
  await budgeted.dispose();
  const cpu = await loadModel(stories, { gpu: false });
  out.offInfo = { backend: cpu.info.backend, gpuNote: cpu.info.gpuNote ?? null };
  await cpu.dispose();
`;

describe('gpu options (validated in TypeScript)', () => {
  it('rejects a misspelled gpu mode and a bad device index with exact messages', async () => {
    await expect(loadModel(stories, { gpu: 'metal' as never })).rejects.toMatchObject({
      code: 'ERR_INVALID_ARGUMENT',
      message: `Expected 'auto', 'cuda', false or an object such as { vram: '20GiB' } for gpu but received "metal" (string)`,
    });
    // The object form: a budget, where the experts go, the mode.
    await expect(loadModel(stories, { gpu: { vram: 'lots' } })).rejects.toMatchObject({
      code: 'ERR_INVALID_ARGUMENT',
      message: 'Expected gpu.vram to be a byte size such as 20GiB, 512MiB or 24GB but received "lots" (string)',
    });
    await expect(loadModel(stories, { gpu: { experts: 'tpu' as never } })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(loadModel(stories, { gpu: { mode: 'metal' as never } })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(loadModel(stories, { gpu: { vram: '8GiB', cores: 4 } as never })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(loadModel(stories, { gpu: { contextSize: 0 } })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(loadModel(stories, { gpu: true as never })).rejects.toBeInstanceOf(MoerunError);
    await expect(loadModel(stories, { gpuDevice: -1 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(loadModel(stories, { gpu: 'cuda', gpuDevice: 1.5 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
  });
});

describe('without libmoerun_cuda.so', () => {
  it("loads and runs on the CPU; gpu 'cuda' is ERR_NO_GPU naming the missing library", async () => {
    const missing = path.join(root, 'build-cuda-lib', 'no-such-dir', 'libmoerun_cuda.so');
    const out = await inChild(scenario, { MOERUN_CUDA_LIBRARY: missing });
    expect(out.info.library).toBeNull();
    expect(out.info.usable).toBe(false);
    expect(out.info.devices).toEqual([]);
    expect(out.info.reason).toContain(missing);
    expect(out.autoInfo.backend).toBe('cpu');
    expect(out.autoInfo.backendName).toMatch(/^cpu \(/);
    expect(out.autoInfo.gpuNote).toContain('cannot be loaded');
    expect(out.text.length).toBeGreaterThan(0);
    expect(out.cuda.name).toBe('MoerunError');
    expect(out.cuda.code).toBe('ERR_NO_GPU');
    expect(out.cuda.message).toContain(missing);
    expect(out.offInfo).toEqual({ backend: 'cpu', gpuNote: null });
    expect(out.cudaObject).toEqual({ code: 'ERR_NO_GPU' });
    expect(out.budgeted).toEqual({ backend: 'cpu', placement: null });
  }, 60_000);

  it('moerun info says there is no CUDA library', async () => {
    const r = await run(process.execPath, [path.join(root, 'dist', 'cli.js'), 'info'], {
      cwd: root,
      env: { ...process.env, MOERUN_CUDA_LIBRARY: '/nonexistent/libmoerun_cuda.so' },
    });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('cuda library: none');
    expect(r.stdout).toMatch(/gpu: none \(the CUDA backend library cannot be loaded \(\/nonexistent\/libmoerun_cuda\.so: cannot open/);
  }, 60_000);
});

// The real library, built here with nvcc for sm_90a. This machine has no NVIDIA driver; a machine
// with one but no GPU answers "no device": both are ERR_NO_GPU.
const hasNvcc = hasCudaToolkit('cuda.test');
describe.skipIf(!hasNvcc)('with the real libmoerun_cuda.so and no GPU', () => {
  beforeAll(async () => {
    const env = { ...process.env, CI: process.env.CI ?? '' };
    if (!existsSync(path.join(buildDir, 'CMakeCache.txt'))) {
      const c = await run('cmake', ['-S', 'native/cuda', '-B', buildDir, '-DCMAKE_BUILD_TYPE=Release'], { cwd: root, env });
      if (c.status !== 0) throw new Error(`cmake configure failed:\n${c.output.slice(-4000)}`);
    }
    const b = await run('cmake', ['--build', buildDir, '-j2'], { cwd: root, env });
    if (b.status !== 0) throw new Error(`building libmoerun_cuda.so failed:\n${b.output.slice(-4000)}`);
  }, 900_000);

  it("computes every weight type's dot products as the CPU reference does (dot.cuh on the host)", async () => {
    const r = await run(dotsDriver, [], { cwd: root });
    const failed = r.output.split('\n').filter((l) => l.startsWith('FAIL'));
    if (r.status !== 0) console.log(`test_cuda_dots failed:\n${failed.join('\n') || r.output.slice(-4000)}`);
    else console.log(`test_cuda_dots: ${r.output.trim().split('\n').length - 1} checks, ${r.output.trim().split('\n').at(-1)}`);
    expect(r.status).toBe(0);
    expect(r.output).toContain('ok   MXFP4   unit_dot sums vs reference vec_dot (NMSE)'); // it ran to the last type
  }, 60_000);

  it('routes experts (softmax/sigmoid, bias, groups, ties, norm, scale) and applies RoPE (normal, NeoX, partial, YaRN) as specified (route.cuh on the host)', async () => {
    const r = await run(opsDriver, [], { cwd: root });
    if (r.status !== 0) console.log(`test_cuda_ops failed:\n${r.output.slice(-4000)}`);
    expect(r.status).toBe(0);
    expect(r.output).toContain('ok   rope normal YaRN (x4, ramp 4..20, mscale) pos 37');
    expect(r.output).toContain('0 failed');
  }, 60_000);

  it('links the CUDA runtime statically and the addon not at all', async () => {
    const lib = await run('objdump', ['-p', library]);
    const needed = lib.stdout.split('\n').filter((l) => l.includes('NEEDED')).join('\n');
    console.log(`libmoerun_cuda.so needs:\n${needed}`);
    expect(needed).not.toMatch(/libcudart|libcublas|libstdc\+\+/);
    const dyn = await run('objdump', ['-T', library]);
    expect(dyn.stdout).toContain('moerun_cuda_api');
    const addon = await run('objdump', ['-p', path.join(root, 'build', 'Release', 'moerun.node')]);
    expect(addon.stdout).not.toMatch(/NEEDED\s+\S*cud/);
  }, 60_000);

  it("loads it, finds no driver, runs on the CPU under 'auto' and refuses 'cuda' with the reason", async () => {
    const out = await inChild(scenario, { MOERUN_CUDA_LIBRARY: library });
    console.log(`cuda.test: gpuInfo() with the library here: ${JSON.stringify(out.info)}`);
    expect(out.info.library).toBe(library);
    expect(out.info.usable).toBe(false);
    expect(out.info.reason).toMatch(/no usable NVIDIA driver|no CUDA device/);
    expect(out.autoInfo.backend).toBe('cpu');
    expect(out.autoInfo.gpuNote).toMatch(/driver|device/);
    expect(out.text.length).toBeGreaterThan(0);
    expect(out.cuda.code).toBe('ERR_NO_GPU');
    expect(out.cuda.message).toMatch(/driver|device/);
  }, 60_000);
});
