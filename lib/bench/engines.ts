/**
 * The engines {@link bench} compares, each in its own child process (worker.ts): the protocol
 * between parent and child, and the parent's handle on one child. A process per engine keeps each
 * one's peak RSS its own, lets the parent interleave the engines, and turns a native abort into a
 * reported failure instead of a dead benchmark.
 *
 * Protocol: the parent sends one {@link WorkerInit}; the child answers `{ ok: true, loadMs }` once
 * the model is loaded, then one {@link WorkerReply} per {@link WorkerRequest}.
 */
import { fork, type ChildProcess } from 'node:child_process';
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

/** The bench worker module, compiled (dist) or run from source through tsx. */
function workerModule(): { path: string; execArgv: string[] } {
  const here = fileURLToPath(import.meta.url);
  if (here.endsWith('.ts')) return { path: path.join(path.dirname(here), 'worker.ts'), execArgv: ['--import', 'tsx'] };
  return { path: path.join(path.dirname(here), 'worker.js'), execArgv: [] };
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
    const w = workerModule();
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
