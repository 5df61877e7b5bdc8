/**
 * Models: loading a GGUF file, its description, tokenization, and sessions.
 */
import { callNative, callNativeSync, MoerunError } from './errors.js';
import { convertSliced, readGgufInfo, type GgufInfo } from './gguf/reader.js';
import { native, type NativeModel, type NativeModelInfo } from './native.js';
import { kvCacheTypes, MAX_CONTEXT_SIZE, Session, type KvCacheType, type SessionModel, type SessionOptions } from './session.js';
import { SliceClock, type SliceStats } from './slices.js';
import { Tokenizer } from './tokenizer/index.js';
import type { ModelInfo } from './model-info.js';
import { parseByteSize, placementArgs, toPlacement, type ExpertPlacement, type Placement, type PlacementOptions } from './placement.js';
import { routingArgs, routingInput, type RoutingStats, type RoutingStatsOptions } from './routing.js';
import {
  abortSignal,
  booleanOption,
  checkKnownKeys,
  functionOption,
  nonEmptyString,
  nonNegativeInteger,
  oneOf,
  optionsObject,
  positiveInteger,
  describe,
  invalid,
  toTokenArray,
} from './validate.js';

export type { ModelInfo } from './model-info.js';

/** Options of {@link loadModel}. */
/** {@link LoadModelOptions.gpu} with a memory budget and expert placement (a model larger than the GPU). */
export interface GpuOptions {
  /** `'auto'` (default): the GPU when a usable one is found, else the CPU; `'cuda'`: the GPU or `ERR_NO_GPU`. */
  mode?: 'auto' | 'cuda';
  /** The device memory the model may use: bytes, or `'20GiB'`, `'512MiB'`, `'24GB'`. Default: the device's free memory less 512 MiB and 2% of it. */
  vram?: number | string;
  /**
   * Where routed experts go: as many on the GPU as the budget holds, the others in host memory
   * computed by the CPU (`'auto'`, default); all in host memory (`'cpu'`, llama.cpp's `--cpu-moe`);
   * all on the GPU or an error (`'gpu'`).
   */
  experts?: ExpertPlacement;
  /** KV cache positions to keep room for on the device. Default 4096. */
  contextSize?: number;
  /** KV cache element type to plan for. Default `'f16'`. */
  kvCacheType?: KvCacheType;
  /** Tokens per forward chunk to plan activations for. Default: a session's (512 for MoE models, 256 for dense ones). */
  batchSize?: number;
  /**
   * Where experts are split: the device's expert slots are a cache (default true). A selected
   * expert without a slot is computed by the CPU for that token and copied into the least recently
   * used slot for the next ones; `GenerateStats.expertCache` counts hits and misses. `false`: the
   * slots keep each layer's first experts.
   */
  expertCache?: boolean;
}

export interface LoadModelOptions {
  /** Compute threads: a positive integer, or `'auto'` (default) for the number of physical cores. */
  threads?: number | 'auto';
  /**
   * Bind each compute thread to its own physical core (Linux; one logical CPU per core, within
   * the process's affinity mask). Steadier speed on a busy many-core machine, where the OS would
   * otherwise move threads between cores or onto SMT siblings; the calling thread stays unbound.
   * Where the OS refuses, the threads run unbound and `info.threadsPinned` is false. Default false.
   */
  pinThreads?: boolean;
  /** Aborts loading; the promise rejects with `ERR_ABORTED`. */
  signal?: AbortSignal;
  /** Called with the fraction of weights loaded, 0..1. */
  onProgress?: (fraction: number) => void;
  /**
   * Load the tokenizer and chat template only: the header and metadata are read and no weight is
   * mapped or read, so `tokenize`, `detokenize` and chat templates work on a file of any size;
   * {@link Model.createSession} throws `ERR_UNSUPPORTED`. `info` then has the metadata's numbers
   * (`threads` 0, `cpuPath` `'none'`). Default false.
   */
  vocabOnly?: boolean;
  /**
   * Load weights larger than the host's memory (physical RAM, or `ulimit -v` where lower). By
   * default such a model is refused with `ERR_OUT_OF_MEMORY`, since it would be read from disk
   * for every token; with this set it is mapped all the same and runs from the page cache at
   * disk speed. Default false.
   */
  allowLargerThanRam?: boolean;
  /**
   * Where to compute. `'auto'` (default): on a CUDA GPU when a usable one is found (the CUDA
   * library is present, a driver and a device it has kernels for), else on the CPU;
   * `info.backend` says which and `info.gpuNote` why not the GPU. `'cuda'`: on the GPU, or reject
   * with `ERR_NO_GPU` naming what is missing. `false`: the CPU. The weights are copied to the
   * GPU's memory at load, as much as its budget holds: routed experts that do not fit stay in
   * host memory and are computed by the CPU ({@link GpuOptions}; `info.placement` says what went
   * where). A budget that cannot hold the rest of the model is `ERR_OUT_OF_MEMORY` under
   * `'cuda'`, the CPU under `'auto'`.
   */
  gpu?: 'auto' | 'cuda' | false | GpuOptions;
  /** CUDA device index for `gpu` (default 0; see {@link gpuInfo}). */
  gpuDevice?: number;
  /**
   * Read every weight page once while loading (with progress, abortable), so that the first
   * tokens do not wait on page faults. `false` only maps the file: loading is then instant
   * whatever the size, as for {@link Model.planPlacement} or inspecting a model. Default true.
   */
  prefetch?: boolean;
  /**
   * Where the CPU reads the weights from. `'map'`: the file's pages in the page cache (shared
   * with other processes that map the file; loading is a pass over the pages). `'copy'`: a
   * private copy in this process's memory, read once at load by one reader per compute thread
   * (on a 2-vCPU VM: 4.5 GB in 0.8 s, 8.2 GB in 1.9-2.6 s, against 0.1-0.5 and 0.6-2.1 s mapped).
   * Peak RSS is the same, the file's pages stay only as reclaimable cache, and the file may then
   * change or go away; `ERR_OUT_OF_MEMORY` when it does not fit in the available memory,
   * `ERR_UNSUPPORTED` off Linux. `'auto'` (default): `'copy'` on a Linux virtual machine (x86's
   * hypervisor bit) when the CPU computes, `prefetch` is on and the file is at most a third
   * of the available memory, else `'map'`. On a 2-vCPU cloud VM a file's cached pages streamed at
   * 13.4-14.5 GB/s where the same bytes in anonymous memory read at 19.1-19.7, and decode from
   * the copy was faster in every pair measured (1.02-1.5x). `info.weightMemory` says which was used.
   */
  weightMemory?: 'auto' | 'map' | 'copy';
}

/**
 * How a load went, for apps that must keep their event loop responsive (an Electron renderer):
 * the JS-thread part of loading (converting metadata strings, indexing the vocabulary) runs in
 * slices of about 1 ms, and these are the numbers.
 */
export interface LoadStats {
  /** From the call to the resolved promise, milliseconds. */
  totalMs: number;
  /** The synchronous slices of JS-thread work the load ran in. */
  jsThread: SliceStats;
}

/** Options of {@link Model.tokenize}. */
export interface TokenizeOptions {
  /** Prepend BOS. Default: as the GGUF says (`tokenizer.ggml.add_bos_token`). */
  addBos?: boolean;
  /** Parse special/control tokens written in the text (e.g. `<|im_start|>`). Default false. */
  special?: boolean;
}

/** Options of {@link Model.detokenize}. */
export interface DetokenizeOptions {
  /** Render control tokens (BOS, EOS, ...) as text. Default false. */
  special?: boolean;
}

/** A loaded model. Create sessions from it; dispose it when done (or use `await using`). */
export class Model implements SessionModel {
  /** What the model is. */
  readonly info: ModelInfo;
  /** The file it was loaded from. */
  readonly path: string;
  /** The model's tokenizer. */
  readonly tokenizer: Tokenizer;
  /** The file's header, metadata and tensor list. */
  readonly gguf: GgufInfo;
  /** How the load went: its duration and the longest stretch it held the JS thread. */
  readonly loadStats: LoadStats;
  /** True when loaded with `vocabOnly`: no weights, no sessions. */
  readonly vocabOnly: boolean;

  /** The weights; undefined for a vocab-only model. */
  #native: NativeModel | undefined;
  #disposed = false;
  readonly #sessions = new Set<Session>();

  /** @internal Use {@link loadModel}. */
  constructor(path: string, nativeModel: NativeModel | undefined, gguf: GgufInfo, tokenizer: Tokenizer, loadStats: LoadStats) {
    this.path = path;
    this.loadStats = loadStats;
    this.#native = nativeModel;
    this.vocabOnly = nativeModel === undefined;
    this.gguf = gguf;
    this.tokenizer = tokenizer;
    const name = gguf.metadata['general.name'];
    const described = nativeModel ? callNativeSync(() => nativeModel.info()) : metadataInfo(gguf, tokenizer);
    const placement = described.placement ? toPlacement(described.placement) : undefined;
    this.info = Object.freeze({ ...described, placement, name: typeof name === 'string' ? name : undefined });
  }

  /** True once {@link dispose} was called. */
  get disposed(): boolean {
    return this.#disposed;
  }

  /** Text to token ids. */
  tokenize(text: string, options?: TokenizeOptions): Int32Array {
    this.#check();
    if (typeof text !== 'string') throw invalid(`Expected a string for text but received ${describe(text)}`);
    const o = optionsObject(options, 'tokenize()');
    checkKnownKeys(o, ['addBos', 'special'] satisfies (keyof TokenizeOptions)[], 'tokenize()');
    if (o.addBos !== undefined) booleanOption('addBos', o.addBos);
    if (o.special !== undefined) booleanOption('special', o.special);
    return this.tokenizer.tokenize(text, o);
  }

  /** Token ids to text. */
  detokenize(tokens: ArrayLike<number>, options?: DetokenizeOptions): string {
    this.#check();
    const ids = toTokenArray(tokens, this.info.vocabSize, 'tokens');
    const o = optionsObject(options, 'detokenize()');
    checkKnownKeys(o, ['special'] satisfies (keyof DetokenizeOptions)[], 'detokenize()');
    if (o.special !== undefined) booleanOption('special', o.special);
    return this.tokenizer.detokenize(ids, o);
  }

  /**
   * Where this model's parts would go on a GPU with `vram` bytes for it: the KV cache, the
   * activations and the non-expert weights first, then as many routed experts as the rest holds
   * (see {@link Placement}). Throws `ERR_OUT_OF_MEMORY` naming the sizes when the budget cannot
   * hold the non-expert part. Only arithmetic: nothing is allocated or copied.
   * @example model.planPlacement({ vram: '24GiB', contextSize: 8192 }).summary
   */
  planPlacement(options: PlacementOptions): Placement {
    this.#check();
    const nativeModel = this.#native;
    if (!nativeModel) throw new MoerunError('ERR_UNSUPPORTED', `planPlacement(): ${this.path} was loaded with vocabOnly: true; load it without vocabOnly to plan its weights`);
    const args = placementArgs(options, Math.min(this.info.contextLength || 4096, 4096));
    return toPlacement(callNativeSync(() => nativeModel.placement(...args)));
  }

  /**
   * Which routed experts `input` (text, or token ids) selects at each MoE layer, read in windows
   * of `contextSize` tokens; with `vram`, also the hit rate a hot-expert cache on a GPU of that
   * size would have on it (see {@link RoutingStats}). Runs the model over the whole input.
   * @example (await model.routingStats(text, { vram: '16GiB' })).cache?.hitRate
   */
  async routingStats(input: string | ArrayLike<number>, options?: RoutingStatsOptions): Promise<RoutingStats> {
    this.#check();
    const o = routingArgs(options);
    const tokens = routingInput(input, (text) => this.tokenize(text));
    if (tokens.length === 0) throw invalid('routingStats(): the input has no tokens');
    const placement = o.vram === undefined ? undefined : this.planPlacement({ vram: o.vram, contextSize: o.contextSize });
    const session = this.createSession({ contextSize: o.contextSize });
    try {
      session.startExpertStats(placement ? Int32Array.from(placement.layers, (l) => l.deviceExperts) : null);
      for (let i = 0; i < tokens.length; i += o.contextSize) {
        if (o.signal?.aborted) throw new MoerunError('ERR_ABORTED', 'routingStats: aborted');
        session.reset();
        await session.evaluate(tokens.slice(i, i + o.contextSize), o.signal ? { signal: o.signal } : {});
      }
      const raw = session.takeExpertStats();
      const layers = raw.selections.flatMap((a, layer) => (a.length > 0 && a.some((n) => n > 0) ? [{ layer, selections: Array.from(a) }] : []));
      const stats: RoutingStats = { tokens: tokens.length, layers };
      if (placement) {
        const total = raw.hits + raw.misses;
        stats.cache = { placement, hits: raw.hits, misses: raw.misses, hitRate: total > 0 ? raw.hits / total : 0, loadsPerToken: raw.loads / tokens.length };
      }
      return stats;
    } finally {
      await session.dispose();
    }
  }

  /** A new session (its own KV cache) on this model. */
  createSession(options?: SessionOptions): Session<Model> {
    this.#check();
    const nativeModel = this.#native;
    if (!nativeModel) {
      throw new MoerunError('ERR_UNSUPPORTED', `createSession(): ${this.path} was loaded with vocabOnly: true (tokenizer and chat template only, no weights); load it without vocabOnly to run it`);
    }
    const session: Session<Model> = new Session(this, nativeModel, () => this.#sessions.delete(session), options);
    this.#sessions.add(session);
    return session;
  }

  /**
   * Cancels in-flight work of every session, waits for it, and frees the model. Safe to call
   * twice; later calls on the model or its sessions throw `ERR_DISPOSED`.
   */
  async dispose(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    const nativeModel = this.#native;
    this.#native = undefined;
    await Promise.all([...this.#sessions].map((s) => s.dispose()));
    this.#sessions.clear();
    nativeModel?.dispose();
  }

  /** `await using model = await loadModel(...)` */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }

  #check(): void {
    if (this.#disposed) throw new MoerunError('ERR_DISPOSED', 'model is disposed');
  }
}

/** The `gpu` option for the addon: the mode, and the placement request of its object form. */
function gpuArgs(value: unknown): {
  gpu: 'auto' | 'cuda' | 'off';
  gpuPlacement?: { budget: number; contextSize: number; kvType: KvCacheType; batchSize: number; experts: ExpertPlacement; expertCache: boolean };
} {
  if (value === undefined || value === 'auto' || value === 'cuda') return { gpu: value ?? 'auto' };
  if (value === false) return { gpu: 'off' };
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw invalid(`Expected 'auto', 'cuda', false or an object such as { vram: '20GiB' } for gpu but received ${describe(value)}`);
  }
  const g = optionsObject(value as GpuOptions, 'gpu');
  checkKnownKeys(g, ['mode', 'vram', 'experts', 'contextSize', 'kvCacheType', 'batchSize', 'expertCache'] satisfies (keyof GpuOptions)[], 'gpu');
  const mode = g.mode === undefined ? 'auto' : oneOf('gpu.mode', g.mode, ['auto', 'cuda'] as const);
  const budget = g.vram === undefined ? 0 : parseByteSize('gpu.vram', g.vram);
  const experts = g.experts === undefined ? 'auto' : oneOf('gpu.experts', g.experts, ['auto', 'cpu', 'gpu'] as const);
  const contextSize = g.contextSize === undefined ? 4096 : positiveInteger('gpu.contextSize', g.contextSize);
  if (contextSize > MAX_CONTEXT_SIZE) throw invalid(`gpu.contextSize ${contextSize} is larger than the largest supported, ${MAX_CONTEXT_SIZE}`);
  const kvType = g.kvCacheType === undefined ? 'f16' : oneOf('gpu.kvCacheType', g.kvCacheType, kvCacheTypes);
  const batchSize = g.batchSize === undefined ? 0 : positiveInteger('gpu.batchSize', g.batchSize);
  if (batchSize > MAX_CONTEXT_SIZE) throw invalid(`gpu.batchSize ${batchSize} is larger than the largest supported, ${MAX_CONTEXT_SIZE}`);
  const expertCache = g.expertCache === undefined ? true : booleanOption('gpu.expertCache', g.expertCache);
  return { gpu: mode, gpuPlacement: { budget, contextSize, kvType, batchSize, experts, expertCache } };
}

/** A vocab-only model's {@link NativeModelInfo}, from the metadata and tensor list alone. */
function metadataInfo(gguf: GgufInfo, tokenizer: Tokenizer): NativeModelInfo {
  const md = gguf.metadata;
  const architecture = typeof md['general.architecture'] === 'string' ? md['general.architecture'] : '';
  const count = (key: string): number => {
    const v = md[`${architecture}.${key}`];
    return typeof v === 'number' ? v : typeof v === 'bigint' ? Number(v) : 0;
  };
  const fileType = md['general.file_type'];
  const parameterCount = gguf.tensors.reduce((sum, t) => sum + t.shape.reduce((a, b) => a * b, 1), 0);
  return {
    architecture,
    blockCount: count('block_count'),
    embeddingLength: count('embedding_length'),
    headCount: count('attention.head_count'),
    headCountKv: count('attention.head_count_kv') || count('attention.head_count'),
    vocabSize: tokenizer.vocabSize,
    contextLength: count('context_length'),
    expertCount: count('expert_count'),
    expertUsedCount: count('expert_used_count'),
    fileType: typeof fileType === 'number' ? fileType : -1,
    sizeBytes: gguf.fileSize,
    parameterCount,
    // Routed experts' share is the native loader's knowledge; without weights, all parameters.
    activeParameterCount: parameterCount,
    threads: 0,
    threadsPinned: false,
    cpuPath: 'none',
    backend: 'none',
    backendName: 'none',
    weightMemory: 'none',
    weightsArranged: 0,
  };
}

/**
 * Loads a GGUF model off the JS thread.
 * @example
 * await using model = await loadModel('model.gguf', { threads: 4 });
 */
export async function loadModel(path: string, options?: LoadModelOptions): Promise<Model> {
  nonEmptyString('path', path);
  const o = optionsObject(options, 'loadModel()');
  checkKnownKeys(
    o,
    ['threads', 'pinThreads', 'signal', 'onProgress', 'vocabOnly', 'allowLargerThanRam', 'gpu', 'gpuDevice', 'prefetch', 'weightMemory'] satisfies (keyof LoadModelOptions)[],
    'loadModel()',
  );
  const vocabOnly = o.vocabOnly === undefined ? false : booleanOption('vocabOnly', o.vocabOnly);
  const allowLargerThanRam = o.allowLargerThanRam === undefined ? false : booleanOption('allowLargerThanRam', o.allowLargerThanRam);
  const prefetch = o.prefetch === undefined ? true : booleanOption('prefetch', o.prefetch);
  const threads = o.threads === undefined || o.threads === 'auto' ? 0 : positiveInteger('threads', o.threads);
  const pinThreads = o.pinThreads === undefined ? false : booleanOption('pinThreads', o.pinThreads);
  const { gpu, gpuPlacement } = gpuArgs(o.gpu);
  if (o.weightMemory !== undefined && o.weightMemory !== 'auto' && o.weightMemory !== 'map' && o.weightMemory !== 'copy') {
    throw invalid(`Expected 'auto', 'map' or 'copy' for weightMemory but received ${describe(o.weightMemory)}`);
  }
  const weightMemory = o.weightMemory ?? 'auto';
  const gpuDevice = o.gpuDevice === undefined ? 0 : nonNegativeInteger('gpuDevice', o.gpuDevice);
  const signal = o.signal === undefined ? undefined : abortSignal('signal', o.signal);
  const onProgress = o.onProgress === undefined ? undefined : functionOption<(f: number) => void>('onProgress', o.onProgress);
  if (signal?.aborted) throw new MoerunError('ERR_ABORTED', 'loadModel: aborted before it started');
  if (vocabOnly) return loadVocabOnly(path, signal, onProgress);

  const t0 = performance.now();
  const clock = new SliceClock();
  clock.start();
  // Progress arrives from the loading thread; once loading is done, later (queued) calls are
  // dropped and the final 1 is reported here, so every report comes before the promise resolves.
  let loaded = false;
  let lastReported = -1;
  const report = onProgress
    ? (f: number): void => {
        if (loaded) return;
        lastReported = f;
        onProgress(f);
      }
    : undefined;
  const job = callNativeSync(() => native().loadModel(path, { threads, pinThreads, gpu, gpuDevice, gpuPlacement, allowLargerThanRam, prefetch, weightMemory }, report));
  const onAbort = (): void => job.abort();
  signal?.addEventListener('abort', onAbort, { once: true });
  let nativeModel: NativeModel | undefined;
  try {
    clock.stop();
    nativeModel = await callNative(() => job.promise);
    loaded = true;
    const gguf = await convertSliced(nativeModel, clock);
    // Indexing a large vocabulary takes tens of milliseconds: done in slices of the clock's budget.
    const tokenizer = await Tokenizer.fromGgufMetadataAsync(gguf.metadata, clock).catch((err: unknown) => {
      if (err instanceof MoerunError) throw err;
      throw new MoerunError('ERR_UNSUPPORTED', `model: ${path}: ${(err as Error).message}`, { cause: err });
    });
    if (signal?.aborted) throw new MoerunError('ERR_ABORTED', 'loadModel: aborted');
    if (onProgress && lastReported !== 1) onProgress(1);
    clock.stop();
    const model = new Model(path, nativeModel, gguf, tokenizer, { totalMs: performance.now() - t0, jsThread: clock.stats });
    nativeModel = undefined;  // owned by the model now
    return model;
  } finally {
    clock.stop();
    loaded = true;
    nativeModel?.dispose();
    signal?.removeEventListener('abort', onAbort);
  }
}

/** `loadModel(path, { vocabOnly: true })`: the header and metadata, read off the JS thread, and the tokenizer. */
async function loadVocabOnly(path: string, signal: AbortSignal | undefined, onProgress: ((f: number) => void) | undefined): Promise<Model> {
  const t0 = performance.now();
  const clock = new SliceClock();
  const gguf = await readGgufInfo(path);
  if (signal?.aborted) throw new MoerunError('ERR_ABORTED', 'loadModel: aborted');
  clock.start();
  const tokenizer = await Tokenizer.fromGgufMetadataAsync(gguf.metadata, clock).catch((err: unknown) => {
    if (err instanceof MoerunError) throw err;
    throw new MoerunError('ERR_UNSUPPORTED', `model: ${path}: ${(err as Error).message}`, { cause: err });
  });
  clock.stop();
  if (signal?.aborted) throw new MoerunError('ERR_ABORTED', 'loadModel: aborted');
  onProgress?.(1);
  return new Model(path, undefined, gguf, tokenizer, { totalMs: performance.now() - t0, jsThread: clock.stats });
}
