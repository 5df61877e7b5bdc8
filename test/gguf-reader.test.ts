// The GGUF reader on valid and hostile files: every malformed file must give a MoerunError with a
// message naming the field, and never crash the process.
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MoerunError, readGgufInfo } from 'moerun';

const dir = mkdtempSync(path.join(os.tmpdir(), 'moerun-gguf-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Little-endian byte builder that records section boundaries, for hand-made (hostile) files. */
class Bytes {
  parts: number[] = [];
  u8(v: number) { this.parts.push(v & 0xff); return this; }
  u32(v: number) { for (let i = 0; i < 4; i++) this.parts.push((v >>> (8 * i)) & 0xff); return this; }
  u64(v: bigint) { for (let i = 0n; i < 8n; i++) this.parts.push(Number((v >> (8n * i)) & 0xffn)); return this; }
  i64(v: bigint) { return this.u64(BigInt.asUintN(64, v)); }
  f32(v: number) { const b = Buffer.alloc(4); b.writeFloatLE(v); this.parts.push(...b); return this; }
  str(s: string) { const b = Buffer.from(s, 'utf8'); this.u64(BigInt(b.length)); this.parts.push(...b); return this; }
  pad(align: number) { while (this.parts.length % align) this.parts.push(0); return this; }
  get length() { return this.parts.length; }
  buffer() { return Buffer.from(this.parts); }
}

interface Layout { bytes: Buffer; boundaries: number[] }

/** A valid file: 1 f32 tensor of 4x2, metadata of several types. `patch` edits fields. */
function validFile(patch: { version?: number; nDims?: number; ne?: bigint[]; type?: number; offset?: bigint; strLen?: bigint; nKv?: bigint; alignment?: number } = {}): Layout {
  const b = new Bytes();
  const boundaries: number[] = [];
  b.u8(0x47).u8(0x47).u8(0x55).u8(0x46);  // "GGUF"
  b.u32(patch.version ?? 3);
  b.u64(1n);                      // tensors
  b.u64(patch.nKv ?? 4n);         // kv pairs
  boundaries.push(b.length);
  b.str('general.architecture').u32(8);
  if (patch.strLen !== undefined) { b.u64(patch.strLen); b.parts.push(...Buffer.from('llama')); } else b.str('llama');
  boundaries.push(b.length);
  b.str('general.alignment').u32(4).u32(patch.alignment ?? 32);
  boundaries.push(b.length);
  b.str('test.scores').u32(9).u32(6).u64(3n).f32(0.5).f32(-1).f32(2);
  boundaries.push(b.length);
  b.str('test.nested').u32(9).u32(9).u64(2n);
  b.u32(4).u64(2n).u32(7).u32(8);
  b.u32(8).u64(1n).str('x');
  boundaries.push(b.length);
  // tensor info
  b.str('w');
  const ne = patch.ne ?? [4n, 2n];
  b.u32(patch.nDims ?? ne.length);
  for (const d of ne) b.i64(d);
  b.u32(patch.type ?? 0);
  b.u64(patch.offset ?? 0n);
  boundaries.push(b.length);
  b.pad(32);
  boundaries.push(b.length);
  for (let i = 0; i < 8; i++) b.f32(i);
  return { bytes: b.buffer(), boundaries };
}

let counter = 0;
function write(bytes: Buffer): string {
  const p = path.join(dir, `f${counter++}.gguf`);
  writeFileSync(p, bytes);
  return p;
}

async function expectBad(bytes: Buffer, pattern: RegExp): Promise<MoerunError> {
  const err = await readGgufInfo(write(bytes)).then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(MoerunError);
  const e = err as MoerunError;
  expect(e.code).toBe('ERR_BAD_FORMAT');
  expect(e.message).toMatch(pattern);
  return e;
}

describe('readGgufInfo', () => {
  it('reads a valid file: version, every value kind, tensors', async () => {
    const { bytes } = validFile();
    const info = await readGgufInfo(write(bytes));
    expect(info.version).toBe(3);
    expect(info.metadata['general.architecture']).toBe('llama');
    expect(info.metadata['general.alignment']).toBe(32);
    expect(Array.from(info.metadata['test.scores'] as Float32Array)).toEqual([0.5, -1, 2]);
    const nested = info.metadata['test.nested'] as unknown[];
    expect(Array.from(nested[0] as Uint32Array)).toEqual([7, 8]);
    expect(nested[1]).toEqual(['x']);
    expect(info.tensors).toEqual([{ name: 'w', type: 'F32', typeId: 0, shape: [4, 2], offset: info.dataOffset, byteSize: 32 }]);
    expect(info.dataOffset % 32).toBe(0);
  });

  it('reads the real stories260K model', async () => {
    const info = await readGgufInfo(path.resolve(__dirname, '../models/stories260K.gguf'));
    expect(info.metadata['general.architecture']).toBe('llama');
    expect((info.metadata['tokenizer.ggml.tokens'] as string[]).length).toBe(512);
    expect(info.tensors.length).toBe(48);
  });

  it('rejects a file truncated at every byte before the data ends', async () => {
    const { bytes, boundaries } = validFile();
    // Every section boundary, and every byte in between, must fail cleanly.
    const cuts = new Set<number>([...boundaries, ...Array.from({ length: bytes.length }, (_, i) => i)]);
    for (const cut of cuts) {
      if (cut >= bytes.length) continue;
      const err = await readGgufInfo(write(bytes.subarray(0, cut))).then(() => undefined, (e: unknown) => e);
      expect(err, `cut at ${cut}`).toBeInstanceOf(MoerunError);
      expect((err as MoerunError).code).toBe('ERR_BAD_FORMAT');
    }
  });

  it('rejects bad magic and unknown versions', async () => {
    const { bytes } = validFile();
    const bad = Buffer.from(bytes);
    bad.write('GGML', 0);
    await expectBad(bad, /bad magic/);
    await expectBad(validFile({ version: 1 }).bytes, /unsupported version 1/);
    await expectBad(validFile({ version: 4 }).bytes, /unsupported version 4/);
  });

  it('rejects tensor data past the end of the file', async () => {
    await expectBad(validFile({ ne: [4n, 4000n] }).bytes, /tensor 'w' data \[offset 0, size 64000\] ends past/);
    await expectBad(validFile({ offset: 1024n }).bytes, /tensor 'w' data \[offset 1024, size 32\] ends past/);
  });

  it('rejects element counts that overflow 64 bits', async () => {
    await expectBad(validFile({ ne: [1n << 40n, 1n << 40n] }).bytes, /overflows 64 bits/);
    await expectBad(validFile({ ne: [4n, -2n] }).bytes, /negative/);
  });

  it('rejects string lengths past the end of the file', async () => {
    await expectBad(validFile({ strLen: 1n << 50n }).bytes, /general\.architecture.*length 1125899906842624, past the end/);
  });

  it('rejects unknown tensor types, misaligned offsets and bad dimension counts', async () => {
    await expectBad(validFile({ type: 99 }).bytes, /tensor 'w' .*unknown type 99/);
    await expectBad(validFile({ offset: 4n }).bytes, /offset 4 is not a multiple of the alignment 32/);
    await expectBad(validFile({ alignment: 2 }).bytes, /general\.alignment must be a power-of-two u32 of at least 8, got u32 2/);
    await expectBad(validFile({ alignment: 24 }).bytes, /general\.alignment must be a power-of-two u32 of at least 8, got u32 24/);
    await expectBad(validFile({ nDims: 5, ne: [1n, 1n, 1n, 1n, 8n] }).bytes, /5 dimensions/);
    await expectBad(validFile({ type: 2 }).bytes, /row length 4 is not a multiple of Q4_0's block size 32/);
  });

  it('rejects counts larger than the file could hold', async () => {
    await expectBad(validFile({ nKv: 1n << 60n }).bytes, /metadata count .* more than the file can hold/);
  });

  it('reports a missing file as ERR_IO and bad arguments as ERR_INVALID_ARGUMENT', async () => {
    const err = await readGgufInfo(path.join(dir, 'missing.gguf')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MoerunError);
    expect((err as MoerunError).code).toBe('ERR_IO');
    expect((err as MoerunError).message).toMatch(/missing\.gguf/);
    const err2 = await readGgufInfo(42 as unknown as string).catch((e: unknown) => e);
    expect((err2 as MoerunError).code).toBe('ERR_INVALID_ARGUMENT');
    expect((err2 as MoerunError).message).toBe('Expected a non-empty string for path but received 42 (number)');
  });

  it('survives random corruption without crashing', async () => {
    const { bytes } = validFile();
    let seed = 12345;
    const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    for (let trial = 0; trial < 300; trial++) {
      const b = Buffer.from(bytes);
      const flips = 1 + Math.floor(rand() * 4);
      for (let k = 0; k < flips; k++) b[Math.floor(rand() * b.length)] = Math.floor(rand() * 256);
      // Either parses or fails with a MoerunError; anything else (or a crash) fails the test.
      await readGgufInfo(write(b)).catch((e: unknown) => expect(e).toBeInstanceOf(MoerunError));
    }
  });
});

// Large string arrays arrive as string tables (one string per chunk of 4096 elements, decoded by
// native/addon/addon.cpp's append_utf16), and large numeric arrays a piece at a time. Each element
// must be exactly the string V8 makes of the same bytes, invalid UTF-8 included.
describe('large arrays', () => {
  function fileWithArrays(strings: Buffer[], numbers: Float32Array): Buffer {
    const b = new Bytes();
    b.u8(0x47).u8(0x47).u8(0x55).u8(0x46).u32(3).u64(0n).u64(3n);
    b.str('general.architecture').u32(8).str('llama');
    b.str('test.strings').u32(9).u32(8).u64(BigInt(strings.length));
    for (const s of strings) {
      b.u64(BigInt(s.length));
      b.parts.push(...s);
    }
    b.str('test.numbers').u32(9).u32(6).u64(BigInt(numbers.length));
    for (const v of numbers) b.f32(v);
    return b.buffer();
  }

  it('decodes every element as V8 does, valid or not, across chunk boundaries', async () => {
    // Random byte strings biased towards UTF-8 lead and continuation bytes, plus edge cases.
    let x = 12345;
    const rand = (n: number) => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0) >>> 8) % n;
    const pool = [0x41, 0x7f, 0x80, 0xbf, 0xc0, 0xc2, 0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff, 0xa0, 0x9f, 0x90, 0x8f];
    const strings: Buffer[] = [
      Buffer.from(''), Buffer.from('plain'), Buffer.from('▁über 𝄞'), Buffer.from([0xf0, 0x9f, 0x98]), Buffer.from([0xed, 0xa0, 0x80]),
      Buffer.from([0xe0, 0x80, 0x80]), Buffer.from([0xc0, 0xaf]), Buffer.from([0xf4, 0x90, 0x80, 0x80]), Buffer.from([0xe2, 0x82]),
    ];
    while (strings.length < 9000) {
      const len = rand(7);
      strings.push(Buffer.from(Array.from({ length: len }, () => (rand(3) === 0 ? rand(256) : pool[rand(pool.length)]!))));
    }
    const numbers = Float32Array.from({ length: 40000 }, (_, i) => i * 0.5 - 7);
    const file = write(fileWithArrays(strings, numbers));
    const info = await readGgufInfo(file);
    const got = info.metadata['test.strings'] as string[];
    expect(got.length).toBe(strings.length);
    for (let i = 0; i < strings.length; i++) {
      if (got[i] !== strings[i]!.toString('utf8')) expect({ i, got: got[i] }).toEqual({ i, got: strings[i]!.toString('utf8') });
    }
    expect(info.metadata['test.numbers']).toEqual(numbers);
  });
});

describe('tensor data layout', () => {
  // Two F32 tensors of 16 elements (64 bytes each) at the given data offsets, in 128 bytes of data.
  function twoTensors(offsetA: bigint, offsetB: bigint): Buffer {
    const b = new Bytes();
    b.u8(0x47).u8(0x47).u8(0x55).u8(0x46).u32(3).u64(2n).u64(1n);
    b.str('general.architecture').u32(8).str('llama');
    for (const [name, off] of [['a', offsetA], ['b', offsetB]] as const) {
      b.str(name).u32(1).i64(16n).u32(0).u64(off);
    }
    b.pad(32);
    for (let i = 0; i < 32; i++) b.f32(i);
    return b.buffer();
  }

  it('refuses tensors whose data overlap', async () => {
    await expectBad(twoTensors(0n, 0n), /tensor '[ab]' data \[offset 0, size 64\] overlaps tensor '[ab]' data \[offset 0, size 64\]/);
    await expectBad(twoTensors(0n, 32n), /tensor 'b' data \[offset 32, size 64\] overlaps tensor 'a' data \[offset 0, size 64\]/);
    await expectBad(twoTensors(32n, 0n), /tensor 'a' data \[offset 32, size 64\] overlaps tensor 'b' data \[offset 0, size 64\]/);
  });

  it('accepts adjacent tensors, in either order', async () => {
    for (const [a, b] of [[0n, 64n], [64n, 0n]] as const) {
      const info = await readGgufInfo(write(twoTensors(a, b)));
      expect(info.tensors.map((t) => t.name)).toEqual(['a', 'b']);
    }
  });
});
