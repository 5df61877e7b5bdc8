/**
 * Reading GGUF files: header, metadata and tensor infos, without loading weights.
 */
import { callNative, callNativeSync } from '../errors.js';
import { native, type NativeGgufSource } from '../native.js';
import { SliceClock } from '../slices.js';
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
  const file = await callNative(() => native().openGguf(path));
  try {
    return await convertSliced({ gguf: (max) => file.info(max), ggufStrings: (k, b, e) => file.strings(k, b, e) });
  } finally {
    file.close();
  }
}

/** Strings converted per native call: a fraction of a millisecond of the JS thread. */
const STRINGS_PER_CALL = 2048;

/**
 * Converts a parsed GGUF to JS without holding the event loop: large string arrays (a 150k-token
 * vocabulary, 280k merges) are fetched in small pieces, in slices of the clock's budget.
 * @internal
 */
export async function convertSliced(source: NativeGgufSource, clock: SliceClock = new SliceClock()): Promise<GgufInfo> {
  clock.start();
  const info = callNativeSync(() => source.gguf(STRINGS_PER_CALL));
  for (const [key, value] of Object.entries(info.metadata)) {
    const deferred = (value as unknown as { deferredStrings?: unknown }).deferredStrings;
    if (typeof deferred !== 'number') continue;
    const out: string[] = new Array<string>(deferred);
    for (let begin = 0; begin < deferred; begin += STRINGS_PER_CALL) {
      await clock.yield();
      const part = callNativeSync(() => source.ggufStrings(key, begin, Math.min(deferred, begin + STRINGS_PER_CALL)));
      for (let i = 0; i < part.length; i++) out[begin + i] = part[i]!;
    }
    info.metadata[key] = out;
  }
  return info;
}
