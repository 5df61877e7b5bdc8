/**
 * The binding loader and the typed raw surface of the addon. Nothing else in lib/ touches the
 * untyped addon object, so `any` never leaks.
 * @internal
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { MoerunError } from './errors.js';
import type { GgufInfo } from './gguf/reader.js';
import type { ModelInfo } from './model-info.js';
import type { GpuInfo } from './system.js';
import type { NativePlacement } from './placement.js';

/** Fields of `model.info` that come from native code (all but `name`). */
export type NativeModelInfo = Omit<ModelInfo, 'name' | 'placement'> & { placement?: NativePlacement };

/** Chunk c of a large GGUF string array: its elements c * 4096 .. as one string and their offsets. */
export interface NativeStringTableChunk {
  text: string;
  offsets: Uint32Array;
}

/**
 * Access to a parsed GGUF: `gguf(maxInline)` converts the header, metadata and tensor list, with
 * string arrays longer than maxInline (1024, the native side's table threshold) left as
 * `{ deferredStrings: n }` for `ggufStringTableChunk(key, c)` to fetch, each chunk once (see
 * lib/gguf/reader.ts).
 */
export interface NativeGgufSource {
  gguf(maxInline?: number): GgufInfo;
  ggufStringTableChunk(key: string, chunk: number): NativeStringTableChunk;
  /** Numeric arrays of over 16384 elements are left as `{ deferredArray: n, elementType }` (the
   * typed array class); this copies elements begin.. into `target`, as many as fit. */
  ggufArrayInto(key: string, begin: number, target: ArrayBufferView): number;
}

export interface NativeModel extends NativeGgufSource {
  info(): NativeModelInfo;
  /** batchSize 0: the session default (see createSession). */
  placement(budgetBytes: number, contextSize: number, kvType: string, batchSize: number, experts: string): NativePlacement;
  dispose(): void;
}

export interface NativeGguf {
  info(maxInline?: number): GgufInfo;
  stringTableChunk(key: string, chunk: number): NativeStringTableChunk;
  arrayInto(key: string, begin: number, target: ArrayBufferView): number;
  close(): void;
}

export interface NativeSamplerParams {
  temperature: number;
  topK: number;
  topP: number;
  minP: number;
  repeatPenalty: number;
  repeatLastN: number;
  seed: number;
}

/** 0 = no logits, 1 = last row, 2 = every row. */
export type NativeLogitsMode = 0 | 1 | 2;

export interface NativeSession {
  evaluate(tokens: Int32Array, mode: NativeLogitsMode): Promise<Float32Array>;
  /** Evaluates, then samples among the tokens `mask` allows (bitset of nVocab bits; -1: none allowed). */
  step(tokens: Int32Array, mask?: Uint32Array | null): Promise<number>;
  /** Samples again from the last step()'s logits, among the tokens `mask` allows (-1: none). */
  resample(mask: Uint32Array): number;
  setSampler(params: NativeSamplerParams): void;
  acceptTokens(tokens: Int32Array): void;
  abort(): void;
  truncate(n: number): void;
  nPast(): number;
  kvBytes(): number;
  workCounters(): NativeWorkCounters;
  /** Counts later evaluations' expert selections; with slots, simulates that hot-expert cache. */
  expertStatsStart(slotsPerLayer: Int32Array | null): void;
  expertStatsTake(): NativeExpertStats;
  /** Later evaluations accumulate an importance matrix (native/runtime/imatrix.h). */
  imatrixStart(): void;
  /** What they accumulated, by tensor name in name order; stops collecting. */
  imatrixTake(): NativeImatrixEntry[];
  dispose(): void;
}

/** One weight's importance-matrix sums (matrices × columns) and row counts (one per matrix, or one). */
export interface NativeImatrixEntry {
  name: string;
  sums: Float32Array;
  counts: Float64Array;
}

/** Expert selections counted by a session (runtime/expert_stats.h). */
export interface NativeExpertStats {
  tokens: number;
  /** Per layer, per expert: tokens that selected it (empty arrays on dense models). */
  selections: Float64Array[];
  hits: number;
  misses: number;
  loads: number;
}

/** What a session's native compute loop has done (a layer step is one layer of one batch). */
export interface NativeWorkCounters {
  /** Layer steps computed since the session was created. */
  layerSteps: number;
  abortedEvaluations: number;
  /** The last aborted evaluation: layer steps it had finished when it saw the abort, out of the
   * steps the whole call needed; -1 before any abort. */
  lastAbortStepsDone: number;
  lastAbortStepsPlanned: number;
  /** The device's expert cache, this session's calls (routed experts split between a GPU and the host). */
  expertHits: number;
  expertMisses: number;
  expertLoads: number;
}

export interface NativeCpuInfo {
  supportedPaths: string[];
  activePath: string | null;
  error?: string;
  physicalCores: number;
  features: Record<string, boolean>;
}

export interface NativeBinding {
  /** Parses a GGUF off the JS thread; the handle converts it to JS (lib/gguf/reader.ts). */
  openGguf(path: string): Promise<NativeGguf>;
  loadModel(
    path: string,
    options: {
      threads: number; pinThreads?: boolean; gpu: 'auto' | 'cuda' | 'off'; gpuDevice: number; allowLargerThanRam: boolean; prefetch: boolean;
      weightMemory?: 'auto' | 'map' | 'copy';
      gpuPlacement?: { budget: number; contextSize: number; kvType: string; batchSize: number; experts: 'auto' | 'cpu' | 'gpu'; expertCache: boolean };
    },
    onProgress?: (fraction: number) => void,
  ): { promise: Promise<NativeModel>; abort(): void };
  /** batchSize: tokens per forward chunk (default: 512 for MoE models, 256 for dense ones). */
  createSession(model: NativeModel, contextSize: number, kvType: string, batchSize?: number): NativeSession;
  cpuInfo(): NativeCpuInfo;
  gpuInfo(): GpuInfo;
  /** CPU time of the calling thread in milliseconds (NaN where the platform has no such clock). */
  threadCpuMs(): number;
  /** Encodes rows of `rowLength` floats as `type` (GGML type name), threaded, off the JS thread. */
  quantize(type: string, src: Float32Array, rowLength: number, threads: number): Promise<Uint8Array>;
  /**
   * The same with the tensor's importance matrix (`rowLength` values per matrix, each matrix
   * `rowsPerMatrix` rows; `src` holds rows `firstRow`..), as llama.cpp's quantizers take it.
   */
  quantize(type: string, src: Float32Array, rowLength: number, threads: number, importance: Float32Array, rowsPerMatrix: number, firstRow: number): Promise<Uint8Array>;
  /** Decodes `rows` rows of `rowLength` elements of `type` into floats. */
  dequantize(type: string, src: Uint8Array, rows: number, rowLength: number, threads: number): Promise<Float32Array>;
}

const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
let binding: NativeBinding | undefined;
let bindingPath: string | undefined;

/** The .node file native() loads (or loaded): a local build/Release one first, else the prebuild for this platform. */
export function nativeBinaryPath(): string {
  native();
  return bindingPath!;
}

/** Loads the addon once (prebuild for this platform, or the local build). */
export function native(): NativeBinding {
  if (binding) return binding;
  const require = createRequire(import.meta.url);
  try {
    const load = require('node-gyp-build') as { resolve(dir: string): string };
    bindingPath = load.resolve(packageRoot);
    binding = require(bindingPath) as NativeBinding;
  } catch (err) {
    throw new MoerunError(
      'ERR_NATIVE_LOAD',
      `moerun: could not load the native addon for ${process.platform}-${process.arch} (Node ${process.version}).\n` +
        'Possible solutions:\n' +
        '- Reinstall so the addon is built: `npm rebuild moerun` (needs python3, make and a C++20 compiler)\n' +
        '- Check that this platform is supported (x86-64 or arm64 Linux/macOS)\n' +
        `Cause: ${(err as Error).message}`,
      { cause: err },
    );
  }
  return binding;
}

/** The package root (for the bundled model). @internal */
export const moerunPackageRoot = packageRoot;
