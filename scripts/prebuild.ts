// Node-API prebuilds, cross-compiled from this Linux machine into prebuildify's layout
// (prebuilds/<platform>-<arch>/moerun.napi[.glibc].node), where node-gyp-build finds them.
//   npx tsx scripts/prebuild.ts [linux-x64] [linux-arm64] [win32-x64]     (default: all three)
// On a shared machine wrap it in the build lock: flock /tmp/moerun-build.lock npm run prebuild
//
// The flags come from binding.gyp (one place): its core_cflags, each ISA library's flags and the
// addon's defines. Node-API's headers and the Windows import library come from the node-api-headers
// npm package (its .def files through dlltool), nothing is downloaded. Objects and dependency files
// go to build-prebuild/<target>/, so a second run recompiles only what changed.
// Toolchains (Debian): g++, g++-aarch64-linux-gnu, g++-mingw-w64-x86-64 (its -posix compiler, for std::thread).
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);

export interface PrebuildTarget {
  /** prebuildify's folder name, `${process.platform}-${process.arch}`. */
  name: string;
  cxx: string;
  /** x64 targets compile the x86 ISA kernel folders with their own flags, arm64 targets the NEON ones; each gets the other's register.cpp stubs. */
  x64: boolean;
  /** node-gyp-build tag: a glibc build must not be picked on musl (Alpine). */
  libcTag?: 'glibc';
  /** Extra compile flags for every file. */
  cflags: string[];
  /** Link flags after the objects. */
  libs: string[];
  windows?: boolean;
}

// x64 targets also get binding.gyp's x86-64-v2 baseline for the generic code (no AVX outside
// native/cpu/avx2 and avx512). -static-libstdc++/-static-libgcc: the binary needs no GLIBCXX_ or
// GCC_ symbol versions from the system it meets, only glibc's.
export const targets: PrebuildTarget[] = [
  { name: 'linux-x64', cxx: 'g++', x64: true, libcTag: 'glibc', cflags: ['-fPIC'], libs: ['-static-libstdc++', '-static-libgcc', '-pthread'] },
  { name: 'linux-arm64', cxx: 'aarch64-linux-gnu-g++', x64: false, libcTag: 'glibc', cflags: ['-fPIC'], libs: ['-static-libstdc++', '-static-libgcc', '-pthread'] },
  {
    name: 'win32-x64', cxx: 'x86_64-w64-mingw32-g++-posix', x64: true, windows: true,
    // 64-bit stat sizes (models over 2 GiB); M_PI from <cmath>.
    cflags: ['-D_FILE_OFFSET_BITS=64', '-D_USE_MATH_DEFINES'],
    // Everything static: the .node depends on no MinGW DLL, only on Windows and node.exe. -s drops
    // the static runtime's debug sections (3.4 -> 1.7 MiB).
    libs: ['-static', '-static-libstdc++', '-static-libgcc', '-lwinpthread', '-s'],
  },
];

/** binding.gyp is a Python literal; ours parses as JSON once its # comments are gone. */
function readBindingGyp(): {
  core: string[]; x64Baseline: string[]; avx2: string[]; avx512: string[]; neonDotprod: string[]; neonI8mm: string[]; defines: string[];
} {
  const text = fs.readFileSync(path.join(root, 'binding.gyp'), 'utf8').replace(/^\s*#.*$/gm, '');
  const gyp = JSON.parse(text) as {
    variables: { core_cflags: string[] };
    targets: { target_name: string; defines?: string[]; conditions?: [string, { cflags_cc: string[] }][] }[];
  };
  const target = (n: string) => gyp.targets.find((t) => t.target_name === n)!;
  // A target's flags under its "target_arch=='x64'" condition.
  const isaFlags = (n: string, arch = 'x64') => target(n).conditions!.find(([cond]) => cond.includes(`'${arch}'`))![1].cflags_cc;
  return {
    core: gyp.variables.core_cflags,
    x64Baseline: isaFlags('moerun'),
    avx2: isaFlags('moerun_avx2'),
    avx512: isaFlags('moerun_avx512'),
    neonDotprod: isaFlags('moerun_neon_dotprod', 'arm64'),
    neonI8mm: isaFlags('moerun_neon_i8mm', 'arm64'),
    defines: target('moerun').defines ?? [],
  };
}

function listSources(...dirs: string[]): string[] {
  const out = spawnSync(process.execPath, [path.join(root, 'scripts/list-sources.cjs'), ...dirs], { cwd: root, encoding: 'utf8' });
  return out.stdout.split(' ').filter(Boolean);
}

/** True if obj is missing or older than its source or any header its .d file names. */
function stale(obj: string): boolean {
  let objTime: number;
  try {
    objTime = fs.statSync(obj).mtimeMs;
  } catch {
    return true;
  }
  let deps: string[];
  try {
    deps = fs.readFileSync(obj.replace(/\.o$/, '.d'), 'utf8').replace(/\\\n/g, ' ').split(':').slice(1).join(':').split(/\s+/).filter(Boolean);
  } catch {
    return true;
  }
  return deps.some((d) => {
    try {
      return fs.statSync(path.resolve(root, d)).mtimeMs > objTime;
    } catch {
      return true;
    }
  });
}

/** Runs a compiler or linker; its stderr (warnings, errors) is printed and added to `diagnostics`. */
function run(cmd: string, args: string[], diagnostics: string[] = []): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: root, stdio: ['ignore', 'inherit', 'pipe'] });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      process.stderr.write(d);
      diagnostics.push(d);
    });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} exited with ${code}`))));
  });
}

/** Runs jobs, `parallel` at a time; the first failure stops new ones and is thrown. */
async function pool(jobs: (() => Promise<void>)[], parallel: number): Promise<void> {
  let next = 0;
  let failed: unknown;
  const worker = async () => {
    while (next < jobs.length && failed === undefined) {
      const job = jobs[next++]!;
      await job().catch((err) => (failed ??= err));
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  if (failed !== undefined) throw failed;
}

/**
 * The delay-load import library of node.exe's Node-API exports, from node-api-headers' .def file
 * (node_api.def lists js_native_api's symbols too); native/addon/win32/delay_load_hook.cpp maps
 * "node.exe" to whichever executable loaded the addon (node.exe, electron.exe, ...).
 */
function windowsImportLibrary(outDir: string): string {
  const defDir = path.join(path.dirname(require.resolve('node-api-headers/package.json')), 'def');
  const lib = path.join(outDir, 'libnode_api_delay.a');
  const r = spawnSync('x86_64-w64-mingw32-dlltool', ['-d', path.join(defDir, 'node_api.def'), '-y', lib, '-D', 'node.exe'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`dlltool failed: ${r.stderr || r.error?.message}`);
  return lib;
}

/**
 * Compiles a target's objects into <buildRoot>/build-prebuild/<name>/ (only those older than their
 * sources or headers) and links <buildRoot>/prebuilds/<name>/moerun.napi[.<libc>].node. buildRoot
 * is the repository (the package's prebuilds) unless given (test/prebuild-win32.test.ts builds
 * into a temporary one). Returns the binary and what the compilers wrote to stderr.
 */
export async function buildTarget(t: PrebuildTarget, parallel: number, buildRoot = root): Promise<{ binary: string; diagnostics: string }> {
  const flags = readBindingGyp();
  const napiInclude = path.join(path.dirname(require.resolve('node-api-headers/package.json')), 'include');
  const addonApiInclude = (require('node-addon-api') as { include_dir: string }).include_dir;
  const objDir = path.join(buildRoot, 'build-prebuild', t.name);
  const diagnostics: string[] = [];
  const common = [
    '-std=c++20', '-fexceptions', ...flags.core, ...t.cflags,
    ...flags.defines.map((d) => `-D${d}`), `-I${napiInclude}`, `-I${path.resolve(root, addonApiInclude)}`, '-MMD',
  ];
  if (!t.windows) common.push('-pthread');
  const generic = listSources('native/base', 'native/gguf', 'native/quant', 'native/backend', 'native/cpu', 'native/runtime', 'native/arch', 'native/cuda',
    'native/addon');
  const units: { src: string; extra: string[] }[] = generic.map((src) => ({ src, extra: [] }));
  if (t.x64) {
    for (const src of listSources('native/cpu/avx2')) units.push({ src, extra: flags.avx2 });
    for (const src of listSources('native/cpu/avx512')) units.push({ src, extra: flags.avx512 });
    units.push({ src: 'native/cpu/neon/register.cpp', extra: [] });
  } else {
    units.push({ src: 'native/cpu/avx2/register.cpp', extra: [] }, { src: 'native/cpu/avx512/register.cpp', extra: [] });
    for (const src of listSources('native/cpu/neon')) units.push({ src, extra: [] });
    for (const src of listSources('native/cpu/neon/dotprod')) units.push({ src, extra: flags.neonDotprod });
    for (const src of listSources('native/cpu/neon/i8mm')) units.push({ src, extra: flags.neonI8mm });
  }
  if (t.windows) units.push({ src: 'native/addon/win32/delay_load_hook.cpp', extra: [] });
  const objects: string[] = [];
  const jobs: (() => Promise<void>)[] = [];
  for (const unit of units) if (t.x64 && unit.extra.length === 0) unit.extra = flags.x64Baseline;
  for (const { src, extra } of units) {
    const obj = path.join(objDir, src.replace(/\.cpp$/, '.o'));
    objects.push(obj);
    if (!stale(obj)) continue;
    fs.mkdirSync(path.dirname(obj), { recursive: true });
    jobs.push(async () => {
      process.stdout.write(`  ${t.name}: ${src}\n`);
      await run(t.cxx, [...common, ...extra, '-c', src, '-o', obj], diagnostics);
    });
  }
  await pool(jobs, parallel);
  const outDir = path.join(buildRoot, 'prebuilds', t.name);
  fs.mkdirSync(outDir, { recursive: true });
  const out = path.join(outDir, `moerun.napi${t.libcTag ? `.${t.libcTag}` : ''}.node`);
  const linkLibs = t.windows ? [windowsImportLibrary(objDir), ...t.libs] : t.libs;
  await run(t.cxx, ['-shared', '-o', out, ...objects, ...linkLibs, ...(t.windows ? [] : ['-Wl,-z,noexecstack'])], diagnostics);
  return { binary: out, diagnostics: diagnostics.join('') };
}

/** The objects buildTarget compiled for a target: all, those of the x86 ISA folders, the rest. */
export function prebuildObjects(name: string, buildRoot = root): { all: string[]; isa: string[]; generic: string[] } {
  const dir = path.join(buildRoot, 'build-prebuild', name);
  const all = fs.readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.o')).map((f) => path.join(dir, f));
  const isIsa = (f: string) => /native\/cpu\/avx(2|512)\//.test(f);
  return { all, isa: all.filter(isIsa), generic: all.filter((f) => !isIsa(f)) };
}

/**
 * Links native/test/run_model (run_model.exe for Windows) from a target's objects, all but the
 * addon's, into its object folder, for running the prebuild's own code under qemu or wine.
 */
export async function linkRunModel(t: PrebuildTarget, buildRoot = root): Promise<string> {
  const core = prebuildObjects(t.name, buildRoot).all.filter((f) => !f.includes(`${path.sep}native${path.sep}addon${path.sep}`));
  const exe = path.join(buildRoot, 'build-prebuild', t.name, t.windows ? 'run_model.exe' : 'run_model');
  const flags = ['-std=c++20', '-O2', '-ffp-contract=off', '-fno-math-errno', ...(t.windows ? ['-static'] : ['-pthread', '-static-libstdc++', '-static-libgcc'])];
  await run(t.cxx, [...flags, 'native/test/run_model.cpp', ...core, '-o', exe, ...(t.windows ? ['-municode', '-lwinpthread'] : [])]);
  return exe;
}

async function main(): Promise<void> {
  const wanted = process.argv.slice(2);
  const unknown = wanted.filter((w) => !targets.some((t) => t.name === w));
  if (unknown.length) throw new Error(`unknown target ${unknown.join(', ')}; known: ${targets.map((t) => t.name).join(', ')}`);
  const chosen = wanted.length ? targets.filter((t) => wanted.includes(t.name)) : targets;
  // Two compile jobs at most: the build machine is shared (MOERUN_JOBS to change).
  const parallel = Math.max(1, Number(process.env.MOERUN_JOBS ?? Math.min(2, os.availableParallelism())));
  for (const t of chosen) {
    if (spawnSync(t.cxx, ['--version']).status !== 0) throw new Error(`${t.name}: ${t.cxx} not found (see the toolchains at the top of scripts/prebuild.ts)`);
    const started = Date.now();
    const { binary } = await buildTarget(t, parallel);
    process.stdout.write(`${t.name}: ${path.relative(root, binary)} ${(fs.statSync(binary).size / 2 ** 20).toFixed(2)} MiB in ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: Error) => {
    process.stderr.write(`prebuild: ${err.message}\n`);
    process.exit(1);
  });
}
