/**
 * Importance matrices, as llama.cpp's `llama-imatrix` computes them and `llama-quantize --imatrix`
 * uses them: for every weight matrix of a model, how large the activations that reach each of its
 * input columns are on some text, so that very low-bit quantizers spend their precision where the
 * inputs are large.
 *
 * - {@link computeImatrix} evaluates text in chunks of `contextSize` tokens and accumulates, per
 *   weight (per expert for MoE expert tensors, per head for MLA's attn_k_b / attn_v_b), the sum of
 *   squared input activations per column and the number of rows (tokens) that contributed
 *   (native/runtime/imatrix.h has the exact rules);
 * - {@link readImatrix} reads llama.cpp's imatrix GGUF files (`<tensor>.in_sum2` and
 *   `<tensor>.counts`, `imatrix.*` keys) and its legacy `.dat` files; {@link writeImatrix} writes
 *   either (GGUF by default, as llama-imatrix; `.dat` as its `--output-format dat`);
 * - {@link importanceOf} gives one tensor's vector as llama-quantize hands it to the quantizers.
 */
import { open, readFile, writeFile } from 'node:fs/promises';

import { callNative, callNativeSync, MoerunError } from './errors.js';
import { readGgufInfo, convertSliced, type GgufInfo } from './gguf/reader.js';
import { writeGguf } from './gguf/writer.js';
import { native, type NativeModel, type NativeSession } from './native.js';
import { SliceClock } from './slices.js';
import { cpuInfo } from './system.js';
import { Tokenizer } from './tokenizer/index.js';
import {
  abortSignal,
  checkKnownKeys,
  describe,
  functionOption,
  invalid,
  nonEmptyString,
  oneOf,
  optionsObject,
  positiveInteger,
} from './validate.js';

// ============================================================================================
// The data
// ============================================================================================

/** One weight's statistics, as llama-imatrix stores them. */
export interface ImatrixEntry {
  /**
   * Sums of squared input activations: `counts.length` matrices (experts or heads; one for a plain
   * weight, which may still have several heads) of `columns` values each, matrix after matrix.
   * In a legacy `.dat` file: each column's mean times the chunk count.
   */
  sums: Float32Array;
  /**
   * The rows (tokens) that contributed: one per routed expert, else a single count. In a legacy
   * `.dat` file: one number, the chunk count the means were multiplied by.
   */
  counts: Float32Array;
}

/** An importance matrix. */
export interface Imatrix {
  /** By tensor name (`blk.0.attn_q.weight`), in name order. */
  entries: Map<string, ImatrixEntry>;
  /** The texts it was computed on (`imatrix.datasets`). */
  datasets: string[];
  /** Chunks of `chunkSize` tokens evaluated (`imatrix.chunk_count`). */
  chunkCount: number;
  /** Tokens per chunk (`imatrix.chunk_size`; 0 in a legacy file). */
  chunkSize: number;
  /** The file format it came from: llama.cpp's GGUF one, or its legacy `.dat` one. */
  format: 'gguf' | 'dat';
  /** A GGUF file had all three `imatrix.*` keys (llama-quantize refuses one without them). */
  hasMetadata: boolean;
}

/** The number of input columns of an entry. */
export function imatrixColumns(entry: ImatrixEntry): number {
  return entry.counts.length === 0 ? 0 : entry.sums.length / entry.counts.length;
}

/**
 * The importance vector of tensor `name` as llama-quantize passes it to a quantizer: per matrix
 * (expert), each column's mean squared activation (sum / count; 1 where a matrix saw no rows), or
 * for a legacy file the stored value divided by its chunk count. `undefined` when the matrix has no
 * entry for that tensor.
 */
export function importanceOf(imatrix: Imatrix, name: string): Float32Array | undefined {
  const e = imatrix.entries.get(name);
  if (!e) return undefined;
  const out = new Float32Array(e.sums.length);
  if (imatrix.format === 'dat') {
    const ncall = e.counts[0] ?? 0;
    for (let i = 0; i < out.length; i++) out[i] = ncall > 0 ? Math.fround(e.sums[i]! / ncall) : e.sums[i]!;
    return out;
  }
  const ne0 = imatrixColumns(e);
  for (let j = 0; j < e.counts.length; j++) {
    // llama-quantize rounds each count to an integer (lround) and divides in float
    const count = Math.fround(Math.round(e.counts[j]!));
    for (let i = j * ne0; i < (j + 1) * ne0; i++) out[i] = count > 0 ? Math.fround(e.sums[i]! / count) : 1;
  }
  return out;
}

// ============================================================================================
// Files
// ============================================================================================

const SUMS_SUFFIX = '.in_sum2';
const COUNTS_SUFFIX = '.counts';

/**
 * Reads an importance matrix: llama.cpp's GGUF format (any file that starts with the GGUF magic),
 * else its legacy `.dat` format. A malformed file is `ERR_BAD_FORMAT`, naming what is wrong; a
 * missing one `ERR_IO`.
 */
export async function readImatrix(path: string): Promise<Imatrix> {
  nonEmptyString('path', path);
  let head: Uint8Array;
  try {
    const f = await open(path, 'r');
    try {
      head = new Uint8Array(4);
      await f.read(head, 0, 4, 0);
    } finally {
      await f.close();
    }
  } catch (err) {
    throw new MoerunError('ERR_IO', `imatrix: cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
  const isGguf = head[0] === 0x47 && head[1] === 0x47 && head[2] === 0x55 && head[3] === 0x46; // "GGUF"
  return isGguf ? readGgufImatrix(path) : readLegacyImatrix(path);
}

async function readGgufImatrix(path: string): Promise<Imatrix> {
  const info = await readGgufInfo(path);
  const bad = (what: string): never => {
    throw new MoerunError('ERR_BAD_FORMAT', `imatrix: ${path}: ${what}`);
  };
  if (info.tensors.length < 1) bad('no tensors');
  const md = info.metadata;
  const datasetsValue = md['imatrix.datasets'];
  const datasets = Array.isArray(datasetsValue) && datasetsValue.every((d) => typeof d === 'string') ? (datasetsValue as string[]) : [];
  const u32 = (key: string): number | undefined => {
    const v = md[key];
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) bad(`'${key}' is ${describe(v)}, expected an unsigned integer`);
    return v as number;
  };
  const chunkCount = u32('imatrix.chunk_count');
  const chunkSize = u32('imatrix.chunk_size');

  // Pair <name>.in_sum2 with <name>.counts (other tensors are ignored, as llama.cpp does).
  const pairs = new Map<string, { sums?: GgufInfo['tensors'][number]; counts?: GgufInfo['tensors'][number] }>();
  for (const t of info.tensors) {
    const suffix = t.name.endsWith(SUMS_SUFFIX) ? SUMS_SUFFIX : t.name.endsWith(COUNTS_SUFFIX) ? COUNTS_SUFFIX : undefined;
    if (!suffix || t.name.length === suffix.length) continue;
    const name = t.name.slice(0, -suffix.length);
    const p = pairs.get(name) ?? {};
    if (suffix === SUMS_SUFFIX) p.sums = t;
    else p.counts = t;
    pairs.set(name, p);
  }
  const file = await open(path, 'r');
  const entries = new Map<string, ImatrixEntry>();
  try {
    const readF32 = async (t: GgufInfo['tensors'][number]): Promise<Float32Array> => {
      if (t.type !== 'F32') bad(`tensor '${t.name}' is ${t.type}; sums and counts must be F32`);
      const n = t.shape.reduce((a, b) => a * b, 1);
      const out = new Float32Array(n);
      const bytes = new Uint8Array(out.buffer);
      const { bytesRead } = await file.read(bytes, 0, bytes.length, t.offset);
      if (bytesRead !== bytes.length) bad(`tensor '${t.name}' data ends past the end of the file`);
      return out;
    };
    for (const name of [...pairs.keys()].sort()) {
      const p = pairs.get(name)!;
      if (!p.sums || !p.counts) bad(`'${name}' has ${p.sums ? 'sums but no counts' : 'counts but no sums'} (${name}${p.sums ? COUNTS_SUFFIX : SUMS_SUFFIX} is missing)`);
      const sums = await readF32(p.sums!);
      const counts = await readF32(p.counts!);
      if (counts.length === 0 || sums.length === 0 || sums.length % counts.length !== 0) {
        bad(`'${name}' has ${sums.length} sums for ${counts.length} counts, not a whole number of sums per count`);
      }
      for (const c of counts) if (!(c >= 0)) bad(`'${name}' has a count of ${c}`);
      entries.set(name, { sums, counts });
    }
  } finally {
    await file.close();
  }
  if (entries.size === 0) bad('no <tensor>.in_sum2 / <tensor>.counts pairs');
  return {
    entries,
    datasets,
    chunkCount: chunkCount ?? 0,
    chunkSize: chunkSize ?? 0,
    format: 'gguf',
    hasMetadata: md['imatrix.datasets'] !== undefined && chunkCount !== undefined && chunkSize !== undefined,
  };
}

/**
 * llama.cpp's legacy format: i32 n_entries, then per entry i32 name length, the name, i32 ncall,
 * i32 nval, nval f32 (each column's mean times ncall); then optionally i32 chunk count, i32 length
 * and the dataset's name. Little endian.
 */
async function readLegacyImatrix(path: string): Promise<Imatrix> {
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (err) {
    throw new MoerunError('ERR_IO', `imatrix: cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
  const bad = (what: string, at: number): never => {
    throw new MoerunError('ERR_BAD_FORMAT', `imatrix: ${path} is neither a GGUF file nor a legacy .dat imatrix: ${what} at byte ${at}`);
  };
  let at = 0;
  const i32 = (what: string): number => {
    if (at + 4 > buf.length) bad(`the file ends before the ${what}`, at);
    const v = buf.readInt32LE(at);
    at += 4;
    return v;
  };
  const nEntries = i32('entry count');
  if (nEntries < 1) bad(`an entry count of ${nEntries}`, 0);
  const entries = new Map<string, ImatrixEntry>();
  for (let i = 0; i < nEntries; i++) {
    const len = i32(`name length of entry ${i + 1}`);
    if (len < 1 || at + len > buf.length) bad(`entry ${i + 1} has a name length of ${len}`, at - 4);
    const name = buf.toString('utf8', at, at + len);
    at += len;
    const ncall = i32(`call count of '${name}'`);
    const nval = i32(`value count of '${name}'`);
    if (nval < 1 || at + 4 * nval > buf.length) bad(`'${name}' has ${nval} values`, at - 4);
    const sums = new Float32Array(nval);
    for (let j = 0; j < nval; j++) sums[j] = buf.readFloatLE(at + 4 * j);
    at += 4 * nval;
    entries.set(name, { sums, counts: Float32Array.of(ncall) });
  }
  let chunkCount = 0;
  const datasets: string[] = [];
  if (at + 4 <= buf.length) {
    chunkCount = Math.max(0, i32('chunk count'));
    if (at + 4 <= buf.length) {
      const len = i32('dataset name length');
      if (len > 0 && at + len <= buf.length) datasets.push(buf.toString('utf8', at, at + len));
    }
  }
  const sorted = new Map([...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  return { entries: sorted, datasets, chunkCount, chunkSize: 0, format: 'dat', hasMetadata: true };
}

/** Options for {@link writeImatrix}. */
export interface WriteImatrixOptions {
  /**
   * `'gguf'` (default): llama.cpp's imatrix GGUF format. `'dat'`: its legacy format, for tools that
   * read only that (`llama-imatrix --output-format dat` writes the same layout).
   */
  format?: 'gguf' | 'dat';
}

/**
 * Writes `imatrix` in llama.cpp's GGUF format, as llama-imatrix does: `general.type = imatrix`,
 * `imatrix.datasets`, `imatrix.chunk_count`, `imatrix.chunk_size`, then per tensor in name order
 * `<name>.in_sum2` (F32, columns × matrices) and `<name>.counts` (F32, 1 × matrices). A matrix read
 * from a legacy file is converted the way llama-imatrix does when it loads one (sums and counts
 * times `chunkSize`, which must then be given).
 *
 * With `format: 'dat'`, the legacy layout that llama-imatrix's `save_imatrix_legacy` writes (see
 * {@link readImatrix}): per tensor in name order, the call count `ncall` = ceil(largest count /
 * `chunkSize`) and each column's mean times `ncall` (a matrix that saw no rows stores 1 × `ncall`);
 * tensors that saw no rows at all are left out, as llama-imatrix leaves them; then the chunk count
 * and the last dataset's name. A legacy matrix is written back as it was read.
 */
export async function writeImatrix(path: string, imatrix: Imatrix, options?: WriteImatrixOptions): Promise<void> {
  nonEmptyString('path', path);
  if (typeof imatrix !== 'object' || imatrix === null || !(imatrix.entries instanceof Map)) {
    throw invalid(`Expected an Imatrix (readImatrix or computeImatrix) for imatrix but received ${describe(imatrix)}`);
  }
  const o = optionsObject(options, 'writeImatrix options');
  checkKnownKeys(o, ['format'], 'writeImatrix options');
  const format = o.format === undefined ? 'gguf' : oneOf('format', o.format, ['gguf', 'dat'] as const);
  if (format === 'dat') return writeLegacyImatrix(path, imatrix);
  const legacyScale = imatrix.format === 'dat' ? imatrix.chunkSize : 1;
  if (imatrix.format === 'dat' && !(legacyScale > 0)) {
    throw invalid('writeImatrix: a legacy .dat matrix needs chunkSize (the tokens per chunk it was computed with) to be converted');
  }
  const tensors = [];
  for (const name of [...imatrix.entries.keys()].sort()) {
    const e = imatrix.entries.get(name)!;
    const columns = imatrixColumns(e);
    if (!Number.isInteger(columns) || columns < 1) throw invalid(`writeImatrix: '${name}' has ${e.sums.length} sums for ${e.counts.length} counts`);
    let { sums, counts } = e;
    if (imatrix.format === 'dat') {
      sums = sums.map((v) => v * legacyScale);
      counts = counts.map((c) => c * legacyScale);
    }
    tensors.push({ name: `${name}${SUMS_SUFFIX}`, type: 'F32' as const, shape: [columns, counts.length], data: sums });
    tensors.push({ name: `${name}${COUNTS_SUFFIX}`, type: 'F32' as const, shape: [1, counts.length], data: counts });
  }
  await writeGguf(path, {
    metadata: [
      ['general.type', 'imatrix'],
      ['imatrix.datasets', { type: 'array', itemType: 'string', value: imatrix.datasets }],
      ['imatrix.chunk_count', { type: 'u32', value: imatrix.chunkCount }],
      ['imatrix.chunk_size', { type: 'u32', value: imatrix.chunkSize }],
    ],
    tensors,
  });
}

/** The legacy `.dat` layout of {@link writeImatrix} (`format: 'dat'`). */
async function writeLegacyImatrix(path: string, imatrix: Imatrix): Promise<void> {
  const chunkSize = imatrix.chunkSize;
  if (imatrix.format !== 'dat' && !(Number.isInteger(chunkSize) && chunkSize > 0)) {
    throw invalid('writeImatrix: a .dat file needs chunkSize (the tokens per chunk) to turn counts into call counts');
  }
  const i32 = (v: number): Buffer => {
    const b = Buffer.alloc(4);
    b.writeInt32LE(v);
    return b;
  };
  const parts: Buffer[] = [];
  let stored = 0;
  for (const name of [...imatrix.entries.keys()].sort()) {
    const e = imatrix.entries.get(name)!;
    const columns = imatrixColumns(e);
    if (!Number.isInteger(columns) || columns < 1) throw invalid(`writeImatrix: '${name}' has ${e.sums.length} sums for ${e.counts.length} counts`);
    let ncall: number;
    let values: Float32Array;
    if (imatrix.format === 'dat') {
      ncall = e.counts[0]!;
      values = e.sums;
    } else {
      const largest = e.counts.reduce((a, b) => Math.max(a, b), 0);
      if (largest === 0) continue; // no rows reached it: llama-imatrix skips the entry
      ncall = Math.ceil(largest / chunkSize);
      values = new Float32Array(e.sums.length);
      for (let j = 0; j < e.counts.length; j++) {
        const count = Math.fround(e.counts[j]!);
        for (let i = j * columns; i < (j + 1) * columns; i++) {
          // float arithmetic as llama-imatrix's: (value / count) * ncall; a matrix without rows stores 1
          values[i] = count === 0 ? Math.fround(ncall) : Math.fround(Math.fround(e.sums[i]! / count) * ncall);
        }
      }
    }
    const nameBytes = Buffer.from(name, 'utf8');
    parts.push(i32(nameBytes.length), nameBytes, i32(ncall), i32(values.length), Buffer.from(values.buffer, values.byteOffset, values.byteLength));
    stored++;
  }
  if (stored === 0) throw invalid('writeImatrix: no tensor of this matrix saw any rows; a .dat file would be empty');
  const dataset = Buffer.from(imatrix.datasets.at(-1) ?? '', 'utf8');
  const body = Buffer.concat([i32(stored), ...parts, i32(imatrix.chunkCount), i32(dataset.length), dataset]);
  try {
    await writeFile(path, body);
  } catch (err) {
    throw new MoerunError('ERR_IO', `imatrix: cannot write ${path}: ${(err as Error).message}`, { cause: err });
  }
}

// ============================================================================================
// Computing one
// ============================================================================================

/** Options for {@link computeImatrix}. */
export interface ComputeImatrixOptions {
  /** Tokens per chunk (llama-imatrix's `--ctx-size`, default 512); the text must hold at least two chunks. */
  contextSize?: number;
  /** Evaluate at most this many chunks (llama-imatrix's `--chunks`; default: all the text holds). */
  chunks?: number;
  /** Compute threads (default: physical cores). */
  threads?: number;
  /** KV cache element type (default `'f16'`, llama-imatrix's default). */
  kvCacheType?: 'f32' | 'f16' | 'bf16' | 'q8_0';
  /** Recorded in `imatrix.datasets` (llama-imatrix records its `-f` file name). */
  dataset?: string;
  /** Aborting stops within a layer of the current chunk; the promise rejects with `ERR_ABORTED`. */
  signal?: AbortSignal;
  /** Called after each chunk with the chunks done and the total. */
  onProgress?: (chunksDone: number, chunks: number) => void;
}

const computeOptionKeys = [
  'contextSize', 'chunks', 'threads', 'kvCacheType', 'dataset', 'signal', 'onProgress',
] as const satisfies readonly (keyof ComputeImatrixOptions)[];

/** llama-imatrix's batch: products over fewer rows are skipped, so chunks run in batches of this many tokens, as its ubatches. */
const IMATRIX_BATCH = 512;

/**
 * Computes an importance matrix of the GGUF model at `modelPath` on `text`, as llama.cpp's
 * `llama-imatrix -m MODEL -f TEXT -c contextSize [--chunks N]` does: the text is tokenized (with
 * BOS where the model adds one), cut into chunks of `contextSize` tokens, and each chunk is
 * evaluated from an empty cache with its first token replaced by BOS. Every weight matrix of the
 * layers (`blk.*`) gets its sums of squared input activations and row counts; the output head and
 * the token embedding get none. The work runs off the JS thread.
 *
 * @example
 * const im = await computeImatrix('model-f16.gguf', await readFile('calibration.txt', 'utf8'), { contextSize: 512 });
 * await writeImatrix('imatrix.gguf', im);
 * await quantize('model-f16.gguf', 'model-iq2_xxs.gguf', 'IQ2_XXS', { imatrix: im });
 */
export async function computeImatrix(modelPath: string, text: string, options?: ComputeImatrixOptions): Promise<Imatrix> {
  nonEmptyString('modelPath', modelPath);
  if (typeof text !== 'string') throw invalid(`Expected a string for text but received ${describe(text)}`);
  const o = optionsObject(options, 'computeImatrix()');
  checkKnownKeys(o, computeOptionKeys, 'computeImatrix()');
  const contextSize = o.contextSize === undefined ? 512 : positiveInteger('contextSize', o.contextSize);
  if (contextSize < 16) throw invalid(`contextSize must be at least 16 (llama-imatrix skips products over fewer rows) but received ${contextSize}`);
  const maxChunks = o.chunks === undefined ? Infinity : positiveInteger('chunks', o.chunks);
  const threads = o.threads === undefined ? cpuInfo().physicalCores : positiveInteger('threads', o.threads);
  const kvCacheType = o.kvCacheType === undefined ? 'f16' : oneOf('kvCacheType', o.kvCacheType, ['f32', 'f16', 'bf16', 'q8_0'] as const);
  const dataset = o.dataset === undefined ? undefined : nonEmptyString('dataset', o.dataset);
  const signal = o.signal === undefined ? undefined : abortSignal('signal', o.signal);
  const onProgress = o.onProgress === undefined ? undefined : functionOption<NonNullable<ComputeImatrixOptions['onProgress']>>('onProgress', o.onProgress);
  const aborted = (): MoerunError => new MoerunError('ERR_ABORTED', 'computeImatrix: aborted');
  if (signal?.aborted) throw aborted();

  // on the CPU: its backend hands the collector each product's inputs (a GPU one does not yet)
  const job = callNativeSync(() => native().loadModel(modelPath, { threads, gpu: 'off', gpuDevice: 0, allowLargerThanRam: false, prefetch: true }));
  const abortLoad = (): void => job.abort();
  signal?.addEventListener('abort', abortLoad, { once: true });
  let model: NativeModel | undefined;
  let session: NativeSession | undefined;
  const abortSession = (): void => session?.abort();
  try {
    model = await callNative(() => job.promise);
    signal?.removeEventListener('abort', abortLoad);
    const clock = new SliceClock();
    clock.start();
    const gguf = await convertSliced(model, clock);
    const tokenizer = await Tokenizer.fromGgufMetadataAsync(gguf.metadata, clock);
    clock.stop();
    // llama-imatrix: common_tokenize(text, add_special = true, parse_special = false)
    const tokens = tokenizer.tokenize(text);
    if (tokens.length < 2 * contextSize) {
      throw invalid(`computeImatrix: the text is ${tokens.length} tokens; a context of ${contextSize} needs at least ${2 * contextSize}`);
    }
    const chunks = Math.min(maxChunks, Math.floor(tokens.length / contextSize));
    const bos = tokenizer.addBosDefault && tokenizer.bos !== undefined ? tokenizer.bos : -1;

    session = callNativeSync(() => native().createSession(model!, contextSize, kvCacheType, Math.min(IMATRIX_BATCH, contextSize)));
    signal?.addEventListener('abort', abortSession, { once: true });
    session.imatrixStart();
    for (let i = 0; i < chunks; i++) {
      if (signal?.aborted) throw aborted();
      const chunk = tokens.slice(i * contextSize, (i + 1) * contextSize);
      if (bos >= 0) chunk[0] = bos;
      session.truncate(0);
      const s = session;
      await callNative(() => s.evaluate(chunk, 0));
      onProgress?.(i + 1, chunks);
    }
    const raw = session.imatrixTake();
    const entries = new Map<string, ImatrixEntry>();
    let maxCount = 0;
    for (const r of raw) {
      entries.set(r.name, { sums: r.sums, counts: Float32Array.from(r.counts) });
      for (const c of r.counts) maxCount = Math.max(maxCount, c);
    }
    return {
      entries,
      datasets: dataset === undefined ? [] : [dataset],
      // llama-imatrix's m_last_chunk: the most rows any matrix saw, in whole chunks
      chunkCount: Math.floor(maxCount / contextSize),
      chunkSize: contextSize,
      format: 'gguf',
      hasMetadata: true,
    };
  } catch (err) {
    if (err instanceof MoerunError && err.code === 'ERR_ABORTED') throw aborted();
    throw err;
  } finally {
    signal?.removeEventListener('abort', abortLoad);
    signal?.removeEventListener('abort', abortSession);
    session?.dispose();
    model?.dispose();
  }
}
