// The core under valgrind's memcheck: load stories260K, prefill and decode with both KV cache
// types, free everything. Any invalid read/write, use of uninitialized memory or leaked block
// fails the test (valgrind exits with 3). Uses the core-only driver native/test/run_model.cpp,
// built with cmake into build-memcheck/.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { hasTool, run as runTool } from './helpers/run.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
// Its own build folder: kernels.test.ts builds in build-core/ at the same time.
const buildDir = path.join(root, 'build-memcheck');
const ready = hasTool('cmake', 'leaks.test') && hasTool('valgrind', 'leaks.test');
const run = (cmd: string, args: string[]) => runTool(cmd, args, { cwd: root });

describe.skipIf(!ready)('native core under valgrind memcheck', () => {
  it.each(['f32', 'f16'])('loads, evaluates and frees with a %s KV cache: no errors, no leaks', async (kv) => {
    if (!existsSync(path.join(buildDir, 'CMakeCache.txt'))) {
      const c = await run('cmake', ['-S', '.', '-B', buildDir, '-DCMAKE_BUILD_TYPE=Release']);
      expect(c.status, c.output.slice(-4000)).toBe(0);
    }
    const b = await run('cmake', ['--build', buildDir, '-j2', '--target', 'run_model']);
    expect(b.status, b.output.slice(-4000)).toBe(0);
    const r = await run('valgrind', [
      '--leak-check=full', '--show-leak-kinds=definite,indirect,possible', '--errors-for-leak-kinds=definite,indirect,possible',
      '--error-exitcode=3', path.join(buildDir, 'run_model'), 'models/stories260K.gguf', '-n', '12', '-t', '2', '--kv', kv,
      '1', '403', '407', '261', '378',
    ]);
    const summary = r.output.split('\n').filter((l) => /ERROR SUMMARY|definitely lost|All heap blocks/.test(l));
    console.log(`memcheck (${kv} KV): ${summary.map((l) => l.replace(/^==\d+== /, '')).join('; ')}`);
    expect(r.status, r.output.slice(-4000)).toBe(0);
    expect(r.output).toMatch(/ERROR SUMMARY: 0 errors/);
  }, 600_000);
});
