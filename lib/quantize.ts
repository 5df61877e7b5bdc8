/**
 * The quantizer: re-encode a GGUF model's weights as another type, with llama.cpp's per-tensor
 * choices (llama-quant.cpp), streaming into the GGUF writer.
 *
 * Which tensors change (llama.cpp's `tensor_allows_quantization`): 2-D and 3-D tensors whose name
 * ends in `weight`, except norms (`*_norm.weight`), MoE routers (`ffn_gate_inp.weight`) and a few
 * small special tensors. Everything else (1-D tensors, biases, routers, norms) is copied as is.
 *
 * Which type a changed tensor gets:
 * - a block type (`Q4_0` ... `IQ4_XS`) is "pure", like `llama-quantize --pure`: every quantizable
 *   tensor gets that type;
 * - a mix (`Q4_K_M`, `Q5_K_M`, `Q6_K`) follows llama.cpp's recipe for that file type: output (and
 *   tied token embeddings) Q6_K, attn_v and ffn_down of some layers Q6_K, fused QKV one step up,
 *   8-expert models' attn_k/attn_v Q8_0;
 * - then, as in llama.cpp's `tensor_type_fallback`, a tensor whose rows are not a whole number of
 *   blocks falls back: Q2_K/Q3_K → Q4_0, Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0, IQ4_XS → IQ4_NL, and
 *   F16 when even the 32-element block does not fit;
 * - float targets (`F32`, `F16`, `BF16`) convert every quantizable tensor.
 *
 * Tensors are written in llama.cpp's order (non-layer tensors first, then by layer number, then by
 * name), which is also the order its per-layer recipe counters assume.
 */
import { open, type FileHandle } from 'node:fs/promises';

import { callNative, MoerunError } from './errors.js';
import { ggmlTensorByteSize, ggmlTypeInfo, type GgmlTypeName } from './gguf/constants.js';
import { readGgufInfo, type GgufInfo, type GgufTensorInfo, type GgufValue as ReadValue } from './gguf/reader.js';
import { writeGguf, type GgufTensorInput, type GgufValue as WriteValue } from './gguf/writer.js';
import { native } from './native.js';
import { cpuInfo } from './system.js';
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
// Public surface
// ============================================================================================

/** Block types the quantizer writes: every tensor that may be quantized gets this type. */
export const quantizeBlockTypes = [
  'F32', 'F16', 'BF16', 'Q8_0', 'Q4_0', 'Q4_1', 'Q5_0', 'Q5_1',
  'Q2_K', 'Q3_K', 'Q4_K', 'Q5_K', 'Q6_K', 'IQ4_NL', 'IQ4_XS',
] as const;

/** Every TYPE {@link quantize} accepts: a block type or one of llama.cpp's mixes. */
export const quantizeTypes = [...quantizeBlockTypes, 'Q4_K_M', 'Q5_K_M'] as const;

/** A target of {@link quantize}: a block type (`'Q4_K'`) or a llama.cpp mix (`'Q4_K_M'`). */
export type QuantizeType = (typeof quantizeTypes)[number];

/** Options for {@link quantize}. */
export interface QuantizeOptions {
  /** Worker threads for quantization (default: physical cores). */
  threads?: number;
  /** Called after each slab of rows with the fraction of source elements done and the tensor's name. */
  onProgress?: (fraction: number, tensorName: string) => void;
  /** Aborting stops at the next slab (a few MB of work) and leaves no output file. */
  signal?: AbortSignal;
}

/** The names of {@link QuantizeOptions}, each checked against the interface. */
const quantizeOptionKeys = ['threads', 'onProgress', 'signal'] as const satisfies readonly (keyof QuantizeOptions)[];

/** What happened to one tensor. */
export interface QuantizedTensor {
  name: string;
  /** ne0 first. */
  shape: number[];
  /** Type in the source file. */
  sourceType: string;
  /** Type written. */
  type: string;
  /** Bytes written (without padding). */
  byteSize: number;
  /** True when the row length did not fit the wanted block type and llama.cpp's fallback applied. */
  fallback: boolean;
}

/** What {@link quantize} returns. */
export interface QuantizeResult {
  /** The file written. */
  path: string;
  /** `general.file_type` written: llama.cpp's LLAMA_FTYPE value for the target. */
  fileType: number;
  /** Source and output tensor data sizes in bytes. */
  sourceBytes: number;
  bytes: number;
  /** Total file size. */
  fileSize: number;
  /** Every tensor, in the order written. */
  tensors: QuantizedTensor[];
}

/**
 * Re-encode the weights of the GGUF file `inPath` as `type` and write `outPath` (atomically: a
 * temporary file renamed at the end; on error or abort nothing is left behind). Metadata is copied
 * key for key, with `general.file_type` and `general.quantization_version` set as llama-quantize
 * sets them. Quantized sources are dequantized first (requantizing loses accuracy twice).
 *
 * The work runs on native threads, a slab of rows at a time, so the JS thread stays responsive.
 *
 * @example
 * await quantize('model-f16.gguf', 'model-q4_k_m.gguf', 'Q4_K_M', { onProgress: (f) => bar(f) });
 */
export async function quantize(inPath: string, outPath: string, type: QuantizeType, options?: QuantizeOptions): Promise<QuantizeResult> {
  nonEmptyString('inPath', inPath);
  nonEmptyString('outPath', outPath);
  const target = oneOf('type', type, quantizeTypes);
  const opts = optionsObject(options, 'quantize()');
  checkKnownKeys(opts, quantizeOptionKeys, 'quantize()');
  const threads = opts.threads === undefined ? cpuInfo().physicalCores : positiveInteger('threads', opts.threads);
  const onProgress = opts.onProgress === undefined ? undefined : functionOption<NonNullable<QuantizeOptions['onProgress']>>('onProgress', opts.onProgress);
  const signal = opts.signal === undefined ? undefined : abortSignal('signal', opts.signal);
  const checkAbort = (): void => {
    if (signal?.aborted) throw new MoerunError('ERR_ABORTED', `quantize: aborted while writing ${outPath}; no file was written`);
  };
  checkAbort();

  const info = await readGgufInfo(inPath);
  const file = await open(inPath, 'r');
  try {
    const metadata = await typedMetadata(file, info, inPath);
    const plan = planTensors(info, target);
    const fileType = FILE_TYPES[target];
    setKey(metadata, 'general.quantization_version', { type: 'u32', value: GGML_QNT_VERSION });
    setKey(metadata, 'general.file_type', { type: 'u32', value: fileType });

    const totalElements = plan.reduce((n, p) => n + elementCount(p.tensor.shape), 0) || 1;
    let doneElements = 0;
    const tensors: GgufTensorInput[] = plan.map((p) => ({
      name: p.tensor.name,
      type: p.type as GgmlTypeName,
      shape: p.tensor.shape,
      data: () =>
        convertTensor(file, p.tensor, p.type, threads, (rows) => {
          checkAbort();
          doneElements += rows * (p.tensor.shape[0] ?? 1);
          onProgress?.(doneElements / totalElements, p.tensor.name);
        }),
    }));
    const alignment = info.alignment;
    const written = await writeGguf(outPath, { metadata, tensors, alignment });
    return {
      path: outPath,
      fileType,
      sourceBytes: plan.reduce((n, p) => n + p.tensor.byteSize, 0),
      bytes: written.tensors.reduce((n, t) => n + t.byteSize, 0),
      fileSize: written.byteSize,
      tensors: plan.map((p, i) => ({
        name: p.tensor.name,
        shape: [...p.tensor.shape],
        sourceType: p.tensor.type,
        type: p.type as GgmlTypeName,
        byteSize: written.tensors[i]!.byteSize,
        fallback: p.fallback,
      })),
    };
  } catch (err) {
    if (err instanceof MoerunError) throw err;
    // The writer reports bad data as TypeError/RangeError, and fs as system errors.
    const code = (err as { code?: unknown })?.code;
    throw new MoerunError(typeof code === 'string' ? 'ERR_IO' : 'ERR_INTERNAL', `quantize: ${(err as Error)?.message ?? String(err)}`, { cause: err });
  } finally {
    await file.close();
  }
}

// ============================================================================================
// llama.cpp's file types and per-tensor recipe (src/llama-quant.cpp)
// ============================================================================================

/** GGML_QNT_VERSION: the quantization format version llama-quantize writes. */
const GGML_QNT_VERSION = 2;

/**
 * LLAMA_FTYPE_* for each target. Block types without a "pure" file type of their own take the
 * closest one (Q3_K → Q3_K_S, Q4_K → Q4_K_S, Q5_K → Q5_K_S), as a pure llama-quantize run does.
 */
const FILE_TYPES: Record<QuantizeType, number> = {
  F32: 0, F16: 1, Q4_0: 2, Q4_1: 3, Q8_0: 7, Q5_0: 8, Q5_1: 9, Q2_K: 10, Q3_K: 11, Q4_K: 14,
  Q4_K_M: 15, Q5_K: 16, Q5_K_M: 17, Q6_K: 18, IQ4_NL: 25, IQ4_XS: 30, BF16: 32,
};

/** The recipes this quantizer implements; everything else is pure. */
type Mix = 'Q4_K_M' | 'Q5_K_M' | 'Q6_K';
const MIXES: Record<string, Mix | undefined> = { Q4_K_M: 'Q4_K_M', Q5_K_M: 'Q5_K_M', Q6_K: 'Q6_K' };
const FLOAT_TYPES = new Set(['F32', 'F16', 'BF16']);

interface PlannedTensor {
  tensor: GgufTensorInfo;
  type: string;
  fallback: boolean;
}

/** ggml_n_dims: dimensions up to the last one that is not 1. */
function nDims(shape: readonly number[]): number {
  let n = 1;
  for (let i = 0; i < shape.length; i++) if (shape[i]! > 1) n = i + 1;
  return n;
}

/** llama.cpp's `tensor_allows_quantization` with default parameters. */
export function tensorAllowsQuantization(name: string, shape: readonly number[]): boolean {
  if (nDims(shape) < 2) return false;
  if (!name.endsWith('weight')) return false;
  if (name.includes('_norm.weight')) return false;
  if (name.includes('ffn_gate_inp.weight')) return false; // MoE routers
  if (name === 'position_embd.weight' || name === 'token_types.weight') return false;
  const small = [
    'ffn_gate_tid2eid.weight', 'altup', 'laurel', 'per_layer_model_proj', 'ssm_conv1d', 'shortconv.conv.weight',
    'indexer.k_proj.weight', 'indexer.q_proj.weight', 'attn_rel_b.weight', '.position_embd', 'sam.pos_embd',
    'sam.neck.', 'sam.net_', '.rel_pos', '.patch_embd', '.patch_merger', 'a.rvq.codebook', 'mm.a.code_embd',
  ];
  if (small.some((s) => name.includes(s))) return false;
  if (/time_mix_(first|w0|w1|w2|v0|v1|v2|a0|a1|a2|g1|g2|decay_w1|decay_w2|lerp_fused)\.weight/.test(name)) return false;
  return true;
}

type Category = 'output' | 'token_embd' | 'attn_qkv' | 'attn_kv_b' | 'attn_v' | 'attn_k' | 'attn_q' | 'attn_output' | 'ffn_up' | 'ffn_gate' | 'ffn_down' | 'other';

/** llama.cpp's `tensor_get_category`. */
function category(name: string): Category {
  if (name === 'output.weight') return 'output';
  if (name === 'token_embd.weight' || name === 'per_layer_token_embd.weight') return 'token_embd';
  for (const c of ['attn_qkv', 'attn_kv_b', 'attn_v', 'attn_k', 'attn_q', 'attn_output'] as const) {
    if (name.includes(`${c}.weight`)) return c;
  }
  for (const c of ['ffn_up', 'ffn_gate', 'ffn_down'] as const) if (name.includes(c)) return c;
  return 'other';
}

/** llama.cpp's `weight_name_comparer`: layer number (-1 for non-layer tensors), then name. */
function llamaOrder(a: GgufTensorInfo, b: GgufTensorInfo): number {
  const layer = (n: string): number => {
    const m = /^blk\.(\d+)\./.exec(n);
    return m ? Number(m[1]) : -1;
  };
  const la = layer(a.name);
  const lb = layer(b.name);
  if (la !== lb) return la - lb;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/** `use_more_bits`: the first and last eighth of the layers, and every third one between. */
function useMoreBits(i: number, n: number): boolean {
  return i < Math.trunc(n / 8) || i >= Math.trunc((7 * n) / 8) || (i - Math.trunc(n / 8)) % 3 === 2;
}

function numberKey(md: Record<string, ReadValue>, key: string): number {
  const v = md[key];
  return typeof v === 'number' ? v : typeof v === 'bigint' ? Number(v) : 0;
}

/** The type of every tensor, in llama.cpp's order. */
function planTensors(info: GgufInfo, target: QuantizeType): PlannedTensor[] {
  const md = info.metadata;
  const arch = typeof md['general.architecture'] === 'string' ? md['general.architecture'] : '';
  const nExpert = Math.max(1, numberKey(md, `${arch}.expert_count`));
  const nLayer = numberKey(md, `${arch}.block_count`);
  const nHead = numberKey(md, `${arch}.attention.head_count`);
  const nHeadKv = numberKey(md, `${arch}.attention.head_count_kv`) || nHead;
  // llama.cpp's LLM_TYPE_70B (80-layer llama with GQA): attn_v gets a step more precision.
  const is70B = arch === 'llama' && nLayer === 80 && nHead !== nHeadKv;
  const tensors = [...info.tensors].sort(llamaOrder);
  const names = new Set(tensors.map((t) => t.name));
  const tied = !names.has('output.weight');
  const nAttnV = tensors.filter((t) => ['attn_v', 'attn_qkv', 'attn_kv_b'].includes(category(t.name))).length;
  let iAttnV = 0;
  let iFfnDown = 0;
  const mix = MIXES[target];
  const isFloat = FLOAT_TYPES.has(target);
  const base = mix === 'Q4_K_M' ? 'Q4_K' : mix === 'Q5_K_M' ? 'Q5_K' : target;

  const planned = tensors.map((tensor): PlannedTensor => {
    if (!tensorAllowsQuantization(tensor.name, tensor.shape)) return { tensor, type: tensor.type, fallback: false };
    if (isFloat) return { tensor, type: target, fallback: false };
    let type: string = base;
    const cat = category(tensor.name);
    const ne0 = tensor.shape[0]!;
    if (mix) {
      // llama_tensor_get_type_impl, for the Q4_K_M / Q5_K_M / Q6_K file types.
      if (cat === 'output' || (tied && cat === 'token_embd')) {
        type = ne0 % ggmlTypeInfo(type as 'Q4_K').blockSize !== 0 ? 'Q8_0' : 'Q6_K';
      } else if (cat === 'attn_v' || cat === 'attn_qkv' || cat === 'attn_kv_b') {
        if ((mix === 'Q4_K_M' || mix === 'Q5_K_M') && useMoreBits(iAttnV, nAttnV)) type = 'Q6_K';
        if (is70B && type === 'Q4_K') type = 'Q5_K';
        if (nExpert === 8) type = 'Q8_0';
        // (llama.cpp's separate attn_qkv rule sits after this attn_v-like branch, so it never fires)
        iAttnV++;
      } else if (cat === 'attn_k') {
        if (nExpert === 8) type = 'Q8_0';
      } else if (cat === 'ffn_down') {
        let iLayer = iFfnDown;
        if (nExpert > 1) {
          const m = /^blk\.(\d+)\./.exec(tensor.name);
          if (!m) throw new MoerunError('ERR_BAD_FORMAT', `quantize: cannot find the layer of tensor '${tensor.name}'`);
          iLayer = Number(m[1]);
        }
        if ((mix === 'Q4_K_M' || mix === 'Q5_K_M') && useMoreBits(iLayer, nLayer)) type = 'Q6_K';
        iFfnDown++;
      } else if (cat === 'attn_output') {
        if (nExpert === 8 && mix === 'Q4_K_M') type = 'Q5_K';
      }
    }
    // tensor_type_fallback: rows that are not whole blocks.
    let fallback = false;
    if (ne0 % ggmlTypeInfo(type as 'Q4_K').blockSize !== 0) {
      fallback = true;
      type = FALLBACK[type] ?? type;
      if (ne0 % ggmlTypeInfo(type as 'Q4_K').blockSize !== 0) type = 'F16';
    }
    return { tensor, type, fallback };
  });
  for (const p of planned) {
    if (p.type !== p.tensor.type && !READABLE_TYPES.has(p.tensor.type)) {
      throw new MoerunError('ERR_UNSUPPORTED', `quantize: tensor '${p.tensor.name}' has type ${p.tensor.type}, which cannot be converted to ${p.type}`);
    }
  }
  return planned;
}

/** Source types the quantizer can decode: what it writes, and the types moerun reads but does not write yet. */
const READABLE_TYPES = new Set<string>([
  ...quantizeBlockTypes,
  'IQ2_XXS', 'IQ2_XS', 'IQ2_S', 'IQ3_XXS', 'IQ3_S', 'IQ1_S', 'IQ1_M', 'TQ1_0', 'TQ2_0', 'MXFP4',
]);

/** llama.cpp's fallback for a 256-block type (32-block types go straight to F16). */
const FALLBACK: Record<string, string> = {
  Q2_K: 'Q4_0', Q3_K: 'Q4_0', Q4_K: 'Q5_0', Q5_K: 'Q5_1', Q6_K: 'Q8_0', IQ4_XS: 'IQ4_NL',
};

// ============================================================================================
// Tensor data: read a slab of rows, dequantize if needed, quantize, hand to the writer
// ============================================================================================

/** About 32 MiB of F32 per slab: big enough to keep the threads busy, small enough to abort fast. */
const SLAB_ELEMENTS = 8 << 20;

function elementCount(shape: readonly number[]): number {
  return shape.reduce((n, d) => n * d, 1);
}

async function* convertTensor(
  file: FileHandle,
  tensor: GgufTensorInfo,
  type: string,
  threads: number,
  progress: (rows: number) => void,
): AsyncGenerator<Uint8Array> {
  const ne0 = tensor.shape[0] ?? 1;
  const rows = elementCount(tensor.shape) / ne0;
  const srcRowBytes = ggmlTensorByteSize(tensor.type as 'F32', [ne0]);
  const slabRows = Math.max(1, Math.min(rows, Math.floor(SLAB_ELEMENTS / ne0)));
  const bin = native();
  for (let r = 0; r < rows; r += slabRows) {
    const n = Math.min(slabRows, rows - r);
    const src = await readRange(file, tensor.offset + r * srcRowBytes, n * srcRowBytes, tensor.name);
    if (type === tensor.type) {
      yield src; // llama.cpp copies a tensor whose type does not change
    } else {
      const floats =
        tensor.type === 'F32'
          ? new Float32Array(src.buffer, src.byteOffset, n * ne0)
          : await callNative(() => bin.dequantize(tensor.type, src, n, ne0, threads));
      if (type === 'F32') yield new Uint8Array(floats.buffer, floats.byteOffset, floats.byteLength);
      else yield await callNative(() => bin.quantize(type, floats, ne0, threads));
    }
    progress(n);
  }
}

/** `length` bytes at `position`, in a fresh 4-byte-aligned buffer. */
async function readRange(file: FileHandle, position: number, length: number, what: string): Promise<Uint8Array> {
  const buf = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await file.read(buf, done, length - done, position + done);
    if (bytesRead === 0) throw new MoerunError('ERR_BAD_FORMAT', `quantize: tensor '${what}' data ends past the end of the file`);
    done += bytesRead;
  }
  return buf;
}

// ============================================================================================
// Metadata: readGgufInfo gives values; the header gives their stored types, so that a copied
// f32 stays f32 (10000 would otherwise be written as u32) and a u64 stays u64.
// ============================================================================================

type Entry = [string, WriteValue];

function setKey(entries: Entry[], key: string, value: WriteValue): void {
  const at = entries.findIndex(([k]) => k === key);
  if (at >= 0) entries[at] = [key, value];
  else entries.push([key, value]);
}

const TYPE_NAMES = ['u8', 'i8', 'u16', 'i16', 'u32', 'i32', 'f32', 'bool', 'string', 'array', 'u64', 'i64', 'f64'] as const;
const SCALAR_BYTES = [1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8];

/** Metadata entries in file order, each with its stored GGUF type. */
async function typedMetadata(file: FileHandle, info: GgufInfo, path: string): Promise<Entry[]> {
  const header = await readRange(file, 0, info.dataOffset, 'header');
  const view = new DataView(header.buffer, header.byteOffset, header.byteLength);
  const bad = (): never => {
    throw new MoerunError('ERR_BAD_FORMAT', `quantize: cannot parse the metadata of ${path}`);
  };
  let at = 8;
  const u32 = (): number => {
    if (at + 4 > view.byteLength) bad();
    const v = view.getUint32(at, true);
    at += 4;
    return v;
  };
  const u64 = (): number => {
    if (at + 8 > view.byteLength) bad();
    const v = Number(view.getBigUint64(at, true));
    at += 8;
    return v;
  };
  const string = (): string => {
    const n = u64();
    if (at + n > view.byteLength) bad();
    const s = Buffer.from(header.buffer, header.byteOffset + at, n).toString('utf8');
    at += n;
    return s;
  };
  // Skips a value of type t; returns its item type for arrays.
  const skip = (t: number): string | undefined => {
    if (t === 8) {
      string();
      return undefined;
    }
    if (t === 9) {
      const item = u32();
      const count = u64();
      if (item === 8 || item === 9) for (let i = 0; i < count; i++) skip(item);
      else {
        const size = SCALAR_BYTES[item];
        if (!size) return bad();
        at += size * count;
      }
      return TYPE_NAMES[item];
    }
    const size = SCALAR_BYTES[t];
    if (!size) return bad();
    at += size;
    return undefined;
  };
  u64(); // tensor count
  const nKv = u64();
  const out: Entry[] = [];
  for (let i = 0; i < nKv; i++) {
    const key = string();
    const t = u32();
    const typeName = TYPE_NAMES[t] ?? bad();
    const itemType = skip(t);
    const value = info.metadata[key];
    if (value === undefined) bad();
    if (typeName === 'array') {
      out.push([key, { type: 'array', itemType: itemType as 'u8', value: value as unknown as ArrayLike<number> }]);
    } else {
      out.push([key, { type: typeName, value } as WriteValue]);
    }
  }
  return out;
}

/** A TYPE argument from the command line, case-insensitive. @internal */
export function describeQuantizeType(value: unknown): string {
  if (typeof value === 'string' && (quantizeTypes as readonly string[]).includes(value.toUpperCase())) return value.toUpperCase();
  throw invalid(`Expected one of ${quantizeTypes.map((t) => `'${t}'`).join(', ')} for type but received ${describe(value)}`);
}
