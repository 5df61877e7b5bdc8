// llama.cpp as test tooling: node-llama-cpp's prebuilt libraries, its bundled source (cloned once),
// and the small C/C++ programs the oracles compile against them. Each program is built once and
// cached on disk under a name that hashes everything that went into it, so a changed source or a
// new node-llama-cpp version builds afresh; nothing else ever invalidates the cache.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import path from 'node:path';

import { run } from './run.js';

const root = path.join(__dirname, '..', '..');
const bundle = path.join(root, 'node_modules/node-llama-cpp/llama/gitRelease.bundle');
const platform = `${process.platform}-${process.arch}`;

/** node-llama-cpp's prebuilt llama.cpp libraries for this platform (its CPU variants), if installed. */
export const llamaBins = path.join(root, 'node_modules/@node-llama-cpp', platform, 'bins', platform);

/** Where the built tools and the cloned source are cached. */
export const toolCacheDir = path.join(root, 'node_modules/.cache/moerun-llama-tools');

/** The bundle's identity: its size and modification time (a new node-llama-cpp replaces it). */
function bundleStamp(): string {
  const st = statSync(bundle);
  return `${st.size}-${Math.floor(st.mtimeMs)}`;
}

let source: Promise<string> | undefined;

/** llama.cpp's source as node-llama-cpp bundles it (same version as its binaries), cloned once; its folder. */
export function llamaSourceDir(): Promise<string> {
  source ??= (async () => {
    mkdirSync(toolCacheDir, { recursive: true });
    const src = path.join(toolCacheDir, `llama.cpp-${bundleStamp()}`);
    if (!existsSync(path.join(src, 'include/llama.h'))) {
      const r = await run('git', ['clone', '--quiet', bundle, src]);
      if (r.status !== 0) throw new Error(`git clone of ${bundle} failed:\n${r.output}`);
    }
    return src;
  })();
  return source;
}

/**
 * A cache key for a tool: the contents of its sources, plus the bundle's identity when it builds
 * against llama.cpp (`withLlama`).
 */
export function buildKey(sources: readonly string[], withLlama = true): string {
  const h = createHash('sha256');
  for (const s of sources) h.update(readFileSync(s));
  if (withLlama) h.update(bundleStamp());
  return h.digest('hex').slice(0, 16);
}

/** Runs one compiler or linker step of a tool's build; throws with its output when it fails. */
export async function compileStep(tool: string, cmd: string, args: readonly string[]): Promise<void> {
  const r = await run(cmd, args);
  if (r.status !== 0) throw new Error(`building ${tool} failed (${cmd} ${args.join(' ')}):\n${r.output}`);
}

const tools = new Map<string, Promise<string>>();

/**
 * The executable `name-key` in the tool cache, built once by `build(out)`: build writes `out`, a
 * temporary path (intermediate files are its own to remove), which is then renamed into place, so that test files running at the same time never see a half-written binary. Built
 * at most once per process; later processes find it on disk.
 */
export function cachedTool(name: string, key: string, build: (out: string) => Promise<void>): Promise<string> {
  const exe = path.join(toolCacheDir, `${name}-${key}`);
  let built = tools.get(exe);
  if (!built) {
    built = (async () => {
      if (existsSync(exe)) return exe;
      mkdirSync(toolCacheDir, { recursive: true });
      const tmp = `${exe}.${process.pid}.tmp`;
      try {
        await build(tmp);
        await rename(tmp, exe);
      } finally {
        await rm(tmp, { force: true });
      }
      return exe;
    })();
    tools.set(exe, built);
  }
  return built;
}
