/**
 * The quantizer: re-encode a GGUF model's weights as another type, with llama.cpp's per-tensor
 * choices (llama-quant.cpp), streaming into the GGUF writer.
 *
 * Which tensors change (llama.cpp's `tensor_allows_quantization`): 2-D and 3-D tensors whose name
 * ends in `weight`, except norms (`*_norm.weight`), MoE routers (`ffn_gate_inp.weight`) and a few
 * small special tensors. Everything else (1-D tensors, biases, routers, norms) is copied as is.
 *
 * Which type a changed tensor gets (llama.cpp's `llama_tensor_get_type`):
 * - a target named like a llama.cpp file type (`Q4_0`, `Q2_K`, `Q3_K_M`, `IQ4_XS`, `IQ2_XXS`, ...)
 *   follows that file type's recipe (quantize/recipes.ts), as `llama-quantize IN OUT TYPE` does;
 *   `pure` gives every tensor the file type's own type, as `--pure` does;
 * - `Q3_K`, `Q4_K`, `Q5_K` are pure runs of the _S file types;
 * - `tokenEmbeddingType` / `outputTensorType` set those two tensors, and `tensorTypes` overrides
 *   (regular expressions on tensor names) replace the recipe for the tensors they match;
 * - then, as in llama.cpp's `tensor_type_fallback`, a tensor whose rows are not a whole number of
 *   blocks falls back: Q2_K/Q3_K → Q4_0, Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0, IQ types → IQ4_NL,
 *   and F16 when even the 32-element block does not fit;
 * - float targets (`F32`, `F16`, `BF16`) convert every quantizable tensor.
 *
 * Tensors are written in llama.cpp's order (non-layer tensors first, then by layer number, then by
 * name), which is also the order its per-layer recipe counters assume.
 */
import { open, type FileHandle } from 'node:fs/promises';

import { callNative, MoerunError } from './errors.js';
import { GgmlType, ggmlTensorByteSize, ggmlTypeInfo, type GgmlTypeName } from './gguf/constants.js';
import { importanceOf, readImatrix, type Imatrix } from './imatrix.js';
import { readGgufInfo, type GgufInfo, type GgufTensorInfo, type GgufValue as ReadValue } from './gguf/reader.js';
import { writeGguf, type GgufTensorInput, type GgufValue as WriteValue } from './gguf/writer.js';
import { native } from './native.js';
import {
  fallbackType,
  isAttnVLike,
  LLAMA_FILE_TYPES,
  recipeType,
  requiresImatrix,
  tensorCategory,
  type LlamaFileType,
  type RecipeCounters,
  type RecipeModel,
} from './quantize/recipes.js';
import { cpuInfo } from './system.js';
import {
  abortSignal,
  booleanOption,
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

/** Tensor types the quantizer writes (it has an encoder for each); tensorTypes may name any of them. */
export const quantizeBlockTypes = [
  'F32', 'F16', 'BF16', 'Q8_0', 'Q4_0', 'Q4_1', 'Q5_0', 'Q5_1',
  'Q2_K', 'Q3_K', 'Q4_K', 'Q5_K', 'Q6_K', 'IQ4_NL', 'IQ4_XS', 'IQ2_S', 'IQ3_S',
  'IQ2_XXS', 'IQ2_XS', 'IQ3_XXS', 'IQ1_S', 'IQ1_M',
] as const;

/**
 * Block types that are not llama.cpp file type names: a pure run of the file type named here
 * (llama-quantize takes Q3_K / Q4_K / Q5_K as aliases of the _M mixes; moerun does not).
 */
const PURE_TARGETS = { Q3_K: 'Q3_K_S', Q4_K: 'Q4_K_S', Q5_K: 'Q5_K_S' } as const satisfies Record<string, LlamaFileType>;

/**
 * Every TYPE {@link quantize} accepts. Each name but Q3_K, Q4_K and Q5_K is a llama.cpp file type
 * and means what `llama-quantize IN OUT TYPE` writes (its per-tensor recipe); Q3_K, Q4_K and Q5_K
 * give every quantizable tensor that block type (`llama-quantize --pure` of the _S file type).
 */
export const quantizeTypes = [
  'F32', 'F16', 'BF16', 'Q8_0', 'Q4_0', 'Q4_1', 'Q5_0', 'Q5_1', 'Q2_K', 'Q3_K', 'Q4_K', 'Q5_K', 'Q6_K', 'IQ4_NL', 'IQ4_XS',
  'Q2_K_S', 'Q3_K_S', 'Q3_K_M', 'Q3_K_L', 'Q4_K_S', 'Q4_K_M', 'Q5_K_S', 'Q5_K_M',
  'IQ1_S', 'IQ1_M', 'IQ2_XXS', 'IQ2_XS', 'IQ2_S', 'IQ2_M', 'IQ3_XXS', 'IQ3_XS', 'IQ3_S', 'IQ3_M',
] as const satisfies readonly (LlamaFileType | keyof typeof PURE_TARGETS)[];

/** A target of {@link quantize}: a llama.cpp file type (`'Q4_K_M'`, `'IQ4_XS'`) or a pure block type (`'Q4_K'`). */
export type QuantizeType = (typeof quantizeTypes)[number];

/** A tensor type by its GGUF name (`'Q4_K'`, `'F16'`, ...), for the per-tensor overrides. */
export type QuantizeTensorType = GgmlTypeName;

/** One `--tensor-type PATTERN=TYPE` override. */
export interface TensorTypeOverride {
  /**
   * A regular expression searched in each tensor name (`'ffn_down_exps'`, `'blk\\.[0-2]\\.'`).
   * As in llama-quantize it is lower-cased first; the first override whose pattern matches wins.
   */
  pattern: string;
  /** The type those tensors get instead of the recipe's (still subject to llama.cpp's fallback for odd row lengths). */
  type: QuantizeTensorType;
}

/** Options for {@link quantize}. */
export interface QuantizeOptions {
  /** Worker threads for quantization (default: physical cores). */
  threads?: number;
  /** Called after each slab of rows with the fraction of source elements done and the tensor's name. */
  onProgress?: (fraction: number, tensorName: string) => void;
  /** Aborting stops at the next slab (a few MB of work) and leaves no output file. */
  signal?: AbortSignal;
  /**
   * Per-tensor types for hand-made mixes (llama-quantize's `--tensor-type`): a tensor whose name
   * matches a pattern gets that type instead of the recipe's. Quantized targets only.
   */
  tensorTypes?: TensorTypeOverride[];
  /** The type of `output.weight` (llama-quantize's `--output-tensor-type`), used as is. */
  outputTensorType?: QuantizeTensorType;
  /** The type of `token_embd.weight` (llama-quantize's `--token-embedding-type`), used as is. */
  tokenEmbeddingType?: QuantizeTensorType;
  /** Every quantizable tensor gets the file type's own type, no recipe (llama-quantize's `--pure`). */
  pure?: boolean;
  /**
   * An importance matrix (llama-quantize's `--imatrix`): a file path (llama.cpp's GGUF or legacy
   * `.dat` format) or one from {@link readImatrix} / {@link computeImatrix}. As in llama.cpp, each
   * tensor's vector (per expert for expert tensors) goes to its quantizer where that type's
   * quantizer takes one (every K, IQ and 4/5-bit legacy type; not F16, BF16, Q8_0, TQ1_0, TQ2_0,
   * MXFP4), the recipes take the matrix into account, and the mixes llama.cpp writes only with one
   * (Q2_K_S, IQ1_S/M, IQ2_XXS/XS/S/M, IQ3_XXS/XS) become writable. A tensor such a mix needs it for
   * must have an entry of the tensor's size (`ERR_INVALID_ARGUMENT` otherwise, before anything is
   * written), and so must every tensor that has an entry at all.
   */
  imatrix?: string | Imatrix;
}

/** The names of {@link QuantizeOptions}, each checked against the interface. */
const quantizeOptionKeys = [
  'threads', 'onProgress', 'signal', 'tensorTypes', 'outputTensorType', 'tokenEmbeddingType', 'pure', 'imatrix',
] as const satisfies readonly (keyof QuantizeOptions)[];

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
 * A mix that needs a tensor type moerun cannot write yet, or that llama.cpp only writes with an
 * importance matrix (the IQ1/IQ2 mixes, IQ3_XXS, IQ3_XS, Q2_K_S) when none is given, is refused
 * with `ERR_UNSUPPORTED` naming what is missing, before anything is written.
 *
 * The work runs on native threads, a slab of rows at a time, so the JS thread stays responsive.
 *
 * @example
 * await quantize('model-f16.gguf', 'model-q4_k_m.gguf', 'Q4_K_M', { onProgress: (f) => bar(f) });
 * // DeepSeek-style dynamic mix: experts at Q2_K, the rest as Q4_K_M decides
 * await quantize('model-f16.gguf', 'model-dyn.gguf', 'Q4_K_M', { tensorTypes: [{ pattern: '_exps', type: 'Q2_K' }] });
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
  const choices = tensorChoices(target, opts);
  const checkAbort = (): void => {
    if (signal?.aborted) throw new MoerunError('ERR_ABORTED', `quantize: aborted while writing ${outPath}; no file was written`);
  };
  const imatrix = await imatrixOption(opts.imatrix);
  checkAbort();

  const info = await readGgufInfo(inPath);
  const file = await open(inPath, 'r');
  try {
    const metadata = await typedMetadata(file, info, inPath);
    const plan = planTensors(info, target, { ...choices, hasImatrix: imatrix !== undefined });
    checkWritable(plan, target, imatrix !== undefined);
    const importance = imatrix ? importanceByTensor(plan, imatrix.matrix) : new Map<string, Float32Array>();
    const fileType = LLAMA_FILE_TYPES[fileTypeOf(target)].id;
    setKey(metadata, 'general.quantization_version', { type: 'u32', value: GGML_QNT_VERSION });
    setKey(metadata, 'general.file_type', { type: 'u32', value: fileType });
    if (imatrix) {
      // llama-quantize records its matrix as these keys (values capped at 127 bytes, as it does)
      setKey(metadata, 'quantize.imatrix.file', { type: 'string', value: truncateUtf8(imatrix.source, 127) });
      const dataset = imatrix.matrix.datasets[0];
      if (dataset !== undefined) setKey(metadata, 'quantize.imatrix.dataset', { type: 'string', value: truncateUtf8(dataset, 127) });
      setKey(metadata, 'quantize.imatrix.entries_count', { type: 'u32', value: imatrix.matrix.entries.size });
      if (imatrix.matrix.chunkCount > 0) setKey(metadata, 'quantize.imatrix.chunks_count', { type: 'u32', value: imatrix.matrix.chunkCount });
    }

    const totalElements = plan.reduce((n, p) => n + elementCount(p.tensor.shape), 0) || 1;
    let doneElements = 0;
    const tensors: GgufTensorInput[] = plan.map((p) => ({
      name: p.tensor.name,
      type: p.type as GgmlTypeName,
      shape: p.tensor.shape,
      data: () =>
        convertTensor(file, p.tensor, p.type, threads, importance.get(p.tensor.name), (rows) => {
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
// Which type each tensor gets: llama.cpp's llama_tensor_get_type (src/llama-quant.cpp), with the
// recipes in quantize/recipes.ts
// ============================================================================================

/** GGML_QNT_VERSION: the quantization format version llama-quantize writes. */
const GGML_QNT_VERSION = 2;

const FLOAT_TYPES = new Set<string>(['F32', 'F16', 'BF16']);
const WRITABLE_TYPES = new Set<string>(quantizeBlockTypes);

/** The llama.cpp file type behind a target. */
function fileTypeOf(target: QuantizeType): LlamaFileType {
  return target in PURE_TARGETS ? PURE_TARGETS[target as keyof typeof PURE_TARGETS] : (target as LlamaFileType);
}

/** The user's per-tensor choices, checked: llama-quantize's --tensor-type, --output-tensor-type, --token-embedding-type, --pure. @internal */
export interface TensorChoices {
  pure: boolean;
  overrides: { regex: RegExp; type: GgmlTypeName }[];
  outputType?: GgmlTypeName;
  tokenEmbdType?: GgmlTypeName;
}

function tensorTypeName(name: string, value: unknown): GgmlTypeName {
  const upper = typeof value === 'string' ? value.toUpperCase() : undefined;
  if (upper !== undefined && upper in GgmlType) return upper as GgmlTypeName;
  throw invalid(`Expected a tensor type name ('Q4_K', 'F16', ...) for ${name} but received ${describe(value)}`);
}

function tensorChoices(target: QuantizeType, opts: Partial<QuantizeOptions>): TensorChoices {
  const pure = opts.pure !== undefined && booleanOption('pure', opts.pure);
  const overrides: TensorChoices['overrides'] = [];
  if (opts.tensorTypes !== undefined) {
    if (!Array.isArray(opts.tensorTypes)) throw invalid(`Expected an array of { pattern, type } for tensorTypes but received ${describe(opts.tensorTypes)}`);
    // llama.cpp only looks at overrides when the file type is quantized
    if (opts.tensorTypes.length > 0 && FLOAT_TYPES.has(target)) throw invalid(`tensorTypes apply to quantized targets only, not ${target}`);
    opts.tensorTypes.forEach((o: unknown, i) => {
      if (typeof o !== 'object' || o === null) throw invalid(`Expected { pattern, type } for tensorTypes[${i}] but received ${describe(o)}`);
      const { pattern, type } = o as Record<string, unknown>;
      nonEmptyString(`tensorTypes[${i}].pattern`, pattern);
      let regex: RegExp;
      try {
        regex = new RegExp((pattern as string).toLowerCase());
      } catch (err) {
        throw invalid(`tensorTypes[${i}].pattern is not a regular expression: ${(err as Error).message}`);
      }
      overrides.push({ regex, type: tensorTypeName(`tensorTypes[${i}].type`, type) });
    });
  }
  return {
    pure,
    overrides,
    outputType: opts.outputTensorType === undefined ? undefined : tensorTypeName('outputTensorType', opts.outputTensorType),
    tokenEmbdType: opts.tokenEmbeddingType === undefined ? undefined : tensorTypeName('tokenEmbeddingType', opts.tokenEmbeddingType),
  };
}

/** A CLI `PATTERN=TYPE` (llama-quantize's --tensor-type syntax: the pattern ends at the first '='). @internal */
export function parseTensorTypeArg(arg: string): TensorTypeOverride {
  const at = arg.indexOf('=');
  if (at <= 0 || at === arg.length - 1) throw invalid(`Expected PATTERN=TYPE for --tensor-type but received ${describe(arg)}`);
  return { pattern: arg.slice(0, at), type: arg.slice(at + 1) as QuantizeTensorType };
}

/** @internal */
export interface PlannedTensor {
  tensor: GgufTensorInfo;
  /** The type to write (the source's own type: copied as is). */
  type: string;
  /** The row length did not fit the wanted type and llama.cpp's fallback applied. */
  fallback: boolean;
  /** llama.cpp writes this type here only with an importance matrix. */
  needsImatrix: boolean;
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

/** A number key, or the first item of a per-layer array (head counts may be either). */
function numberKey(md: Record<string, ReadValue>, key: string): number {
  let v = md[key] as unknown;
  if (Array.isArray(v) || ArrayBuffer.isView(v)) v = (v as ArrayLike<unknown>)[0];
  return typeof v === 'number' ? v : typeof v === 'bigint' ? Number(v) : 0;
}

/** Architectures whose 80-layer size llama.cpp calls LLM_TYPE_70B (llama: only with GQA; jais2: 68 layers). */
function is70B(arch: string, nLayer: number, nHead: number, nHeadKv: number): boolean {
  if (arch === 'llama') return nLayer === 80 && nHead !== nHeadKv;
  if (arch === 'qwen2' || arch === 'deci' || arch === 'olmo') return nLayer === 80;
  return arch === 'jais2' && nLayer === 68;
}

/**
 * The type of every tensor, in llama.cpp's order (llama_model_quantize's preliminary pass):
 * --token-embedding-type / --output-tensor-type first, then the first matching --tensor-type, else
 * the recipe (unless pure), then the fallback for rows that are not whole blocks. @internal
 */
export function planTensors(info: GgufInfo, target: QuantizeType, choices: TensorChoices & { hasImatrix: boolean }): PlannedTensor[] {
  const md = info.metadata;
  const arch = typeof md['general.architecture'] === 'string' ? md['general.architecture'] : '';
  const nLayer = numberKey(md, `${arch}.block_count`);
  const nHead = numberKey(md, `${arch}.attention.head_count`);
  const nHeadKv = md[`${arch}.attention.head_count_kv`] === undefined ? nHead : numberKey(md, `${arch}.attention.head_count_kv`);
  const tensors = [...info.tensors].sort(llamaOrder);
  const model: RecipeModel = {
    arch,
    nExpert: Math.max(1, numberKey(md, `${arch}.expert_count`)),
    nLayer,
    nGqa: nHeadKv === 0 ? 0 : Math.trunc(nHead / nHeadKv),
    is70B: is70B(arch, nLayer, nHead, nHeadKv),
    tied: !tensors.some((t) => t.name === 'output.weight'),
    nAttnV: tensors.filter((t) => isAttnVLike(tensorCategory(t.name))).length,
    hasImatrix: choices.hasImatrix,
  };
  const counters: RecipeCounters = { attnV: 0, ffnDown: 0, ffnGate: 0, ffnUp: 0 };
  const ft = fileTypeOf(target);
  const defaultType: GgmlTypeName = LLAMA_FILE_TYPES[ft].type;
  const pure = choices.pure || target in PURE_TARGETS;

  const planned = tensors.map((tensor): PlannedTensor => {
    const keep = { tensor, type: tensor.type, fallback: false, needsImatrix: false };
    if (!tensorAllowsQuantization(tensor.name, tensor.shape)) return keep;
    const cat = tensorCategory(tensor.name);
    const overridden = choices.overrides.find((o) => o.regex.test(tensor.name));
    // per_layer_token_embd follows --token-embedding-type unless a --tensor-type names it
    const embdOverridden = tensor.name === 'per_layer_token_embd.weight' && overridden !== undefined;
    // (these three as llama.cpp: no fallback; token_embd and output never need an imatrix)
    if (choices.tokenEmbdType && cat === 'token_embd' && !embdOverridden) return { ...keep, type: choices.tokenEmbdType };
    if (choices.outputType && cat === 'output') return { ...keep, type: choices.outputType };
    if (FLOAT_TYPES.has(defaultType)) return { ...keep, type: defaultType };
    const ne0 = tensor.shape[0]!;
    let type: GgmlTypeName = defaultType;
    if (overridden) type = overridden.type;
    else if (!pure) type = recipeType(ft, type, tensor.name, ne0, model, counters, choices.outputType);
    const fitted = fallbackType(type, ne0);
    return { tensor, type: fitted, fallback: fitted !== type, needsImatrix: requiresImatrix(tensor.name, fitted, ft) };
  });
  for (const p of planned) {
    if (p.type !== p.tensor.type && !READABLE_TYPES.has(p.tensor.type)) {
      throw new MoerunError('ERR_UNSUPPORTED', `quantize: tensor '${p.tensor.name}' has type ${p.tensor.type}, which cannot be converted to ${p.type}`);
    }
  }
  return planned;
}

/**
 * Refuses a plan moerun cannot carry out, naming what is missing: a type it has no quantizer for,
 * or, without an importance matrix, a type llama.cpp only writes with one.
 */
function checkWritable(plan: PlannedTensor[], target: QuantizeType, hasImatrix: boolean): void {
  const missing = new Map<string, string>(); // type -> first tensor that needs it
  const imatrix = new Map<string, string>();
  for (const p of plan) {
    if (p.type === p.tensor.type) continue;
    // only a type given for output / token_embd skips the fallback
    const ne0 = p.tensor.shape[0]!;
    if (ne0 % ggmlTypeInfo(p.type as GgmlTypeName).blockSize !== 0) {
      throw new MoerunError('ERR_INVALID_ARGUMENT', `quantize: tensor '${p.tensor.name}' cannot be ${p.type}: its rows of ${ne0} are not whole ${p.type} blocks`);
    }
    if (!WRITABLE_TYPES.has(p.type) && !missing.has(p.type)) missing.set(p.type, p.tensor.name);
    if (p.needsImatrix && !hasImatrix && !imatrix.has(p.type)) imatrix.set(p.type, p.tensor.name);
  }
  const list = (m: Map<string, string>): string => [...m].map(([t, n]) => `${t} (e.g. '${n}')`).join(', ');
  const problems: string[] = [];
  if (missing.size > 0) problems.push(`it needs the ${[...missing.keys()].join(', ')} quantizer${missing.size > 1 ? 's' : ''}, which moerun does not have yet: ${list(missing)}`);
  if (imatrix.size > 0) problems.push(`llama.cpp writes ${list(imatrix)} only with an importance matrix: pass one (imatrix option, --imatrix FILE; moerun imatrix computes one)`);
  if (problems.length > 0) throw new MoerunError('ERR_UNSUPPORTED', `quantize: cannot write ${target}: ${problems.join('; and ')}`);
}

/** Source types the quantizer can decode: what it writes, and the types moerun reads but does not write yet. */
const READABLE_TYPES = new Set<string>([
  ...quantizeBlockTypes,
  'TQ1_0', 'TQ2_0', 'MXFP4',
]);

// ============================================================================================
// The importance matrix: llama-quantize's --imatrix (tools/quantize/quantize.cpp load_imatrix) and
// how llama_model_quantize hands each tensor its part
// ============================================================================================

/** The imatrix option, loaded and checked as llama-quantize checks its file. */
async function imatrixOption(value: unknown): Promise<{ matrix: Imatrix; source: string } | undefined> {
  if (value === undefined) return undefined;
  let matrix: Imatrix;
  let source: string;
  if (typeof value === 'string') {
    nonEmptyString('imatrix', value);
    matrix = await readImatrix(value);
    source = value;
  } else if (typeof value === 'object' && value !== null && (value as Imatrix).entries instanceof Map) {
    matrix = value as Imatrix;
    source = matrix.datasets[0] ?? '';
  } else {
    throw invalid(`Expected a file path or an Imatrix for imatrix but received ${describe(value)}`);
  }
  if (matrix.format === 'gguf' && !matrix.hasMetadata) {
    throw new MoerunError('ERR_BAD_FORMAT', 'quantize: the importance matrix lacks its imatrix.datasets / imatrix.chunk_count / imatrix.chunk_size keys (llama-quantize refuses it too)');
  }
  if (matrix.entries.size === 0) throw invalid('quantize: the importance matrix has no entries');
  for (const [name, e] of matrix.entries) {
    if (!e.sums.every(Number.isFinite)) throw invalid(`quantize: the importance matrix has non-finite values for '${name}'`);
  }
  return { matrix, source };
}

/**
 * Each converted tensor's importance vector (ne0 values per expert), as llama_model_quantize looks
 * them up: by tensor name, used when its size is ne0 × n_expert. A size that differs is an error
 * (llama.cpp throws, except for token_embd, which then goes without); a tensor whose type needs a
 * matrix and has none is an error too. Both before anything is written.
 */
function importanceByTensor(plan: PlannedTensor[], matrix: Imatrix): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const p of plan) {
    if (p.type === p.tensor.type) continue;
    const values = importanceOf(matrix, p.tensor.name);
    const want = (p.tensor.shape[0] ?? 1) * (p.tensor.shape[2] ?? 1);
    if (values && values.length === want) out.set(p.tensor.name, values);
    else if (values && tensorCategory(p.tensor.name) !== 'token_embd') {
      throw invalid(`quantize: the importance matrix has ${values.length} values for '${p.tensor.name}', which needs ${want}`);
    }
    if (!out.has(p.tensor.name) && p.needsImatrix) {
      throw invalid(`quantize: the importance matrix has no entry for '${p.tensor.name}', which llama.cpp quantizes to ${p.type} only with one`);
    }
  }
  return out;
}

/** At most `max` bytes of UTF-8 (llama-quantize copies its strings into 128-byte fields). */
function truncateUtf8(s: string, max: number): string {
  const b = Buffer.from(s, 'utf8');
  return b.length <= max ? s : b.subarray(0, max).toString('utf8').replace(/\uFFFD$/, '');
}

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
  importance: Float32Array | undefined,
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
      else if (importance) {
        const rowsPerMatrix = tensor.shape[1] ?? 1; // one vector per expert: ne1 rows each
        yield await callNative(() => bin.quantize(type, floats, ne0, threads, importance, rowsPerMatrix, r));
      } else yield await callNative(() => bin.quantize(type, floats, ne0, threads));
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
