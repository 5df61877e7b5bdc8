/**
 * Reading GGUF files: header, metadata and tensor infos, without loading weights.
 */
import { callNative, callNativeSync, MoerunError } from '../errors.js';
import { native, type NativeGgufSource } from '../native.js';
import { SliceClock } from '../slices.js';
import { attachStringTable, CHUNK, detachStringTable, StringTable, type StringTableChunk } from './string-table.js';
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
    return await convertSliced({
      gguf: (max) => file.info(max),
      ggufStringTableChunk: (k, c) => file.stringTableChunk(k, c),
      ggufArrayInto: (k, b, t) => file.arrayInto(k, b, t),
    });
  } finally {
    file.close();
  }
}

/** Typed array classes by name, for deferred numeric arrays. */
const TYPED_ARRAYS = {
  Uint8Array, Int8Array, Uint16Array, Int16Array, Uint32Array, Int32Array, Float32Array, Float64Array, BigUint64Array, BigInt64Array,
} as const;

/** Elements copied per call into a deferred numeric array (the native side's threshold too). */
const ARRAY_PIECE = 16384;

// A large numeric array (a vocabulary's scores or token types), copied a piece per slice: a fresh
// megabyte written in one call costs milliseconds of page faults.
async function copyDeferredArray(source: NativeGgufSource, key: string, count: number, type: string, clock: SliceClock): Promise<GgufValue> {
  const Ctor = TYPED_ARRAYS[type as keyof typeof TYPED_ARRAYS];
  if (!Ctor) throw new MoerunError('ERR_INTERNAL', `gguf: '${key}' has unknown element type ${type}`);
  const out = new Ctor(count);
  for (let begin = 0; begin < count; begin += ARRAY_PIECE) {
    await clock.yield();
    const piece = out.subarray(begin, Math.min(count, begin + ARRAY_PIECE));
    callNativeSync(() => source.ggufArrayInto(key, begin, piece));
  }
  return out as GgufValue;
}

/**
 * String arrays of more than this many elements come from the native reader as one string table
 * each (native/addon/addon.cpp: k_table_min_count, the same number).
 */
const TABLE_MIN_COUNT = 1024;

/**
 * Converts a parsed GGUF to JS without holding the event loop. Large string arrays (a 150k-token
 * vocabulary, 280k merges) arrive as string tables, chunk by chunk in slices of the clock's budget (lib/gguf/string-table.ts), which the
 * tokenizer reads directly; `metadata[key]` turns a table into an array of strings only when
 * someone reads it.
 * @internal
 */
export async function convertSliced(source: NativeGgufSource, clock: SliceClock = new SliceClock()): Promise<GgufInfo> {
  clock.start();
  const info = callNativeSync(() => source.gguf(TABLE_MIN_COUNT));
  const md = info.metadata;
  for (const [key, value] of Object.entries(md)) {
    const marker = value as unknown as { deferredStrings?: unknown; deferredArray?: unknown; elementType?: unknown };
    if (typeof marker.deferredArray === 'number') {
      md[key] = await copyDeferredArray(source, key, marker.deferredArray, String(marker.elementType), clock);
      continue;
    }
    const deferred = marker.deferredStrings;
    if (typeof deferred !== 'number') continue;
    const chunks: StringTableChunk[] = [];
    for (let c = 0; c * CHUNK < deferred; c++) {
      await clock.yield();
      chunks.push(callNativeSync(() => source.ggufStringTableChunk(key, c)));
    }
    const table = new StringTable(chunks);
    if (table.length !== deferred) throw new MoerunError('ERR_INTERNAL', `gguf: string table '${key}' has ${table.length} elements, expected ${deferred}`);
    attachStringTable(md, key, table);
    Object.defineProperty(md, key, {
      enumerable: true,
      configurable: true,
      get(): string[] {
        const strings = table.toArray();
        Object.defineProperty(md, key, { value: strings, enumerable: true, configurable: true, writable: true });
        return strings;
      },
      set(v: GgufValue) {
        detachStringTable(md, key);
        Object.defineProperty(md, key, { value: v, enumerable: true, configurable: true, writable: true });
      },
    });
  }
  return info;
}
