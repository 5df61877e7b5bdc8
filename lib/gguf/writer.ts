// GGUF writer: the one writer the project uses (make-model, the quantizer, model scripts).
//
// File layout (GGUF v3, little endian):
//   magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv
//   n_kv x (string key, u32 value type, value)
//   n_tensors x (string name, u32 n_dims, n_dims x u64 ne (ne0 first), u32 ggml type, u64 offset)
//   zero padding to `alignment`
//   tensor data, each tensor at `offset` (relative to the data start, a multiple of `alignment`),
//   each followed by zero padding to `alignment`.
// A string is a u64 byte length and UTF-8 bytes, no NUL. An array value is a u32 element type, a
// u64 count and the elements; an element may itself be an array (nested arrays; llama.cpp's own
// reader refuses those, so model files should not use them).
//
// The writer never quantizes: tensor data arrives already encoded, and its byte length is checked
// against the shape and the type's block layout. Data may be produced lazily, chunk by chunk, so a
// file larger than memory can be written. Writes are atomic: `<path>.tmp-<pid>` then rename.

import { closeSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';

import {
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  GGUF_MAX_DIMS,
  GGUF_MAX_TENSOR_NAME,
  GGUF_VERSION,
  GgufValueType,
  describe,
  ggmlTensorByteSize,
  ggmlTypeInfo,
  type GgmlTypeName,
  type GgufValueTypeName,
} from './constants.js';

export {
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  GGUF_VERSION,
  GgmlType,
  GgufValueType,
  ggmlTensorByteSize,
  ggmlTypeInfo,
  type GgmlTypeInfo,
  type GgmlTypeName,
  type GgufValueTypeName,
} from './constants.js';

// ============================================================================================
// Public types
// ============================================================================================

/** A numeric metadata type name. */
export type GgufNumberTypeName = 'u8' | 'i8' | 'u16' | 'i16' | 'u32' | 'i32' | 'f32' | 'u64' | 'i64' | 'f64';

/** A metadata value with its GGUF type spelled out, e.g. `{ type: 'u32', value: 5 }`. */
export type GgufTypedValue =
  | { readonly type: GgufNumberTypeName; readonly value: number | bigint }
  | { readonly type: 'bool'; readonly value: boolean }
  | { readonly type: 'string'; readonly value: string }
  | {
      readonly type: 'array';
      /** Element type; `'array'` for nested arrays, whose elements are themselves array values. */
      readonly itemType: GgufValueTypeName;
      readonly value: readonly GgufValue[] | ArrayLike<number | bigint>;
    };

/**
 * A metadata value. Plain values get an inferred type:
 * - `boolean` → bool, `string` → string, `bigint` → u64 (i64 if negative);
 * - `number`: an integer in [0, 2^32) → u32, in [-2^31, 0) → i32, another safe integer → i64,
 *   anything else → f32. Pass `{ type: 'f32', value: 10000 }` for a whole-valued float;
 * - a typed array → an array of its element type (Float32Array → f32, Int32Array → i32, ...);
 * - a plain array → an array whose element type is inferred from all elements together (numbers:
 *   u32 if all fit, else i32, else i64, else f32 if any is fractional); an array of arrays is a
 *   nested array. An empty plain array needs an explicit `{ type: 'array', itemType, value: [] }`.
 */
export type GgufValue =
  | number
  | bigint
  | string
  | boolean
  | GgufTypedValue
  | readonly GgufValue[]
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array;

/** Metadata in file order: a record (insertion order), a Map, or key/value pairs. */
export type GgufMetadataInput =
  | Readonly<Record<string, GgufValue>>
  | ReadonlyMap<string, GgufValue>
  | Iterable<readonly [string, GgufValue]>;

/** One chunk of tensor bytes (any view; a Float32Array is taken as its raw little-endian bytes). */
export type GgufChunk = ArrayBufferView;

/**
 * A tensor's encoded bytes: one buffer, an iterable or async iterable of chunks, or a function
 * called when the writer reaches this tensor that returns any of those (so data can be produced
 * lazily, in file order). The writer copies or writes each chunk before asking for the next, so a
 * producer may reuse its buffer between chunks.
 */
export type GgufTensorData =
  | GgufChunk
  | Iterable<GgufChunk>
  | AsyncIterable<GgufChunk>
  | (() => GgufChunk | Iterable<GgufChunk> | AsyncIterable<GgufChunk> | Promise<GgufChunk>);

/** A tensor to write. */
export interface GgufTensorInput {
  /** e.g. `blk.0.attn_q.weight`; at most 63 bytes of UTF-8. */
  readonly name: string;
  /** GGUF tensor type, by name (`'Q4_K'`) or id (`12`). */
  readonly type: GgmlTypeName | number;
  /** Dimensions, ne0 (the contiguous one) first; 1 to 4 of them. */
  readonly shape: readonly number[];
  /** Exactly `ggmlTensorByteSize(type, shape)` bytes. */
  readonly data: GgufTensorData;
}

/** What to write. */
export interface GgufWriteSpec {
  /** Key/value metadata, written in this order. */
  readonly metadata?: GgufMetadataInput;
  /** Tensors, written in this order. */
  readonly tensors?: readonly GgufTensorInput[];
  /**
   * Data alignment in bytes, a power of two (default: `general.alignment` from the metadata, else
   * 32). A value other than 32 is also written as `general.alignment` (u32) unless present.
   */
  readonly alignment?: number;
}

/** Where everything landed in the written file. */
export interface GgufWriteResult {
  /** Total file size in bytes. */
  readonly byteSize: number;
  /** File offset of the data section (a multiple of `alignment`). */
  readonly dataOffset: number;
  readonly alignment: number;
  /** Per tensor, in file order: `offset` is relative to `dataOffset`. */
  readonly tensors: readonly { readonly name: string; readonly offset: number; readonly byteSize: number }[];
}

// ============================================================================================
// Entry points
// ============================================================================================

/**
 * Write a GGUF v3 file at `path`, streaming tensor data in order. The file appears atomically
 * (written to `<path>.tmp-<pid>`, then renamed); on any error the temp file is removed and the
 * error rethrown, and `path` is left untouched.
 */
export async function writeGguf(path: string, spec: GgufWriteSpec): Promise<GgufWriteResult> {
  const plan = planGguf(spec);
  const tmp = `${path}.tmp-${process.pid}`;
  const file = await open(tmp, 'w');
  try {
    const sink = new ChunkSink(async (bytes) => {
      let done = 0;
      while (done < bytes.length) {
        const { bytesWritten } = await file.write(bytes, done, bytes.length - done);
        done += bytesWritten;
      }
    });
    await sink.write(plan.header);
    for (let i = 0; i < plan.tensors.length; i++) {
      const tensor = plan.tensors[i];
      const counter = new ByteCounter(tensor);
      let source = spec.tensors![i].data;
      if (typeof source === 'function') source = await source();
      if (ArrayBuffer.isView(source)) {
        await sink.write(counter.take(source));
      } else if (isAsyncIterable(source)) {
        for await (const chunk of source) await sink.write(counter.take(chunk));
      } else if (isIterable(source)) {
        for (const chunk of source) await sink.write(counter.take(chunk));
      } else {
        throw badData(tensor.name, source);
      }
      counter.finish();
      await sink.write(zeros(tensor.padding));
    }
    await sink.flush();
    await file.close();
  } catch (err) {
    await file.close().catch(() => {});
    await rm(tmp, { force: true });
    throw err;
  }
  try {
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  return plan.result;
}

/**
 * Synchronous {@link writeGguf}: the same file, atomically. Tensor data must be synchronous
 * (buffers, iterables, or functions returning those).
 */
export function writeGgufSync(path: string, spec: GgufWriteSpec): GgufWriteResult {
  const plan = planGguf(spec);
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  try {
    const sink = new SyncChunkSink((bytes) => {
      let done = 0;
      while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done);
    });
    for (const piece of syncPieces(plan, spec)) sink.write(piece);
    sink.flush();
    closeSync(fd);
  } catch (err) {
    try {
      closeSync(fd);
    } catch {
      // already closed
    }
    rmSync(tmp, { force: true });
    throw err;
  }
  try {
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  return plan.result;
}

/** The bytes of a GGUF file, in memory (for tests and small files). Data must be synchronous. */
export function encodeGguf(spec: GgufWriteSpec): Uint8Array {
  const plan = planGguf(spec);
  const out = new Uint8Array(plan.result.byteSize);
  let at = 0;
  for (const piece of syncPieces(plan, spec)) {
    out.set(piece, at);
    at += piece.length;
  }
  return out;
}

/**
 * Everything before a GGUF file's data section (header, metadata, tensor infos, padding) and where
 * each tensor's data lands, without reading any tensor data: for files whose data another program
 * writes (bench/peer's model expander, on a machine without Node). `layout.dataOffset` equals
 * `header.length`; each tensor's data is followed by zeros up to the alignment.
 */
export function encodeGgufHeader(spec: GgufWriteSpec): { header: Uint8Array; layout: GgufWriteResult } {
  const plan = planGguf(spec);
  return { header: plan.header, layout: plan.result };
}

// ============================================================================================
// Float encoders for F32 / F16 / BF16 tensor data
// ============================================================================================

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/**
 * IEEE half-precision bits of `value`, rounded to nearest, ties to even (as F16C and ggml do).
 * Overflow gives ±infinity, NaN stays a quiet NaN, tiny values become subnormals or ±0.
 */
export function float32ToFloat16Bits(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 127 + 15; // biased half exponent
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal half: value = M * 2^-24 with M = (1.mant) * 2^(exp - 103) = m' >> (14 - e).
    if (e < -10) return sign;
    const m = mant | 0x800000;
    const shift = 14 - e;
    let h = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1) !== 0)) h++;
    return sign | h; // h may reach 0x400, the smallest normal: the bits carry correctly
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) !== 0)) h++; // a carry into the exponent is right, up to inf
  return sign | h;
}

/** The float a half-precision bit pattern stands for (exact). */
export function float16BitsToFloat32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >>> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant !== 0 ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** bfloat16 bits of `value`, rounded to nearest, ties to even (NaN stays a quiet NaN). */
export function float32ToBFloat16Bits(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0];
  if ((x & 0x7fffffff) > 0x7f800000) return ((x >>> 16) | 64) & 0xffff;
  return ((x + (0x7fff + ((x >>> 16) & 1))) >>> 16) & 0xffff;
}

/** F32 tensor bytes (little endian) for `values`. */
export function encodeF32(values: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(values.length * 4);
  const view = new DataView(out.buffer);
  for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i], true);
  return out;
}

/** F16 tensor bytes (little endian, round to nearest even) for `values`. */
export function encodeF16(values: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(values.length * 2);
  const view = new DataView(out.buffer);
  for (let i = 0; i < values.length; i++) view.setUint16(i * 2, float32ToFloat16Bits(values[i]), true);
  return out;
}

/** BF16 tensor bytes (little endian, round to nearest even) for `values`. */
export function encodeBF16(values: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(values.length * 2);
  const view = new DataView(out.buffer);
  for (let i = 0; i < values.length; i++) view.setUint16(i * 2, float32ToBFloat16Bits(values[i]), true);
  return out;
}

// ============================================================================================
// Planning: validate everything and encode the header before any byte is written
// ============================================================================================

interface PlannedTensor {
  readonly name: string;
  readonly byteSize: number;
  readonly padding: number;
}

interface Plan {
  readonly header: Uint8Array; // everything before the data section, padding included
  readonly tensors: readonly PlannedTensor[];
  readonly result: GgufWriteResult;
}

const SPEC_KEYS = new Set(['metadata', 'tensors', 'alignment']);
const ALIGNMENT_KEY = 'general.alignment';

function planGguf(spec: GgufWriteSpec): Plan {
  if (spec === null || typeof spec !== 'object') {
    throw new TypeError(`Expected a GGUF write spec object but received ${describe(spec)}`);
  }
  for (const key of Object.keys(spec)) {
    if (!SPEC_KEYS.has(key)) {
      throw new TypeError(`Unknown GGUF write option '${key}' (expected one of: ${[...SPEC_KEYS].join(', ')})`);
    }
  }
  const entries = metadataEntries(spec.metadata);
  const tensors = spec.tensors ?? [];
  if (!Array.isArray(tensors)) throw new TypeError(`Expected an array for tensors but received ${describe(tensors)}`);

  // ---- alignment: from the option, the metadata, or the default ----
  const fromMetadata = entries.find(([key]) => key === ALIGNMENT_KEY);
  let alignment = spec.alignment ?? GGUF_DEFAULT_ALIGNMENT;
  if (fromMetadata) {
    const v = normalize(fromMetadata[1], ALIGNMENT_KEY);
    if (v.type !== 'u32') {
      throw new TypeError(`Expected ${ALIGNMENT_KEY} to be a u32 but it is a ${v.type}`);
    }
    if (spec.alignment !== undefined && spec.alignment !== v.value) {
      throw new RangeError(
        `alignment option ${spec.alignment} disagrees with metadata ${ALIGNMENT_KEY} = ${String(v.value)}`,
      );
    }
    alignment = Number(v.value);
  } else if (alignment !== GGUF_DEFAULT_ALIGNMENT) {
    entries.push([ALIGNMENT_KEY, { type: 'u32', value: alignment }]);
  }
  if (!Number.isSafeInteger(alignment) || alignment <= 0 || (alignment & (alignment - 1)) !== 0 || alignment > 2 ** 30) {
    throw new RangeError(`Expected a power of two for alignment but received ${describe(alignment)}`);
  }

  // ---- header ----
  const b = new ByteBuilder();
  b.u32(GGUF_MAGIC);
  b.u32(GGUF_VERSION);
  b.u64(BigInt(tensors.length));
  b.u64(BigInt(entries.length));
  const seenKeys = new Set<string>();
  for (const [key, value] of entries) {
    if (typeof key !== 'string' || key.length === 0) {
      throw new TypeError(`Expected a non-empty string for a metadata key but received ${describe(key)}`);
    }
    if (seenKeys.has(key)) throw new TypeError(`Duplicate metadata key '${key}'`);
    seenKeys.add(key);
    b.string(key);
    const v = normalize(value, key);
    b.u32(GgufValueType[v.type]);
    writeValueBody(b, v, key);
  }

  const planned: PlannedTensor[] = [];
  const placed: { name: string; offset: number; byteSize: number }[] = [];
  const seenNames = new Set<string>();
  let offset = 0;
  for (const t of tensors) {
    if (t === null || typeof t !== 'object') throw new TypeError(`Expected a tensor object but received ${describe(t)}`);
    const { name, type, shape } = t;
    if (typeof name !== 'string' || name.length === 0) {
      throw new TypeError(`Expected a non-empty string for a tensor name but received ${describe(name)}`);
    }
    if (Buffer.byteLength(name, 'utf8') > GGUF_MAX_TENSOR_NAME) {
      throw new RangeError(`Tensor name '${name}' is longer than ${GGUF_MAX_TENSOR_NAME} bytes`);
    }
    if (seenNames.has(name)) throw new TypeError(`Duplicate tensor name '${name}'`);
    seenNames.add(name);
    if (!Array.isArray(shape) || shape.length < 1 || shape.length > GGUF_MAX_DIMS) {
      throw new RangeError(`Tensor '${name}': expected 1 to ${GGUF_MAX_DIMS} dimensions but received ${describe(shape)}`);
    }
    let info;
    let byteSize;
    try {
      info = ggmlTypeInfo(type);
      byteSize = ggmlTensorByteSize(info.id, shape);
    } catch (err) {
      throw new (err instanceof RangeError ? RangeError : TypeError)(`Tensor '${name}': ${(err as Error).message}`);
    }
    b.string(name);
    b.u32(shape.length);
    for (const ne of shape) b.u64(BigInt(ne));
    b.u32(info.id);
    b.u64(BigInt(offset));
    const padding = padTo(byteSize, alignment);
    planned.push({ name, byteSize, padding });
    placed.push({ name, offset, byteSize });
    offset += byteSize + padding;
  }
  b.bytes(zeros(padTo(b.length, alignment)));
  const header = b.finish();

  return {
    header,
    tensors: planned,
    result: { byteSize: header.length + offset, dataOffset: header.length, alignment, tensors: placed },
  };
}

function metadataEntries(metadata: GgufMetadataInput | undefined): [string, GgufValue][] {
  if (metadata === undefined) return [];
  if (metadata === null || typeof metadata !== 'object') {
    throw new TypeError(`Expected an object, Map or key/value pairs for metadata but received ${describe(metadata)}`);
  }
  if (metadata instanceof Map) return [...metadata.entries()];
  if (isIterable(metadata)) return [...(metadata as Iterable<readonly [string, GgufValue]>)].map(([k, v]) => [k, v]);
  return Object.entries(metadata as Record<string, GgufValue>);
}

// ============================================================================================
// Metadata values: type inference and encoding
// ============================================================================================

type Scalar = number | bigint | boolean | string;
// A value with its type settled; array elements stay raw until encoded.
type Normalized =
  | { type: Exclude<GgufValueTypeName, 'array'>; value: Scalar }
  | { type: 'array'; itemType: GgufValueTypeName; value: ArrayLike<unknown> };

const TYPED_ARRAY_ITEM: [new (...a: never[]) => ArrayBufferView, GgufValueTypeName][] = [
  [Float32Array, 'f32'],
  [Float64Array, 'f64'],
  [Int8Array, 'i8'],
  [Uint8Array, 'u8'],
  [Int16Array, 'i16'],
  [Uint16Array, 'u16'],
  [Int32Array, 'i32'],
  [Uint32Array, 'u32'],
  [BigInt64Array, 'i64'],
  [BigUint64Array, 'u64'],
];

function normalize(value: unknown, where: string): Normalized {
  switch (typeof value) {
    case 'boolean':
      return { type: 'bool', value };
    case 'string':
      return { type: 'string', value };
    case 'bigint':
      return { type: value < 0n ? 'i64' : 'u64', value };
    case 'number':
      return { type: inferNumberType([value]), value };
    case 'object': {
      if (value === null) break;
      if (ArrayBuffer.isView(value)) {
        const item = TYPED_ARRAY_ITEM.find(([ctor]) => value instanceof ctor);
        if (!item) break;
        return { type: 'array', itemType: item[1], value: value as unknown as ArrayLike<unknown> };
      }
      if (Array.isArray(value)) return { type: 'array', itemType: inferItemType(value, where), value };
      return normalizeTyped(value as Record<string, unknown>, where);
    }
  }
  throw new TypeError(`Metadata '${where}': cannot store ${describe(value)} in GGUF`);
}

function normalizeTyped(obj: Record<string, unknown>, where: string): Normalized {
  const type = obj.type;
  if (typeof type !== 'string' || !(type in GgufValueType) || !('value' in obj)) {
    throw new TypeError(
      `Metadata '${where}': expected a value or { type, value } with type one of ${Object.keys(GgufValueType).join(', ')} but received ${describe(obj)}`,
    );
  }
  for (const key of Object.keys(obj)) {
    if (key !== 'type' && key !== 'value' && !(type === 'array' && key === 'itemType')) {
      throw new TypeError(`Metadata '${where}': unknown field '${key}' in a typed ${type} value`);
    }
  }
  if (type === 'array') {
    const itemType = obj.itemType;
    if (typeof itemType !== 'string' || !(itemType in GgufValueType)) {
      throw new TypeError(`Metadata '${where}': expected itemType to be a GGUF value type but received ${describe(itemType)}`);
    }
    const items = obj.value;
    if (!Array.isArray(items) && !ArrayBuffer.isView(items)) {
      throw new TypeError(`Metadata '${where}': expected an array for an array value but received ${describe(items)}`);
    }
    return { type: 'array', itemType: itemType as GgufValueTypeName, value: items as unknown as ArrayLike<unknown> };
  }
  checkScalar(type as Exclude<GgufValueTypeName, 'array'>, obj.value, where);
  return { type, value: obj.value } as Normalized;
}

const INT_RANGES: Record<string, readonly [bigint, bigint]> = {
  u8: [0n, 0xffn],
  i8: [-0x80n, 0x7fn],
  u16: [0n, 0xffffn],
  i16: [-0x8000n, 0x7fffn],
  u32: [0n, 0xffffffffn],
  i32: [-0x80000000n, 0x7fffffffn],
  u64: [0n, 0xffffffffffffffffn],
  i64: [-0x8000000000000000n, 0x7fffffffffffffffn],
};

function checkScalar(type: Exclude<GgufValueTypeName, 'array'>, value: unknown, where: string): void {
  const fail = (): never => {
    throw new TypeError(`Metadata '${where}': expected a ${type} but received ${describe(value)}`);
  };
  if (type === 'bool') {
    if (typeof value !== 'boolean') fail();
  } else if (type === 'string') {
    if (typeof value !== 'string') fail();
  } else if (type === 'f32' || type === 'f64') {
    if (typeof value !== 'number') fail();
  } else {
    const [lo, hi] = INT_RANGES[type];
    let v: bigint;
    if (typeof value === 'bigint') v = value;
    else if (typeof value === 'number' && Number.isSafeInteger(value)) v = BigInt(value);
    else return fail();
    if (v < lo || v > hi) fail();
  }
}

function inferNumberType(values: readonly number[]): GgufNumberTypeName {
  if (values.some((v) => !Number.isInteger(v))) return 'f32';
  if (values.every((v) => v >= 0 && v <= 0xffffffff)) return 'u32';
  if (values.every((v) => v >= -0x80000000 && v <= 0x7fffffff)) return 'i32';
  if (values.every((v) => Number.isSafeInteger(v))) return 'i64';
  return 'f32';
}

function inferItemType(items: readonly unknown[], where: string): GgufValueTypeName {
  if (items.length === 0) {
    throw new TypeError(
      `Metadata '${where}': cannot infer the element type of an empty array; pass { type: 'array', itemType, value: [] }`,
    );
  }
  const kinds = new Set(items.map((v) => (Array.isArray(v) || ArrayBuffer.isView(v) ? 'array' : typeof v)));
  if (kinds.size === 1) {
    const kind = [...kinds][0];
    if (kind === 'string') return 'string';
    if (kind === 'boolean') return 'bool';
    if (kind === 'number') return inferNumberType(items as number[]);
    if (kind === 'bigint') return (items as bigint[]).some((v) => v < 0n) ? 'i64' : 'u64';
    if (kind === 'array') return 'array';
    if (kind === 'object') {
      // All typed values of one type, e.g. [{ type: 'u8', value: 1 }, ...], or typed arrays.
      const types = new Set(items.map((v) => (v as { type?: unknown } | null)?.type));
      if (types.size === 1) {
        const t = [...types][0];
        if (typeof t === 'string' && t in GgufValueType) return t as GgufValueTypeName;
      }
    }
  }
  throw new TypeError(
    `Metadata '${where}': cannot infer one element type for an array of mixed values; pass { type: 'array', itemType, value }`,
  );
}

function writeValueBody(b: ByteBuilder, v: Normalized, where: string): void {
  if (v.type !== 'array') {
    writeScalar(b, v.type, v.value);
    return;
  }
  const items = v.value;
  b.u32(GgufValueType[v.itemType]);
  b.u64(BigInt(items.length));
  for (let i = 0; i < items.length; i++) {
    const item = items[i];
    const at = `${where}[${i}]`;
    if (v.itemType === 'array') {
      const inner = normalize(item, at);
      if (inner.type !== 'array') throw new TypeError(`Metadata '${at}': expected an array element but received ${describe(item)}`);
      writeValueBody(b, inner, at);
      continue;
    }
    // Elements may be raw or typed values of exactly the array's item type.
    let raw = item;
    if (item !== null && typeof item === 'object' && !ArrayBuffer.isView(item) && !Array.isArray(item)) {
      const typed = normalizeTyped(item as Record<string, unknown>, at);
      if (typed.type !== v.itemType) {
        throw new TypeError(`Metadata '${at}': a ${typed.type} element in an array of ${v.itemType}`);
      }
      raw = typed.value;
    }
    checkScalar(v.itemType, raw, at);
    writeScalar(b, v.itemType, raw as Scalar);
  }
}

function writeScalar(b: ByteBuilder, type: Exclude<GgufValueTypeName, 'array'>, value: Scalar): void {
  switch (type) {
    case 'u8': return b.u8(Number(value));
    case 'i8': return b.i8(Number(value));
    case 'u16': return b.u16(Number(value));
    case 'i16': return b.i16(Number(value));
    case 'u32': return b.u32(Number(value));
    case 'i32': return b.i32(Number(value));
    case 'f32': return b.f32(value as number);
    case 'bool': return b.u8(value ? 1 : 0);
    case 'string': return b.string(value as string);
    case 'u64': return b.u64(BigInt(value as number | bigint));
    case 'i64': return b.i64(BigInt(value as number | bigint));
    case 'f64': return b.f64(value as number);
  }
}

// ============================================================================================
// Tensor data plumbing
// ============================================================================================

/** Counts one tensor's bytes as they stream past, failing as soon as they overrun. */
class ByteCounter {
  private seen = 0;
  constructor(private readonly tensor: PlannedTensor) {}

  take(chunk: unknown): Uint8Array {
    if (!ArrayBuffer.isView(chunk)) {
      throw new TypeError(`Tensor '${this.tensor.name}': expected data chunks to be typed arrays or Buffers but received ${describe(chunk)}`);
    }
    const bytes = new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    this.seen += bytes.length;
    if (this.seen > this.tensor.byteSize) {
      throw new RangeError(`Tensor '${this.tensor.name}': data has more than the ${this.tensor.byteSize} bytes its type and shape need`);
    }
    return bytes;
  }

  finish(): void {
    if (this.seen !== this.tensor.byteSize) {
      throw new RangeError(
        `Tensor '${this.tensor.name}': data has ${this.seen} bytes but its type and shape need ${this.tensor.byteSize}`,
      );
    }
  }
}

const SINK_BUFFER = 1 << 20;

/** Coalesces small chunks into ~1 MiB writes; large chunks go straight through. */
class ChunkSink {
  private readonly buf = new Uint8Array(SINK_BUFFER);
  private used = 0;
  constructor(private readonly out: (bytes: Uint8Array) => Promise<void>) {}

  async write(bytes: Uint8Array): Promise<void> {
    if (this.used + bytes.length > SINK_BUFFER) await this.flush();
    if (bytes.length >= SINK_BUFFER) return this.out(bytes);
    this.buf.set(bytes, this.used);
    this.used += bytes.length;
  }

  async flush(): Promise<void> {
    if (this.used > 0) await this.out(this.buf.subarray(0, this.used));
    this.used = 0;
  }
}

class SyncChunkSink {
  private readonly buf = new Uint8Array(SINK_BUFFER);
  private used = 0;
  constructor(private readonly out: (bytes: Uint8Array) => void) {}

  write(bytes: Uint8Array): void {
    if (this.used + bytes.length > SINK_BUFFER) this.flush();
    if (bytes.length >= SINK_BUFFER) return this.out(bytes);
    this.buf.set(bytes, this.used);
    this.used += bytes.length;
  }

  flush(): void {
    if (this.used > 0) this.out(this.buf.subarray(0, this.used));
    this.used = 0;
  }
}

/** Header, then each tensor's bytes and padding, for the synchronous paths. */
function* syncPieces(plan: Plan, spec: GgufWriteSpec): Generator<Uint8Array> {
  yield plan.header;
  for (let i = 0; i < plan.tensors.length; i++) {
    const tensor = plan.tensors[i];
    const counter = new ByteCounter(tensor);
    let source: unknown = spec.tensors![i].data;
    if (typeof source === 'function') source = (source as () => unknown)();
    if (ArrayBuffer.isView(source)) {
      yield counter.take(source);
    } else if (isIterable(source)) {
      for (const chunk of source) yield counter.take(chunk);
    } else if (isAsyncIterable(source) || source instanceof Promise) {
      throw new TypeError(`Tensor '${tensor.name}': asynchronous data needs writeGguf, not the synchronous writers`);
    } else {
      throw badData(tensor.name, source);
    }
    counter.finish();
    yield zeros(tensor.padding);
  }
}

function badData(name: string, source: unknown): TypeError {
  return new TypeError(
    `Tensor '${name}': expected data to be a typed array, an iterable or async iterable of chunks, or a function returning one, but received ${describe(source)}`,
  );
}

function isIterable(x: unknown): x is Iterable<unknown> {
  return x !== null && typeof x === 'object' && typeof (x as Iterable<unknown>)[Symbol.iterator] === 'function';
}

function isAsyncIterable(x: unknown): x is AsyncIterable<unknown> {
  return x !== null && typeof x === 'object' && typeof (x as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function';
}

function padTo(n: number, alignment: number): number {
  return (alignment - (n % alignment)) % alignment;
}

const ZEROS = new Uint8Array(4096);
function zeros(n: number): Uint8Array {
  return n <= ZEROS.length ? ZEROS.subarray(0, n) : new Uint8Array(n);
}

// ============================================================================================
// Little-endian byte builder for the header
// ============================================================================================

class ByteBuilder {
  private buf = new Uint8Array(4096);
  private view = new DataView(this.buf.buffer);
  length = 0;

  private reserve(n: number): number {
    const at = this.length;
    if (at + n > this.buf.length) {
      const next = new Uint8Array(Math.max(this.buf.length * 2, at + n));
      next.set(this.buf.subarray(0, at));
      this.buf = next;
      this.view = new DataView(next.buffer);
    }
    this.length += n;
    return at;
  }

  u8(v: number): void {
    const at = this.reserve(1); // before reading this.view: reserve may replace it
    this.view.setUint8(at, v);
  }
  i8(v: number): void {
    const at = this.reserve(1);
    this.view.setInt8(at, v);
  }
  u16(v: number): void {
    const at = this.reserve(2);
    this.view.setUint16(at, v, true);
  }
  i16(v: number): void {
    const at = this.reserve(2);
    this.view.setInt16(at, v, true);
  }
  u32(v: number): void {
    const at = this.reserve(4);
    this.view.setUint32(at, v, true);
  }
  i32(v: number): void {
    const at = this.reserve(4);
    this.view.setInt32(at, v, true);
  }
  f32(v: number): void {
    const at = this.reserve(4);
    this.view.setFloat32(at, v, true);
  }
  u64(v: bigint): void {
    const at = this.reserve(8);
    this.view.setBigUint64(at, v, true);
  }
  i64(v: bigint): void {
    const at = this.reserve(8);
    this.view.setBigInt64(at, v, true);
  }
  f64(v: number): void {
    const at = this.reserve(8);
    this.view.setFloat64(at, v, true);
  }

  bytes(b: Uint8Array): void {
    const at = this.reserve(b.length);
    this.buf.set(b, at);
  }

  string(s: string): void {
    const utf8 = Buffer.from(s, 'utf8');
    this.u64(BigInt(utf8.length));
    this.bytes(utf8);
  }

  finish(): Uint8Array {
    return this.buf.slice(0, this.length);
  }
}
