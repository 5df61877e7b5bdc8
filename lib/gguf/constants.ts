// GGUF format constants: value type ids, tensor (ggml) type ids and their block layouts.
//
// Ids follow GGUF (= ggml's `ggml_type` / `gguf_type`), so they can be written to and read from
// files directly. Block sizes and byte sizes match llama.cpp's GGML_QUANT_SIZES.

/** The 4-byte magic every GGUF file starts with ("GGUF", read as a little-endian u32). */
export const GGUF_MAGIC = 0x46554747;
/** The GGUF version this package writes. */
export const GGUF_VERSION = 3;
/** The data alignment llama.cpp assumes when a file has no `general.alignment` key. */
export const GGUF_DEFAULT_ALIGNMENT = 32;
/** Longest tensor name llama.cpp accepts (GGML_MAX_NAME - 1 for the terminating NUL). */
export const GGUF_MAX_TENSOR_NAME = 63;
/** Most dimensions a tensor may have (GGML_MAX_DIMS). */
export const GGUF_MAX_DIMS = 4;

/** Metadata value type ids (`gguf_type`). */
export const GgufValueType = {
  u8: 0,
  i8: 1,
  u16: 2,
  i16: 3,
  u32: 4,
  i32: 5,
  f32: 6,
  bool: 7,
  string: 8,
  array: 9,
  u64: 10,
  i64: 11,
  f64: 12,
} as const;

/** Name of a metadata value type: `'u8'`, ..., `'f64'`, `'bool'`, `'string'`, `'array'`. */
export type GgufValueTypeName = keyof typeof GgufValueType;

/** Layout of one tensor type: `blockSize` elements are stored in `typeSize` bytes. */
export interface GgmlTypeInfo {
  readonly id: number;
  readonly name: string;
  readonly blockSize: number;
  readonly typeSize: number;
}

const QK_K = 256;

/** Every tensor type id GGUF defines, by name. */
export const GgmlType = {
  F32: 0,
  F16: 1,
  Q4_0: 2,
  Q4_1: 3,
  Q5_0: 6,
  Q5_1: 7,
  Q8_0: 8,
  Q8_1: 9,
  Q2_K: 10,
  Q3_K: 11,
  Q4_K: 12,
  Q5_K: 13,
  Q6_K: 14,
  Q8_K: 15,
  IQ2_XXS: 16,
  IQ2_XS: 17,
  IQ3_XXS: 18,
  IQ1_S: 19,
  IQ4_NL: 20,
  IQ3_S: 21,
  IQ2_S: 22,
  IQ4_XS: 23,
  I8: 24,
  I16: 25,
  I32: 26,
  I64: 27,
  F64: 28,
  IQ1_M: 29,
  BF16: 30,
  TQ1_0: 34,
  TQ2_0: 35,
  MXFP4: 39,
} as const;

/** Name of a tensor type: `'F32'`, `'Q4_K'`, ... */
export type GgmlTypeName = keyof typeof GgmlType;

// [blockSize, typeSize] per type, as in llama.cpp's GGML_QUANT_SIZES.
const SIZES: Record<GgmlTypeName, readonly [number, number]> = {
  F32: [1, 4],
  F16: [1, 2],
  Q4_0: [32, 2 + 16],
  Q4_1: [32, 2 + 2 + 16],
  Q5_0: [32, 2 + 4 + 16],
  Q5_1: [32, 2 + 2 + 4 + 16],
  Q8_0: [32, 2 + 32],
  Q8_1: [32, 4 + 4 + 32],
  Q2_K: [QK_K, 2 + 2 + QK_K / 16 + QK_K / 4],
  Q3_K: [QK_K, 2 + QK_K / 4 + QK_K / 8 + 12],
  Q4_K: [QK_K, 2 + 2 + QK_K / 2 + 12],
  Q5_K: [QK_K, 2 + 2 + QK_K / 2 + QK_K / 8 + 12],
  Q6_K: [QK_K, 2 + QK_K / 2 + QK_K / 4 + QK_K / 16],
  Q8_K: [QK_K, 4 + QK_K + QK_K / 8],
  IQ2_XXS: [QK_K, 2 + QK_K / 4],
  IQ2_XS: [QK_K, 2 + QK_K / 4 + QK_K / 32],
  IQ3_XXS: [QK_K, 2 + QK_K / 4 + QK_K / 8],
  IQ1_S: [QK_K, 2 + QK_K / 8 + QK_K / 16],
  IQ4_NL: [32, 2 + 16],
  IQ3_S: [QK_K, 2 + QK_K / 4 + QK_K / 8 + QK_K / 32 + 4],
  IQ2_S: [QK_K, 2 + QK_K / 4 + QK_K / 16],
  IQ4_XS: [QK_K, 2 + 2 + QK_K / 2 + QK_K / 64],
  I8: [1, 1],
  I16: [1, 2],
  I32: [1, 4],
  I64: [1, 8],
  F64: [1, 8],
  IQ1_M: [QK_K, QK_K / 8 + QK_K / 16 + QK_K / 32],
  BF16: [1, 2],
  TQ1_0: [QK_K, 2 + 4 * 13],
  TQ2_0: [QK_K, 2 + 64],
  MXFP4: [32, 1 + 16],
};

const BY_ID = new Map<number, GgmlTypeInfo>(
  (Object.keys(GgmlType) as GgmlTypeName[]).map((name) => {
    const [blockSize, typeSize] = SIZES[name];
    return [GgmlType[name], Object.freeze({ id: GgmlType[name], name, blockSize, typeSize })];
  }),
);

/**
 * Layout of a tensor type given by id or name.
 * @throws if GGUF does not define the type.
 */
export function ggmlTypeInfo(type: number | GgmlTypeName): GgmlTypeInfo {
  const id = typeof type === 'string' ? (GgmlType as Record<string, number>)[type] : type;
  const info = id === undefined ? undefined : BY_ID.get(id);
  if (!info) {
    throw new TypeError(
      `Expected a GGUF tensor type (a name such as 'Q4_K' or an id such as 12) but received ${describe(type)}`,
    );
  }
  return info;
}

/**
 * Bytes a tensor of `type` and `shape` (ne0 first) occupies.
 * @throws if the type is unknown, a dimension is not a non-negative integer, or ne0 is not a
 *   multiple of the type's block size.
 */
export function ggmlTensorByteSize(type: number | GgmlTypeName, shape: readonly number[]): number {
  const info = ggmlTypeInfo(type);
  let n = 1;
  for (const ne of shape) {
    if (!Number.isSafeInteger(ne) || ne < 0) {
      throw new RangeError(`Expected non-negative integer dimensions but received shape [${shape.join(', ')}]`);
    }
    n *= ne;
  }
  const ne0 = shape.length > 0 ? shape[0] : 1;
  if (ne0 % info.blockSize !== 0) {
    throw new RangeError(
      `Type ${info.name} stores blocks of ${info.blockSize} elements, so ne0 must be a multiple of ${info.blockSize}, but shape is [${shape.join(', ')}]`,
    );
  }
  const bytes = (n / info.blockSize) * info.typeSize;
  if (!Number.isSafeInteger(bytes)) throw new RangeError(`Tensor of shape [${shape.join(', ')}] is too large`);
  return bytes;
}

/** `value` for messages: `-1 (number)`, `'x' (string)`. */
export function describe(value: unknown): string {
  if (typeof value === 'string') return `'${value}' (string)`;
  if (value === null) return 'null';
  if (Array.isArray(value)) return `an array of length ${value.length}`;
  if (typeof value === 'object') return `an object (${(value as object).constructor?.name ?? 'Object'})`;
  return `${String(value)} (${typeof value})`;
}
