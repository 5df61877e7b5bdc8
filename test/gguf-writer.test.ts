// GGUF writer: byte layout checked by a small independent parser written from the format spec
// (ggml/include/gguf.h), value-type inference, validation messages, streaming and atomic writes,
// the F16 converter, and make-model's output.

import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import {
  GgmlType,
  encodeF16,
  encodeF32,
  encodeGguf,
  float16BitsToFloat32,
  float32ToBFloat16Bits,
  float32ToFloat16Bits,
  ggmlTensorByteSize,
  ggmlTypeInfo,
  writeGguf,
  writeGgufSync,
  type GgufWriteSpec,
} from '../lib/gguf/writer.js';
import { makeModel, makeModelParts, syntheticSpmVocab } from '../scripts/make-model.js';

const dir = mkdtempSync(join(tmpdir(), 'moerun-gguf-writer-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// ============================================================================================
// An independent reader: just enough of the spec to check what the writer wrote
// ============================================================================================

type Parsed = {
  version: number;
  nTensors: bigint;
  nKv: bigint;
  kv: Map<string, { type: number; value: unknown }>;
  tensors: { name: string; shape: bigint[]; type: number; offset: bigint }[];
  dataOffset: number;
  bytes: Uint8Array;
};

function parse(bytes: Uint8Array): Parsed {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let p = 0;
  const u32 = () => ((p += 4), dv.getUint32(p - 4, true));
  const u64 = () => ((p += 8), dv.getBigUint64(p - 8, true));
  const str = () => {
    const n = Number(u64());
    p += n;
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(p - n, p));
  };
  const value = (type: number): unknown => {
    switch (type) {
      case 0: return dv.getUint8((p += 1) - 1);
      case 1: return dv.getInt8((p += 1) - 1);
      case 2: return dv.getUint16((p += 2) - 2, true);
      case 3: return dv.getInt16((p += 2) - 2, true);
      case 4: return dv.getUint32((p += 4) - 4, true);
      case 5: return dv.getInt32((p += 4) - 4, true);
      case 6: return dv.getFloat32((p += 4) - 4, true);
      case 7: {
        const b = dv.getUint8((p += 1) - 1);
        if (b > 1) throw new Error(`bool byte ${b}`);
        return b === 1;
      }
      case 8: return str();
      case 9: {
        const itemType = u32();
        const n = Number(u64());
        const items = [];
        for (let i = 0; i < n; i++) items.push(value(itemType));
        return { itemType, items };
      }
      case 10: return dv.getBigUint64((p += 8) - 8, true);
      case 11: return dv.getBigInt64((p += 8) - 8, true);
      case 12: return dv.getFloat64((p += 8) - 8, true);
      default: throw new Error(`bad value type ${type} at ${p}`);
    }
  };
  expect(Buffer.from(bytes.subarray(0, 4)).toString('latin1')).toBe('GGUF');
  p = 4;
  const version = u32();
  const nTensors = u64();
  const nKv = u64();
  const kv = new Map<string, { type: number; value: unknown }>();
  for (let i = 0n; i < nKv; i++) {
    const key = str();
    const type = u32();
    kv.set(key, { type, value: value(type) });
  }
  const tensors = [];
  for (let i = 0n; i < nTensors; i++) {
    const name = str();
    const nDims = u32();
    const shape = Array.from({ length: nDims }, () => u64());
    tensors.push({ name, shape, type: u32(), offset: u64() });
  }
  const alignment = kv.has('general.alignment') ? (kv.get('general.alignment')!.value as number) : 32;
  const headerEnd = p;
  const dataOffset = Math.ceil(p / alignment) * alignment;
  expect(bytes.subarray(headerEnd, dataOffset).every((b) => b === 0)).toBe(true);
  return { version, nTensors, nKv, kv, tensors, dataOffset, bytes };
}

function tensorBytes(f: Parsed, name: string, byteSize: number): Uint8Array {
  const t = f.tensors.find((x) => x.name === name)!;
  const at = f.dataOffset + Number(t.offset);
  return f.bytes.subarray(at, at + byteSize);
}

const seq = (n: number, f = (i: number) => i & 0xff) => Uint8Array.from({ length: n }, (_, i) => f(i));

// ============================================================================================
// Layout
// ============================================================================================

describe('GGUF layout', () => {
  it('writes magic, version 3, counts, tensor infos, aligned offsets and zero padding', () => {
    const a = seq(4 * 3 * 5); // F32 [3, 5]: 60 bytes, not a multiple of 32
    const b = seq(34 * 2 * 3, (i) => (i * 7) & 0xff); // Q8_0 [64, 3]
    const c = seq(2 * 7, (i) => 255 - i); // F16 [7]
    const bytes = encodeGguf({
      metadata: { 'general.architecture': 'test' },
      tensors: [
        { name: 'a', type: 'F32', shape: [3, 5], data: a },
        { name: 'b', type: GgmlType.Q8_0, shape: [64, 3], data: b },
        { name: 'c', type: 'F16', shape: [7], data: c },
      ],
    });
    const f = parse(bytes);
    expect(f.version).toBe(3);
    expect(f.nTensors).toBe(3n);
    expect(f.nKv).toBe(1n);
    expect(f.dataOffset % 32).toBe(0);
    expect(f.tensors.map((t) => [t.name, t.shape, t.type, t.offset])).toEqual([
      ['a', [3n, 5n], 0, 0n],
      ['b', [64n, 3n], 8, 64n], // 60 rounded up to 64
      ['c', [7n], 1, 64n + 224n], // 204 rounded up to 224
    ]);
    expect(tensorBytes(f, 'a', a.length)).toEqual(a);
    expect(tensorBytes(f, 'b', b.length)).toEqual(b);
    expect(tensorBytes(f, 'c', c.length)).toEqual(c);
    // Padding after every tensor, the last one included, and nothing else.
    expect(bytes.length).toBe(f.dataOffset + 64 + 224 + 32);
    expect(bytes.subarray(f.dataOffset + 60, f.dataOffset + 64).every((x) => x === 0)).toBe(true);
    expect(bytes.subarray(bytes.length - 18).every((x) => x === 0)).toBe(true);
  });

  it('honours a custom alignment and records it as general.alignment', () => {
    const bytes = encodeGguf({
      alignment: 64,
      tensors: [
        { name: 'x', type: 'F32', shape: [1], data: seq(4) },
        { name: 'y', type: 'F32', shape: [1], data: seq(4) },
      ],
    });
    const f = parse(bytes);
    expect(f.kv.get('general.alignment')).toEqual({ type: 4, value: 64 });
    expect(f.dataOffset % 64).toBe(0);
    expect(f.tensors.map((t) => t.offset)).toEqual([0n, 64n]);
    expect(bytes.length).toBe(f.dataOffset + 128);
    // From metadata alone, too; and a clash is an error.
    const g = parse(encodeGguf({ metadata: { 'general.alignment': 16 }, tensors: [{ name: 'x', type: 'F32', shape: [1], data: seq(4) }] }));
    expect(g.dataOffset % 16).toBe(0);
    expect(g.bytes.length).toBe(g.dataOffset + 16);
    expect(() => encodeGguf({ alignment: 64, metadata: { 'general.alignment': 16 } })).toThrow(/disagrees/);
    expect(() => encodeGguf({ alignment: 48 })).toThrow(/power of two for alignment/);
    // The default is not written (llama.cpp assumes 32).
    expect(parse(encodeGguf({})).kv.size).toBe(0);
  });

  it('writes a header-only file for no tensors and no metadata', () => {
    const bytes = encodeGguf({});
    expect(bytes.length).toBe(32); // 24 header bytes padded to 32
    expect(parse(bytes).nTensors).toBe(0n);
  });
});

// ============================================================================================
// Metadata values
// ============================================================================================

describe('GGUF metadata', () => {
  it('writes every value type, explicitly typed', () => {
    const f = parse(
      encodeGguf({
        metadata: {
          u8: { type: 'u8', value: 255 },
          i8: { type: 'i8', value: -128 },
          u16: { type: 'u16', value: 65535 },
          i16: { type: 'i16', value: -32768 },
          u32: { type: 'u32', value: 4294967295 },
          i32: { type: 'i32', value: -2147483648 },
          f32: { type: 'f32', value: 10000 },
          bool: { type: 'bool', value: true },
          string: { type: 'string', value: 'héllo ▁wörld' },
          u64: { type: 'u64', value: 18446744073709551615n },
          i64: { type: 'i64', value: -9223372036854775808n },
          f64: { type: 'f64', value: Math.PI },
          u64n: { type: 'u64', value: 5 },
          arr_u8: { type: 'array', itemType: 'u8', value: [1, 2, 3] },
          arr_str: { type: 'array', itemType: 'string', value: ['a', '', 'ccc'] },
          arr_empty: { type: 'array', itemType: 'f32', value: [] },
          arr_typed_elems: { type: 'array', itemType: 'i16', value: [{ type: 'i16', value: -2 }, 3] },
          nested: { type: 'array', itemType: 'array', value: [[1, 2], ['x'], { type: 'array', itemType: 'i8', value: [-1] }] },
        },
      }),
    );
    const get = (k: string) => f.kv.get(k);
    expect(get('u8')).toEqual({ type: 0, value: 255 });
    expect(get('i8')).toEqual({ type: 1, value: -128 });
    expect(get('u16')).toEqual({ type: 2, value: 65535 });
    expect(get('i16')).toEqual({ type: 3, value: -32768 });
    expect(get('u32')).toEqual({ type: 4, value: 4294967295 });
    expect(get('i32')).toEqual({ type: 5, value: -2147483648 });
    expect(get('f32')).toEqual({ type: 6, value: 10000 });
    expect(get('bool')).toEqual({ type: 7, value: true });
    expect(get('string')).toEqual({ type: 8, value: 'héllo ▁wörld' });
    expect(get('u64')).toEqual({ type: 10, value: 18446744073709551615n });
    expect(get('i64')).toEqual({ type: 11, value: -9223372036854775808n });
    expect(get('f64')).toEqual({ type: 12, value: Math.PI });
    expect(get('u64n')).toEqual({ type: 10, value: 5n });
    expect(get('arr_u8')).toEqual({ type: 9, value: { itemType: 0, items: [1, 2, 3] } });
    expect(get('arr_str')).toEqual({ type: 9, value: { itemType: 8, items: ['a', '', 'ccc'] } });
    expect(get('arr_empty')).toEqual({ type: 9, value: { itemType: 6, items: [] } });
    expect(get('arr_typed_elems')).toEqual({ type: 9, value: { itemType: 3, items: [-2, 3] } });
    expect(get('nested')).toEqual({
      type: 9,
      value: {
        itemType: 9,
        items: [
          { itemType: 4, items: [1, 2] },
          { itemType: 8, items: ['x'] },
          { itemType: 1, items: [-1] },
        ],
      },
    });
  });

  it('infers types from plain values, in insertion order', () => {
    const f = parse(
      encodeGguf({
        metadata: new Map<string, never>(
          Object.entries({
            int: 7,
            neg: -7,
            big: 2 ** 40,
            float: 1e-5,
            bigint: 3n,
            negbigint: -3n,
            bool: false,
            str: 'x',
            ints: [0, 1, 4294967295],
            mixedSign: [-1, 1],
            floats: [1, 2.5],
            strs: ['a', 'b'],
            bools: [true, false],
            f32arr: Float32Array.of(0.5, -1),
            i32arr: Int32Array.of(-5, 6),
            u8arr: Uint8Array.of(9),
            f64arr: Float64Array.of(0.1),
            u64arr: BigUint64Array.of(1n),
            nested: [[1], [2, 3]],
          }) as [string, never][],
        ),
      }),
    );
    expect([...f.kv.keys()][0]).toBe('int');
    const t = (k: string) => f.kv.get(k)!.type;
    const item = (k: string) => (f.kv.get(k)!.value as { itemType: number }).itemType;
    expect([t('int'), t('neg'), t('big'), t('float'), t('bigint'), t('negbigint'), t('bool'), t('str')]).toEqual([4, 5, 11, 6, 10, 11, 7, 8]);
    expect(f.kv.get('big')!.value).toBe(2n ** 40n);
    expect(f.kv.get('float')!.value).toBeCloseTo(1e-5, 12);
    expect(['ints', 'mixedSign', 'floats', 'strs', 'bools', 'f32arr', 'i32arr', 'u8arr', 'f64arr', 'u64arr', 'nested'].map(item)).toEqual([
      4, 5, 6, 8, 7, 6, 5, 0, 12, 10, 9,
    ]);
    expect((f.kv.get('f32arr')!.value as { items: number[] }).items).toEqual([0.5, -1]);
  });

  it('rejects values that do not fit, with exact messages', () => {
    const bad = (metadata: Record<string, unknown>) => () => encodeGguf({ metadata } as GgufWriteSpec);
    expect(bad({ k: { type: 'u8', value: 256 } })).toThrow("Metadata 'k': expected a u8 but received 256 (number)");
    expect(bad({ k: { type: 'i32', value: 1.5 } })).toThrow("Metadata 'k': expected a i32 but received 1.5 (number)");
    expect(bad({ k: { type: 'u32', value: -1 } })).toThrow(/expected a u32 but received -1/);
    expect(bad({ k: { type: 'u64', value: -1n } })).toThrow(/expected a u64/);
    expect(bad({ k: { type: 'string', value: 3 } })).toThrow(/expected a string/);
    expect(bad({ k: { type: 'bool', value: 1 } })).toThrow(/expected a bool/);
    expect(bad({ k: { type: 'u17', value: 1 } })).toThrow(/expected a value or \{ type, value \}/);
    expect(bad({ k: { type: 'u8', value: 1, extra: 2 } })).toThrow("Metadata 'k': unknown field 'extra' in a typed u8 value");
    expect(bad({ k: [] })).toThrow(/cannot infer the element type of an empty array/);
    expect(bad({ k: [1, 'a'] })).toThrow(/mixed values/);
    expect(bad({ k: { type: 'array', itemType: 'u8', value: [1, 300] } })).toThrow("Metadata 'k[1]': expected a u8 but received 300 (number)");
    expect(bad({ k: { type: 'array', itemType: 'u8', value: [{ type: 'u16', value: 1 }] } })).toThrow(/a u16 element in an array of u8/);
    expect(bad({ k: null })).toThrow(/cannot store null/);
    expect(bad({ k: undefined })).toThrow(/cannot store undefined/);
    expect(() => encodeGguf({ metadata: [['a', 1], ['a', 2]] })).toThrow("Duplicate metadata key 'a'");
    expect(() => encodeGguf({ metadata: [['', 1]] })).toThrow(/non-empty string for a metadata key/);
    expect(() => encodeGguf({ metdata: {} } as unknown as GgufWriteSpec)).toThrow("Unknown GGUF write option 'metdata'");
  });
});

// ============================================================================================
// Tensors: types, validation, streaming, atomicity
// ============================================================================================

describe('GGUF tensors', () => {
  it('knows the block layout of every GGUF type', () => {
    const expected: Record<string, [number, number]> = {
      F32: [1, 4], F16: [1, 2], Q4_0: [32, 18], Q4_1: [32, 20], Q5_0: [32, 22], Q5_1: [32, 24], Q8_0: [32, 34],
      Q8_1: [32, 40], Q2_K: [256, 84], Q3_K: [256, 110], Q4_K: [256, 144], Q5_K: [256, 176], Q6_K: [256, 210],
      Q8_K: [256, 292], IQ2_XXS: [256, 66], IQ2_XS: [256, 74], IQ3_XXS: [256, 98], IQ1_S: [256, 50],
      IQ4_NL: [32, 18], IQ3_S: [256, 110], IQ2_S: [256, 82], IQ4_XS: [256, 136], I8: [1, 1], I16: [1, 2],
      I32: [1, 4], I64: [1, 8], F64: [1, 8], IQ1_M: [256, 56], BF16: [1, 2], TQ1_0: [256, 54], TQ2_0: [256, 66],
      MXFP4: [32, 17],
    };
    for (const [name, [blockSize, typeSize]] of Object.entries(expected)) {
      expect(ggmlTypeInfo(name as keyof typeof GgmlType), name).toMatchObject({ blockSize, typeSize, id: GgmlType[name as keyof typeof GgmlType] });
    }
    expect(Object.keys(GgmlType)).toEqual(Object.keys(expected));
    expect(ggmlTensorByteSize('Q4_K', [512, 3, 2])).toBe(2 * 144 * 3 * 2);
    expect(() => ggmlTypeInfo(4)).toThrow(/received 4 \(number\)/); // Q4_2, removed from GGUF
    expect(() => ggmlTypeInfo('Q4_2' as never)).toThrow(/received 'Q4_2' \(string\)/);
  });

  it('rejects bad tensor specs with the tensor named', () => {
    const one = (t: object) => () => encodeGguf({ tensors: [{ name: 't', type: 'F32', shape: [4], data: seq(16), ...t }] as never });
    expect(one({ data: seq(15) })).toThrow("Tensor 't': data has 15 bytes but its type and shape need 16");
    expect(one({ data: [seq(8), seq(9)] })).toThrow("Tensor 't': data has more than the 16 bytes its type and shape need");
    expect(one({ type: 'Q4_K', shape: [128], data: seq(72) })).toThrow(/Tensor 't': Type Q4_K stores blocks of 256 elements/);
    expect(one({ type: 99 })).toThrow(/Tensor 't': Expected a GGUF tensor type/);
    expect(one({ shape: [] })).toThrow(/expected 1 to 4 dimensions/);
    expect(one({ shape: [1, 1, 1, 1, 4] })).toThrow(/expected 1 to 4 dimensions/);
    expect(one({ shape: [-4] })).toThrow(/non-negative integer dimensions/);
    expect(one({ name: 'x'.repeat(64) })).toThrow(/longer than 63 bytes/);
    expect(one({ data: 'nope' })).toThrow(/expected data to be a typed array/);
    expect(one({ data: [[1, 2]] })).toThrow(/expected data chunks to be typed arrays/);
    expect(one({ data: (async function* () {})() })).toThrow(/asynchronous data needs writeGguf/);
    const t = { name: 'dup', type: 'F32', shape: [1], data: seq(4) } as const;
    expect(() => encodeGguf({ tensors: [t, t] })).toThrow("Duplicate tensor name 'dup'");
  });

  it('accepts typed arrays, iterables, async iterables and producer functions, all giving the same file', async () => {
    const values = Float32Array.from({ length: 64 * 4 }, (_, i) => Math.sin(i));
    const raw = new Uint8Array(values.buffer);
    const spec = (data: unknown): GgufWriteSpec => ({
      metadata: { 'general.architecture': 'x', n: { type: 'u16', value: 3 } },
      tensors: [
        { name: 'w', type: 'F32', shape: [64, 4], data: data as never },
        { name: 'v', type: 'F16', shape: [32], data: encodeF16(values.subarray(0, 32)) },
      ],
    });
    const expected = encodeGguf(spec(values)); // a Float32Array is taken as raw bytes
    expect(encodeGguf(spec(raw))).toEqual(expected);
    expect(encodeGguf(spec(encodeF32(values)))).toEqual(expected);
    expect(encodeGguf(spec(() => [raw.subarray(0, 100), raw.subarray(100)]))).toEqual(expected);
    // A producer that reuses one buffer between chunks must still produce the right bytes.
    function* rows() {
      const buf = new Float32Array(64);
      for (let r = 0; r < 4; r++) {
        buf.set(values.subarray(r * 64, (r + 1) * 64));
        yield buf;
      }
    }
    expect(encodeGguf(spec(rows))).toEqual(expected);

    const path = join(dir, 'stream.gguf');
    async function* asyncRows() {
      for (let r = 0; r < 4; r++) yield values.subarray(r * 64, (r + 1) * 64);
    }
    const result = await writeGguf(path, spec(asyncRows));
    expect(new Uint8Array(readFileSync(path))).toEqual(expected);
    expect(result.byteSize).toBe(expected.length);
    expect(result.tensors).toEqual([
      { name: 'w', offset: 0, byteSize: 1024 },
      { name: 'v', offset: 1024, byteSize: 64 },
    ]);
    expect(result.dataOffset).toBe(parse(expected).dataOffset);
    await writeGguf(path, spec(() => Promise.resolve(raw)));
    expect(new Uint8Array(readFileSync(path))).toEqual(expected);

    const syncPath = join(dir, 'sync.gguf');
    writeGgufSync(syncPath, spec(rows));
    expect(new Uint8Array(readFileSync(syncPath))).toEqual(expected);
  });

  it('streams tensors larger than its buffer', async () => {
    const n = 3 << 20; // 3 MiB of F32 = 12 MiB, in chunks of odd sizes
    const path = join(dir, 'big.gguf');
    function* chunks() {
      for (let at = 0; at < n * 4; ) {
        const len = Math.min(n * 4 - at, at % 3 === 0 ? 4 << 20 : 12345 * 4);
        yield seq(len, (i) => (at + i) % 251);
        at += len;
      }
    }
    const result = await writeGguf(path, { tensors: [{ name: 'big', type: 'F32', shape: [n], data: chunks }] });
    const bytes = new Uint8Array(readFileSync(path));
    expect(bytes.length).toBe(result.byteSize);
    const data = bytes.subarray(result.dataOffset, result.dataOffset + n * 4);
    let ok = true;
    for (let i = 0; i < data.length; i += 4099) ok &&= data[i] === i % 251;
    expect(ok).toBe(true);
    expect(data[data.length - 1]).toBe((n * 4 - 1) % 251);
  });

  it('is atomic: a failing write leaves the old file and no temp file', async () => {
    const sub = mkdtempSync(join(dir, 'atomic-'));
    const path = join(sub, 'm.gguf');
    writeFileSync(path, 'old');
    async function* failing() {
      yield seq(8);
      throw new Error('producer failed');
    }
    await expect(writeGguf(path, { tensors: [{ name: 't', type: 'F32', shape: [4], data: failing }] })).rejects.toThrow('producer failed');
    await expect(writeGguf(path, { tensors: [{ name: 't', type: 'F32', shape: [4], data: seq(12) }] })).rejects.toThrow(/has 12 bytes/);
    expect(() => writeGgufSync(path, { tensors: [{ name: 't', type: 'F32', shape: [4], data: seq(12) }] })).toThrow(/has 12 bytes/);
    // Validation errors happen before any file is opened.
    await expect(writeGguf(path, { metadata: { k: [] } })).rejects.toThrow(/empty array/);
    expect(readFileSync(path, 'utf8')).toBe('old');
    expect(readdirSync(sub)).toEqual(['m.gguf']);
    await expect(writeGguf(join(sub, 'no-such-dir', 'm.gguf'), {})).rejects.toThrow(/ENOENT/);
  });
});

// ============================================================================================
// Float encoders
// ============================================================================================

describe('F16 / BF16 encoding', () => {
  it('round-trips every finite half exactly and rounds midpoints to even', () => {
    let bad = 0;
    for (let h = 0; h < 0x10000; h++) {
      const exp = (h >>> 10) & 0x1f;
      if (exp === 0x1f) continue;
      const f = float16BitsToFloat32(h);
      if (float32ToFloat16Bits(f) !== h) bad++;
      // Midpoint to the next half up (same sign): ties to the even pattern.
      if ((h & 0x7fff) < 0x7bff) {
        const mid = (f + float16BitsToFloat32(h + 1)) / 2;
        const want = (h & 1) === 0 ? h : h + 1;
        if (float32ToFloat16Bits(mid) !== want) bad++;
        // Just above the midpoint rounds up; just below rounds down.
        const step = Math.abs(float16BitsToFloat32(h + 1) - f) / 1024;
        if (float32ToFloat16Bits(mid + Math.sign(mid || 1) * step) !== h + 1) bad++;
        if (float32ToFloat16Bits(mid - Math.sign(mid || 1) * step) !== h) bad++;
      }
    }
    expect(bad).toBe(0);
  });

  it('handles overflow, underflow, infinities and NaN like IEEE', () => {
    expect(float32ToFloat16Bits(65504)).toBe(0x7bff);
    expect(float32ToFloat16Bits(65519.99)).toBe(0x7bff);
    expect(float32ToFloat16Bits(65520)).toBe(0x7c00); // the tie rounds to even = infinity
    expect(float32ToFloat16Bits(1e9)).toBe(0x7c00);
    expect(float32ToFloat16Bits(-Infinity)).toBe(0xfc00);
    expect(float32ToFloat16Bits(2 ** -24)).toBe(0x0001);
    expect(float32ToFloat16Bits(2 ** -25)).toBe(0x0000); // tie between 0 and the smallest subnormal
    expect(float32ToFloat16Bits(2 ** -25 * 1.0001)).toBe(0x0001);
    expect(float32ToFloat16Bits(-(2 ** -26))).toBe(0x8000);
    expect(float32ToFloat16Bits(-0)).toBe(0x8000);
    expect(float32ToFloat16Bits(1)).toBe(0x3c00);
    expect(float32ToFloat16Bits(-2)).toBe(0xc000);
    expect(float32ToFloat16Bits(1 / 3)).toBe(0x3555);
    const nan = float32ToFloat16Bits(NaN);
    expect(nan & 0x7c00).toBe(0x7c00);
    expect(nan & 0x3ff).not.toBe(0);
    expect(float32ToBFloat16Bits(1)).toBe(0x3f80);
    expect(float32ToBFloat16Bits(1 + 2 ** -8)).toBe(0x3f80); // tie, to even
    expect(float32ToBFloat16Bits(1 + 3 * 2 ** -8)).toBe(0x3f82); // tie, to even (up)
    expect(float32ToBFloat16Bits(-Infinity)).toBe(0xff80);
    expect(encodeF16([1, -2])).toEqual(Uint8Array.of(0x00, 0x3c, 0x00, 0xc0)); // little endian
  });
});

// ============================================================================================
// make-model
// ============================================================================================

describe('make-model', () => {
  it('writes a deterministic llama file with the expected tensors and metadata', async () => {
    const a = await makeModel({ arch: 'llama', out: join(dir, 'a.gguf'), seed: 3 });
    const b = await makeModel({ arch: 'llama', out: join(dir, 'b.gguf'), seed: 3 });
    const c = await makeModel({ arch: 'llama', out: join(dir, 'c.gguf'), seed: 4 });
    const bytesA = readFileSync(a.path);
    expect(bytesA.equals(readFileSync(b.path))).toBe(true);
    expect(bytesA.equals(readFileSync(c.path))).toBe(false);
    expect(bytesA.length).toBeGreaterThan(1e6);
    expect(bytesA.length).toBeLessThan(1e7);

    const f = parse(new Uint8Array(bytesA));
    const names = f.tensors.map((t) => t.name);
    expect(names.slice(0, 3)).toEqual(['token_embd.weight', 'output_norm.weight', 'output.weight']);
    expect(names.filter((n) => n.startsWith('blk.1.'))).toEqual(
      ['attn_norm', 'attn_q', 'attn_k', 'attn_v', 'attn_output', 'ffn_norm', 'ffn_gate', 'ffn_up', 'ffn_down'].map((n) => `blk.1.${n}.weight`),
    );
    const shape = (n: string) => f.tensors.find((t) => t.name === n)!.shape.map(Number);
    expect(shape('token_embd.weight')).toEqual([256, 512]);
    expect(shape('blk.0.attn_k.weight')).toEqual([256, 128]);
    expect(shape('blk.0.ffn_down.weight')).toEqual([512, 256]);
    const meta = (k: string) => f.kv.get(k)!;
    expect(meta('general.architecture').value).toBe('llama');
    expect(meta('llama.attention.layer_norm_rms_epsilon').type).toBe(6);
    expect(meta('llama.rope.freq_base')).toEqual({ type: 6, value: 10000 });
    expect(meta('llama.block_count')).toEqual({ type: 4, value: 2 });
    expect(meta('tokenizer.ggml.model').value).toBe('llama');
    const tokens = (meta('tokenizer.ggml.tokens').value as { items: string[] }).items;
    expect(tokens.length).toBe(512);
    expect(new Set(tokens).size).toBe(512);
    expect(tokens.slice(0, 4)).toEqual(['<unk>', '<s>', '</s>', '<0x00>']);
    expect(tokens[3 + 0x0a]).toBe('<0x0A>');

    // Values: F32 bytes of the generator's values, O(1) embeddings, 1 ± 0.1 norms.
    const parts = makeModelParts({ arch: 'llama', out: 'unused', seed: 3 });
    const emb = parts.weights.find((w) => w.name === 'token_embd.weight')!.values();
    expect(Buffer.from(tensorBytes(f, 'token_embd.weight', emb.byteLength)).equals(Buffer.from(emb.buffer))).toBe(true);
    const std = Math.sqrt(emb.reduce((s, v) => s + v * v, 0) / emb.length);
    expect(std).toBeGreaterThan(0.95);
    expect(std).toBeLessThan(1.05);
    const norm = parts.weights.find((w) => w.name === 'blk.0.attn_norm.weight')!.values();
    expect(Math.min(...norm)).toBeGreaterThan(0.5);
  });

  it('writes F16 matrices with F32 norms, tied embeddings and Mixtral experts', async () => {
    const f16 = parse(new Uint8Array(readFileSync((await makeModel({ arch: 'llama', out: join(dir, 'h.gguf'), type: 'f16', tiedEmbeddings: true })).path)));
    const type = (n: string) => f16.tensors.find((t) => t.name === n)?.type;
    expect(type('token_embd.weight')).toBe(GgmlType.F16);
    expect(type('blk.0.attn_q.weight')).toBe(GgmlType.F16);
    expect(type('blk.0.attn_norm.weight')).toBe(GgmlType.F32);
    expect(type('output.weight')).toBeUndefined();
    expect(f16.kv.get('general.file_type')!.value).toBe(1);

    const moe = parse(new Uint8Array(readFileSync((await makeModel({ arch: 'llama', out: join(dir, 'moe.gguf'), nExpert: 4, nExpertUsed: 2, nFfExp: 256 })).path)));
    const shape = (n: string) => moe.tensors.find((t) => t.name === n)?.shape.map(Number);
    expect(moe.kv.get('llama.expert_count')).toEqual({ type: 4, value: 4 });
    expect(moe.kv.get('llama.expert_used_count')).toEqual({ type: 4, value: 2 });
    expect(shape('blk.0.ffn_gate_inp.weight')).toEqual([256, 4]);
    expect(shape('blk.0.ffn_gate_exps.weight')).toEqual([256, 256, 4]);
    expect(shape('blk.0.ffn_down_exps.weight')).toEqual([256, 256, 4]);
    expect(shape('blk.0.ffn_gate.weight')).toBeUndefined();
  });

  it('validates its options', async () => {
    await expect(makeModel({ arch: 'llama', out: join(dir, 'x.gguf'), nEmbd: -1 })).rejects.toThrow('Expected a positive integer for nEmbd but received -1 (number)');
    await expect(makeModel({ arch: 'gpt9' as never, out: join(dir, 'x.gguf') })).rejects.toThrow(/Expected arch to be one of llama, qwen2, qwen3moe/);
    await expect(makeModel({ arch: 'qwen3moe', out: join(dir, 'x.gguf') })).rejects.toThrow('qwen3moe needs nExpert > 0');
    await expect(makeModel({ arch: 'llama', out: join(dir, 'x.gguf'), nLayers: 2 } as never)).rejects.toThrow("Unknown make-model option 'nLayers'");
    await expect(makeModel({ arch: 'llama', out: join(dir, 'x.gguf'), nHead: 7 })).rejects.toThrow(/not a multiple of nHead/);
    expect(existsSync(join(dir, 'x.gguf'))).toBe(false);
    const v = syntheticSpmVocab(300);
    expect(v.tokens.length).toBe(300);
    expect(v.types[0]).toBe(2);
    expect(v.scores[299]).toBeLessThan(v.scores[260]);
  });
});

// ============================================================================================
// Round trip through our native reader
// ============================================================================================

describe('round trip through readGgufInfo', () => {
  it('reads back every value type, tensor type, shape, offset and size the writer wrote', async () => {
    // The reader module directly, so this file does not depend on the rest of lib/ loading.
    const { readGgufInfo } = await import('../lib/gguf/reader.js');
    const path = join(dir, 'roundtrip.gguf');
    const q4k = seq(144 * 2 * 3 * 2, (i) => (i * 13) & 0xff);
    const result = await writeGguf(path, {
      alignment: 64,
      metadata: {
        'general.architecture': 'llama',
        u8: { type: 'u8', value: 200 },
        i8: { type: 'i8', value: -100 },
        u16: { type: 'u16', value: 60000 },
        i16: { type: 'i16', value: -30000 },
        u32: 4000000000,
        i32: -2000000000,
        f32: { type: 'f32', value: 0.5 },
        bool: true,
        string: 'naïve ▁x',
        u64: { type: 'u64', value: 2n ** 60n },
        i64: { type: 'i64', value: -5 },
        f64: { type: 'f64', value: 0.1 },
        strs: ['a', 'bb', ''],
        f32s: Float32Array.of(1.5, -2),
        i32s: Int32Array.of(-1, 2),
        u8s: { type: 'array', itemType: 'u8', value: [7, 8] },
        nested: [[1, 2], ['x']],
      },
      tensors: [
        { name: 'a', type: 'F32', shape: [3, 5], data: seq(60) },
        { name: 'blk.0.ffn_up_exps.weight', type: 'Q4_K', shape: [512, 3, 2], data: q4k },
        { name: 'c', type: 'BF16', shape: [7], data: seq(14) },
        { name: 'd', type: 'IQ4_NL', shape: [32, 1, 1, 2], data: seq(36) },
      ],
    });
    const info = await readGgufInfo(path);
    expect(info.version).toBe(3);
    expect(info.alignment).toBe(64);
    expect(info.dataOffset).toBe(result.dataOffset);
    expect(info.fileSize).toBe(result.byteSize);
    expect(info.tensors.map(({ name, typeId, shape, offset, byteSize }) => ({ name, typeId, shape, offset, byteSize }))).toEqual(
      result.tensors.map((t, i) => ({
        name: t.name,
        typeId: [0, 12, 30, 20][i],
        shape: [[3, 5], [512, 3, 2], [7], [32, 1, 1, 2]][i],
        offset: result.dataOffset + t.offset,
        byteSize: t.byteSize,
      })),
    );
    expect(info.tensors.map((t) => t.type)).toEqual(['F32', 'Q4_K', 'BF16', 'IQ4_NL']);
    const m = info.metadata;
    expect(Object.keys(m)).toEqual([
      'general.architecture', 'u8', 'i8', 'u16', 'i16', 'u32', 'i32', 'f32', 'bool', 'string', 'u64', 'i64', 'f64',
      'strs', 'f32s', 'i32s', 'u8s', 'nested', 'general.alignment',
    ]);
    expect([m.u8, m.i8, m.u16, m.i16, m.u32, m.i32, m.f32, m.bool, m.string]).toEqual([200, -100, 60000, -30000, 4000000000, -2000000000, 0.5, true, 'naïve ▁x']);
    expect(BigInt(m.u64 as bigint)).toBe(2n ** 60n);
    expect(Number(m.i64)).toBe(-5);
    expect(m.f64).toBe(0.1);
    expect(m.strs).toEqual(['a', 'bb', '']);
    expect(m.f32s).toEqual(Float32Array.of(1.5, -2));
    expect(m.i32s).toEqual(Int32Array.of(-1, 2));
    expect(m.u8s).toEqual(Uint8Array.of(7, 8));
    expect(m.nested).toEqual([Uint32Array.of(1, 2), ['x']]);
    expect(m['general.alignment']).toBe(64);
  });

  it('reads a make-model file as written', async () => {
    const { readGgufInfo } = await import('../lib/gguf/reader.js');
    const made = await makeModel({ arch: 'llama', out: join(dir, 'rt-moe.gguf'), nExpert: 4, nFfExp: 256, type: 'f16' });
    const info = await readGgufInfo(made.path);
    expect(info.fileSize).toBe(made.byteSize);
    expect(info.tensors.map((t) => [t.name, t.offset, t.byteSize])).toEqual(made.tensors.map((t) => [t.name, made.dataOffset + t.offset, t.byteSize]));
    expect(info.metadata['llama.expert_count']).toBe(4);
    expect((info.metadata['tokenizer.ggml.tokens'] as string[]).length).toBe(512);
    expect(info.tensors.find((t) => t.name === 'blk.1.ffn_down_exps.weight')).toMatchObject({ type: 'F16', shape: [256, 256, 4] });
  });
});
