// arm64's NEON kernels under emulation. The core and its C++ drivers are cross-compiled with
// Debian's g++-aarch64-linux-gnu into build-arm64/ (cmake/toolchains/aarch64-linux-gnu.cmake; the
// directory is kept, so a rerun rebuilds only what changed) and run with qemu-aarch64-static on
// three of its CPU models:
//   max          has DotProd and I8MM: test_kernels passes on the neon, dotprod and i8mm paths (one
//                run checks every path the CPU has), and run_model decodes stories260K's golden
//                text on each
//   neoverse-n1  DotProd, no I8MM: the best path is dotprod, MOERUN_CPU=i8mm is refused
//   cortex-a72   neither: the best path is neon (the fallback), MOERUN_CPU=dotprod is refused
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundledModelPath, loadModel, type Model } from 'moerun';
import { hasTool, run as runTool } from './helpers/run.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const buildDir = path.join(root, 'build-arm64');
const golden =
  'Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. She wanted to play with it, but it was too high.';
const tools = ['cmake', 'aarch64-linux-gnu-g++', 'qemu-aarch64-static'].every((t) => hasTool(t, 'neon.test'));
const run = (cmd: string, args: string[], env: NodeJS.ProcessEnv = {}) => runTool(cmd, args, { cwd: root, env: { ...process.env, ...env } });
/** A driver of build-arm64/ under qemu on CPU model `cpu`, with MOERUN_CPU=path unless undefined. */
const qemu = (cpu: string, driver: string, args: string[], cpuPath?: string) => {
  const env: NodeJS.ProcessEnv = { MOERUN_CPU: cpuPath ?? '' };
  return run('qemu-aarch64-static', ['-cpu', cpu, '-L', '/usr/aarch64-linux-gnu', path.join(buildDir, driver), ...args], env);
};

let model: Model;
if (tools) {
  beforeAll(async () => {
    if (!existsSync(path.join(buildDir, 'CMakeCache.txt'))) {
      const c = await run('cmake', ['-S', '.', '-B', buildDir, '-DCMAKE_BUILD_TYPE=Release', '-DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake']);
      if (c.status !== 0) throw new Error(`cmake configure (arm64) failed:\n${c.output.slice(-4000)}`);
    }
    const b = await run('cmake', ['--build', buildDir, '-j2', '--target', 'test_kernels', 'run_model']);
    if (b.status !== 0) throw new Error(`cmake build (arm64) failed:\n${b.output.slice(-4000)}`);
    model = await loadModel(bundledModelPath, { threads: 1 });  // the tokenizer, for run_model's ids
  }, 900_000);
  afterAll(async () => {
    await model?.dispose();
  });
}

describe.skipIf(!tools)('NEON kernels under qemu-aarch64', () => {
  // One run checks every path the CPU model has (scalar, neon, dotprod, i8mm: each kernel against
  // the reference), then matmul on the active one (i8mm).
  it('test_kernels passes on the neon, dotprod and i8mm paths (qemu -cpu max)', async () => {
    const r = await qemu('max', 'test_kernels', [path.join(root, 'test/fixtures/quant')]);
    const failed = r.output.split('\n').filter((l) => /FAIL/.test(l));
    if (r.status !== 0) console.log(`test_kernels (arm64) failed:\n${failed.join('\n') || r.output.slice(-4000)}`);
    else console.log(`test_kernels ran under qemu-aarch64: ${r.output.trim().split('\n').at(-1)}`);
    expect(r.output).toContain('neon 1 dotprod 1 i8mm 1; active path i8mm');
    for (const cpuPath of ['neon', 'dotprod', 'i8mm']) {
      // The path's own kernels ran: its Q4_K and F16 rows are not the reference's.
      expect(r.output).toMatch(new RegExp(`ok +vec_dot +${cpuPath} +Q4_K +nmse [^\\[]*\\n`));
      expect(r.output).toMatch(new RegExp(`ok +orders +${cpuPath} +F16 +L 16: 0 of \\d+ differ`));
    }
    expect(r.output).toMatch(/ok +gemm_tile +i8mm +Q8_0 .*: 0 of \d+ outputs differ/);
    expect(r.output).toMatch(/ok +matmul +i8mm +Q4_0 +m 7/);
    expect(failed).toEqual([]);
    expect(r.status).toBe(0);
  }, 600_000);

  it.each(['neon', 'dotprod', 'i8mm'])('run_model decodes the golden stories260K text on the %s path', async (cpuPath) => {
    const prompt = Array.from(model.tokenize('Once upon a time'));
    const r = await qemu('max', 'run_model', [bundledModelPath, '-n', '60', '-t', '2', ...prompt.map(String)], cpuPath);
    expect(r.status, r.output).toBe(0);
    expect(r.output).toContain(`threads, ${cpuPath})`);
    const ids = r.stdout.split('\n')[0]!.trim().split(/\s+/).map(Number);
    expect(ids.length).toBe(60);
    const text = 'Once upon a time' + model.detokenize(ids);
    expect(text.startsWith(golden), text).toBe(true);
  }, 300_000);

  // SDOT/SMMLA (and any other ARMv8.2+ extension the -march flags allow) only in the functions of
  // cpu/neon/dotprod and cpu/neon/i8mm, which run only where the OS reports the feature: the
  // generic code and the plain NEON path run on any ARMv8-A CPU. libgcc's outline atomics
  // (__aarch64_*) test for LSE at run time.
  it('uses SDOT and SMMLA only in the dotprod and i8mm kernels', async () => {
    const r = await run('aarch64-linux-gnu-objdump', ['-d', '--no-show-raw-insn', '-C', path.join(buildDir, 'test_kernels')]);
    expect(r.status).toBe(0);
    let fn = '';
    const users = new Map<string, string>();
    for (const line of r.stdout.split('\n')) {
      const head = /^[0-9a-f]+ <(.*)>:$/.exec(line);
      if (head) fn = head[1]!;
      else if (/\t(sdot|udot|usdot|sudot|smmla|ummla|usmmla|ldadd\w*|cas\w*|swp\w*|ldclr\w*|ldset\w*)\s/.test(line)) users.set(fn, line.trim());
    }
    const kernels = [...users.keys()].filter((f) => /neon_dotprod|neon_i8mm/.test(f));
    const others = [...users.entries()].filter(([f]) => !/neon_dotprod|neon_i8mm/.test(f) && !f.startsWith('__aarch64_'));
    expect(kernels.length).toBeGreaterThan(20);  // the check sees the kernels it allows
    expect(others).toEqual([]);
  });

  it.each([
    ['max', 'i8mm', []],
    ['neoverse-n1', 'dotprod', ['i8mm']],
    ['cortex-a72', 'neon', ['dotprod', 'i8mm']],
  ] as const)('qemu -cpu %s: the best path is %s; refused: %j', async (cpu, best, refused) => {
    const stories = [bundledModelPath, '-n', '4', '-t', '1', '1'];
    const auto = await qemu(cpu, 'run_model', stories);
    expect(auto.status, auto.output).toBe(0);
    expect(auto.output).toContain(`threads, ${best})`);
    for (const p of refused) {
      const r = await qemu(cpu, 'run_model', stories, p);
      expect(r.status).toBe(1);
      expect(r.stderr).toContain(`MOERUN_CPU='${p}' but this CPU does not support it`);
    }
  }, 300_000);
});
