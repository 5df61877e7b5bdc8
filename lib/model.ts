/**
 * Models: loading a GGUF file, its description, tokenization, and sessions.
 */
import { callNative, callNativeSync, MoerunError } from './errors.js';
import { convertSliced, type GgufInfo } from './gguf/reader.js';
import { native, type NativeModel } from './native.js';
import { Session, type SessionModel, type SessionOptions } from './session.js';
import { SliceClock, type SliceStats } from './slices.js';
import { Tokenizer } from './tokenizer/index.js';
import type { ModelInfo } from './model-info.js';
import {
  abortSignal,
  booleanOption,
  checkKnownKeys,
  functionOption,
  nonEmptyString,
  optionsObject,
  positiveInteger,
  describe,
  invalid,
  toTokenArray,
} from './validate.js';

export type { ModelInfo } from './model-info.js';

/** Options of {@link loadModel}. */
export interface LoadModelOptions {
  /** Compute threads: a positive integer, or `'auto'` (default) for the number of physical cores. */
  threads?: number | 'auto';
  /** Aborts loading; the promise rejects with `ERR_ABORTED`. */
  signal?: AbortSignal;
  /** Called with the fraction of weights loaded, 0..1. */
  onProgress?: (fraction: number) => void;
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

  #native: NativeModel | undefined;
  readonly #sessions = new Set<Session>();

  /** @internal Use {@link loadModel}. */
  constructor(path: string, nativeModel: NativeModel, gguf: GgufInfo, tokenizer: Tokenizer, loadStats: LoadStats) {
    this.path = path;
    this.loadStats = loadStats;
    this.#native = nativeModel;
    this.gguf = gguf;
    this.tokenizer = tokenizer;
    const name = gguf.metadata['general.name'];
    this.info = Object.freeze({ ...callNativeSync(() => nativeModel.info()), name: typeof name === 'string' ? name : undefined });
  }

  /** True once {@link dispose} was called. */
  get disposed(): boolean {
    return this.#native === undefined;
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

  /** A new session (its own KV cache) on this model. */
  createSession(options?: SessionOptions): Session<Model> {
    const nativeModel = this.#check();
    const session: Session<Model> = new Session(this, nativeModel, () => this.#sessions.delete(session), options);
    this.#sessions.add(session);
    return session;
  }

  /**
   * Cancels in-flight work of every session, waits for it, and frees the model. Safe to call
   * twice; later calls on the model or its sessions throw `ERR_DISPOSED`.
   */
  async dispose(): Promise<void> {
    if (!this.#native) return;
    const nativeModel = this.#native;
    this.#native = undefined;
    await Promise.all([...this.#sessions].map((s) => s.dispose()));
    this.#sessions.clear();
    nativeModel.dispose();
  }

  /** `await using model = await loadModel(...)` */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }

  #check(): NativeModel {
    if (!this.#native) throw new MoerunError('ERR_DISPOSED', 'model is disposed');
    return this.#native;
  }
}

/**
 * Loads a GGUF model off the JS thread.
 * @example
 * await using model = await loadModel('model.gguf', { threads: 4 });
 */
export async function loadModel(path: string, options?: LoadModelOptions): Promise<Model> {
  nonEmptyString('path', path);
  const o = optionsObject(options, 'loadModel()');
  checkKnownKeys(o, ['threads', 'signal', 'onProgress'], 'loadModel()');
  const threads = o.threads === undefined || o.threads === 'auto' ? 0 : positiveInteger('threads', o.threads);
  const signal = o.signal === undefined ? undefined : abortSignal('signal', o.signal);
  const onProgress = o.onProgress === undefined ? undefined : functionOption<(f: number) => void>('onProgress', o.onProgress);
  if (signal?.aborted) throw new MoerunError('ERR_ABORTED', 'loadModel: aborted before it started');

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
  const job = callNativeSync(() => native().loadModel(path, threads, report));
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
