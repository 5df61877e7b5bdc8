/**
 * Reading GGUF files: header, metadata and tensor infos, without loading weights.
 */
import { callNative } from '../errors.js';
import { native } from '../native.js';
import { nonEmptyString } from '../validate.js';

/**
 * A metadata value as read from the file: strings, numbers (64-bit integers beyond 2^53 as
 * bigint), booleans; arrays of numbers as typed arrays of the stored type, arrays of strings as
 * `string[]`, nested arrays as plain arrays.
 */
export type GgufValue =
  | string
  | number
  | bigint
  | boolean
  | Uint8Array
  | Int8Array
  | Uint16Array
  | Int16Array
  | Uint32Array
  | Int32Array
  | Float32Array
  | Float64Array
  | BigUint64Array
  | BigInt64Array
  | string[]
  | boolean[]
  | GgufValue[];

/** One tensor's description. */
export interface GgufTensorInfo {
  /** e.g. `blk.0.attn_q.weight` */
  name: string;
  /** GGML type name, e.g. `F32`, `Q4_K` */
  type: string;
  /** GGML type id as stored in the file */
  typeId: number;
  /** Dimensions, innermost (contiguous) first, as GGUF stores them */
  shape: number[];
  /** Absolute byte offset of the data in the file */
  offset: number;
  /** Bytes of data */
  byteSize: number;
}

/** What {@link readGgufInfo} returns. */
export interface GgufInfo {
  /** GGUF version: 2 or 3 */
  version: number;
  /** `general.alignment` (32 when absent) */
  alignment: number;
  /** Absolute offset of the tensor data section */
  dataOffset: number;
  /** File size in bytes */
  fileSize: number;
  /** Every metadata key, in file order */
  metadata: Record<string, GgufValue>;
  tensors: GgufTensorInfo[];
}

/**
 * Reads a GGUF file's header, metadata and tensor infos (not the weights), off the JS thread.
 * Every offset and size is validated; a malformed file rejects with a MoerunError
 * (`ERR_BAD_FORMAT`) naming the field and its byte offset.
 */
export async function readGgufInfo(path: string): Promise<GgufInfo> {
  nonEmptyString('path', path);
  return callNative(() => native().readGgufInfo(path));
}
