// The GGUF reader under AddressSanitizer + UBSan: a seeded mutation loop (native/fuzz/fuzz_gguf.cpp)
// over real files must never crash, read out of bounds or hit undefined behaviour. Built with cmake
// into build-fuzz/, without Node. (The same target builds for libFuzzer with clang.)
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { hasTool, run as runTool } from './helpers/run.js';
import { sharedDir } from './helpers/shared.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const buildDir = path.join(root, 'build-fuzz');
const hasCmake = hasTool('cmake', 'fuzz.test');
const run = (cmd: string, args: string[]) => runTool(cmd, args, { cwd: root });

describe.skipIf(!hasCmake)('GGUF reader fuzzing (ASan + UBSan)', () => {
  it('survives 30,000 mutated files', async () => {
    if (!existsSync(path.join(buildDir, 'CMakeCache.txt'))) {
      const c = await run('cmake', ['-S', '.', '-B', buildDir, '-DCMAKE_BUILD_TYPE=Release', '-DMOERUN_FUZZ=ON']);
      expect(c.status, c.output.slice(-4000)).toBe(0);
    }
    const b = await run('cmake', ['--build', buildDir, '-j2', '--target', 'fuzz_gguf']);
    expect(b.status, b.output.slice(-4000)).toBe(0);
    const seeds = [path.join(root, 'models/stories260K.gguf')];
    const shared = sharedDir();
    if (shared) seeds.push(path.join(shared, 'vocab/ggml-vocab-qwen2.gguf'));
    const r = await run(path.join(buildDir, 'fuzz_gguf'), ['30000', ...seeds]);
    console.log(r.output.trim().split('\n').slice(-3).join('\n'));
    expect(r.status, r.output.slice(-4000)).toBe(0);
    expect(r.output).toContain('30000 inputs, no crash');
  }, 600_000);
});
