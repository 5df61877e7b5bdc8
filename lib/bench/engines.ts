/**
 * The engines {@link bench} compares, each in its own child process (worker.ts): the protocol
 * between parent and child, and the parent's handle on one child. A process per engine keeps each
 * one's peak RSS its own, lets the parent interleave the engines, and turns a native abort into a
 * reported failure instead of a dead benchmark.
 *
 * Protocol: the parent sends one {@link WorkerInit}; the child answers `{ ok: true, loadMs }` once
 * the model is loaded, then one {@link WorkerReply} per {@link WorkerRequest}.
 */
import { fork, spawnSync, type ChildProcess } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** `moerun` or `llama.cpp`. */
export type EngineName = 'moerun' | 'llama.cpp';

/** @internal The first message to a worker: which engine on which file. */
export interface WorkerInit {
  engine: EngineName;
  file: string;
  threads: number;
  contextSize: number;
}

/** @internal pp: evaluate `tokens` from an empty context; tg: `n` greedy decode steps after `first`. */
export type WorkerRequest = { cmd: 'pp'; tokens: number[] } | { cmd: 'tg'; first: number; n: number } | { cmd: 'exit' };

/** @internal A worker's answer: `loadMs` to the init, `ms` to a request, with its peak RSS so far. */
export interface WorkerDone {
  ok: true;
  ms?: number;
  loadMs?: number;
  maxRssBytes: number;
}

/** @internal A worker's answer to an init or request that failed. */
export interface WorkerFailed {
  ok: false;
  error?: string;
}

/** @internal */
export type WorkerReply = WorkerDone | WorkerFailed;

/**
 * The bench worker to fork. Compiled (dist), it is the worker.js beside this module. Run from
 * source, it is this checkout's dist/bench/worker.js when tsc's output is newer than every lib/
 * source ({@link compileBenchWorker} makes it so), else worker.ts through tsx, whose loader then
 * counts in the worker's peak RSS: an empty script peaked at 78-89 MB under `node --import tsx`
 * against 41 MB under plain node (Node 20 runs module hooks in a second V8 isolate), which the
 * bench would report as the engine's.
 */
export function benchWorker(): { path: string; execArgv: string[]; viaTsx: boolean } {
  const here = fileURLToPath(import.meta.url);
  if (!here.endsWith('.ts')) return { path: path.join(path.dirname(here), 'worker.js'), execArgv: [], viaTsx: false };
  const compiled = compiledWorkerPath(here);
  if (mtimeMs(compiled) > newestSourceMs(sourceRoot(here))) return { path: compiled, execArgv: [], viaTsx: false };
  return { path: path.join(path.dirname(here), 'worker.ts'), execArgv: ['--import', 'tsx'], viaTsx: true };
}

/**
 * From source: compiles lib/ with tsc (the package's build:ts, about 12 s on 2 cores) when
 * dist/bench/worker.js is older than a lib/ source, so that {@link benchWorker} runs plain
 * JavaScript. Does nothing in the compiled package. Throws with tsc's output when it fails.
 */
export function compileBenchWorker(): void {
  const here = fileURLToPath(import.meta.url);
  if (!here.endsWith('.ts') || !benchWorker().viaTsx) return;
  const root = path.resolve(sourceRoot(here), '..');
  const r = spawnSync(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', path.join(root, 'tsconfig.json')], {
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`compiling the bench worker (tsc -p tsconfig.json) failed: ${(r.stdout + r.stderr).trim().slice(-2000)}`);
}

/** lib/ of the checkout that holds lib/bench/engines.ts. */
const sourceRoot = (here: string): string => path.resolve(path.dirname(here), '..');
/** tsc's output for lib/bench/worker.ts (tsconfig.json: rootDir lib, outDir dist). */
const compiledWorkerPath = (here: string): string => path.resolve(sourceRoot(here), '..', 'dist', 'bench', 'worker.js');

function mtimeMs(file: string): number {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return 0;
  }
}

/** The latest modification time of the .ts files under `dir`, ms. */
function newestSourceMs(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestSourceMs(p));
    else if (e.name.endsWith('.ts')) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

/** One engine in a child process. */
export class EngineProcess {
  loadMs = 0;
  maxRssBytes = 0;
  #proc: ChildProcess;
  #stderr = '';
  #pending: { resolve: (v: WorkerDone) => void; reject: (e: Error) => void } | null = null;
  #exited: string | null = null;

  private constructor(proc: ChildProcess, readonly init: WorkerInit) {
    this.#proc = proc;
    proc.stderr?.on('data', (d: Buffer) => {
      this.#stderr = (this.#stderr + d.toString()).slice(-2000);
    });
    proc.on('message', (msg: WorkerReply) => {
      const p = this.#pending;
      this.#pending = null;
      if (!p) return;
      if (msg.ok) p.resolve(msg);
      else p.reject(new Error(`${init.engine}: ${msg.error ?? 'failed'}`));
    });
    proc.on('exit', (code, signal) => {
      this.#exited = signal ? `killed by ${signal}` : `exited with code ${code}`;
      const p = this.#pending;
      this.#pending = null;
      const tail = this.#stderr.trim().split('\n').slice(-3).join(' | ');
      p?.reject(new Error(`${init.engine} on ${path.basename(init.file)}: the process ${this.#exited}${tail ? `: ${tail}` : ''}`));
    });
  }

  static async start(init: WorkerInit): Promise<EngineProcess> {
    const w = benchWorker();
    const proc = fork(w.path, [], { execArgv: w.execArgv, stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
    const e = new EngineProcess(proc, init);
    const r = await e.#send(init);
    e.loadMs = r.loadMs ?? 0;
    e.maxRssBytes = r.maxRssBytes;
    return e;
  }

  async request(req: WorkerRequest): Promise<number> {
    const r = await this.#send(req);
    this.maxRssBytes = Math.max(this.maxRssBytes, r.maxRssBytes);
    return r.ms ?? Number.NaN;
  }

  #send(msg: WorkerInit | WorkerRequest): Promise<WorkerDone> {
    if (this.#exited) return Promise.reject(new Error(`${this.init.engine}: the process ${this.#exited}`));
    return new Promise((resolve, reject) => {
      this.#pending = { resolve, reject };
      this.#proc.send(msg);
    });
  }

  async close(): Promise<void> {
    if (this.#exited) return;
    const gone = new Promise<void>((r) => this.#proc.once('exit', () => r()));
    this.#proc.send({ cmd: 'exit' } satisfies WorkerRequest);
    const timer = setTimeout(() => this.#proc.kill(), 5000);
    await gone;
    clearTimeout(timer);
  }
}
