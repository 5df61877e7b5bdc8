// The C++ kernel driver (native/test/test_kernels.cpp), run once per CPU path this machine has:
// every SIMD kernel against the scalar reference on random data with its per-type NMSE bound, and
// the reference quantizers against llama.cpp's bytes (test/fixtures/quant). The driver is built
// with cmake into build-core/, without Node, exactly as a developer would build it.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { cpuInfo } from 'moerun';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const buildDir = path.join(root, 'build-core');
const driver = path.join(buildDir, 'test_kernels');
const hasCmake = spawnSync('cmake', ['--version'], { stdio: 'ignore' }).status === 0;
if (!hasCmake) console.log('kernels.test: cmake is not installed, so the C++ kernel driver is skipped');

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): { status: number | null; output: string } {
  const r = spawnSync(cmd, args, { cwd: root, env, encoding: 'utf8', maxBuffer: 64 << 20 });
  return { status: r.status, output: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

describe.skipIf(!hasCmake)('test_kernels (C++)', () => {
  beforeAll(() => {
    // Configure once (cmake keeps the cache), then an incremental build of just the driver.
    if (!existsSync(path.join(buildDir, 'CMakeCache.txt'))) {
      const c = run('cmake', ['-S', '.', '-B', buildDir, '-DCMAKE_BUILD_TYPE=Release']);
      if (c.status !== 0) throw new Error(`cmake configure failed:\n${c.output.slice(-4000)}`);
    }
    const b = run('cmake', ['--build', buildDir, '-j2', '--target', 'test_kernels']);
    if (b.status !== 0) throw new Error(`cmake build of test_kernels failed:\n${b.output.slice(-4000)}`);
  }, 600_000);

  const paths = cpuInfo().supportedPaths;
  console.log(`kernels.test: running test_kernels for the CPU paths ${paths.join(', ')}`);

  it.each(paths)('passes on the %s path', (cpuPath) => {
    const r = run(driver, [], { ...process.env, MOERUN_CPU: cpuPath });
    const failed = r.output.split('\n').filter((l) => /FAIL/.test(l));
    if (r.status !== 0) console.log(`test_kernels (MOERUN_CPU=${cpuPath}) failed:\n${failed.join('\n') || r.output.slice(-4000)}`);
    else console.log(`test_kernels ran on the ${cpuPath} path: ${r.output.trim().split('\n').at(-1)}`);
    expect(r.status).toBe(0);
    expect(r.output).toContain(`active path ${cpuPath}`); // the driver really ran this path
  }, 300_000);
});
