// A quantized model's F32 twin (DESIGN.md, "How correctness is established" → Quantized files): the
// same weights, every tensor of the quantized file dequantized and written as F32, same metadata
// (but general.file_type). llama.cpp runs the twin exactly, so it is the reference that both engines'
// quantized runs are measured against. Plus reading any tensor of a file as floats.
import { open } from 'node:fs/promises';
import { isDeepStrictEqual } from 'node:util';
import { quantize, readGgufInfo, type GgufInfo } from 'moerun';

import { native } from '../../lib/native.js';

/** The raw bytes of tensor `name` of `file` (whose header is `info`). */
export async function tensorBytes(info: GgufInfo, file: string, name: string): Promise<Uint8Array> {
  const t = info.tensors.find((x) => x.name === name);
  if (!t) throw new Error(`tensorBytes: ${file} has no tensor '${name}'`);
  const fh = await open(file, 'r');
  try {
    const buf = new Uint8Array(t.byteSize);
    await fh.read(buf, 0, t.byteSize, t.offset);
    return buf;
  } finally {
    await fh.close();
  }
}

/** A tensor's values as floats, whatever its type (dequantized by moerun's reference kernels). */
export async function tensorFloats(info: GgufInfo, file: string, name: string): Promise<Float32Array> {
  const t = info.tensors.find((x) => x.name === name);
  if (!t) throw new Error(`tensorFloats: ${file} has no tensor '${name}'`);
  const bytes = await tensorBytes(info, file, name);
  const ne0 = t.shape[0]!;
  if (t.type === 'F32') return new Float32Array(bytes.buffer, 0, bytes.byteLength / 4);
  return native().dequantize(t.type, bytes, t.shape.reduce((a, b) => a * b, 1) / ne0, ne0, 2);
}

/**
 * Write the F32 twin of `quantizedPath` to `outPath`: our quantizer's F32 target dequantizes every
 * quantizable tensor and copies the rest (1-D norms, routers: already F32 in a file we quantized).
 * Checks that every tensor of the twin is F32, with the same names and shapes, and that the metadata
 * matches except general.file_type; throws otherwise.
 *
 * The dequantization is ours, so a wrong dequantizer would move the twin, not just our run: callers
 * should also bound llama.cpp's own distance to the twin (llama.cpp dequantizes the quantized file
 * with its own code), which a wrong twin blows up.
 */
export async function writeF32Twin(quantizedPath: string, outPath: string, threads = 1): Promise<string> {
  await quantize(quantizedPath, outPath, 'F32', { threads });
  const [q, twin] = await Promise.all([readGgufInfo(quantizedPath), readGgufInfo(outPath)]);
  const notF32 = twin.tensors.filter((t) => t.type !== 'F32').map((t) => `${t.name}:${t.type}`);
  if (notF32.length > 0) throw new Error(`writeF32Twin: ${outPath} still has non-F32 tensors: ${notF32.join(', ')}`);
  const shapes = (i: GgufInfo) => i.tensors.map((t) => `${t.name}[${t.shape.join(',')}]`).join(' ');
  if (shapes(q) !== shapes(twin)) throw new Error(`writeF32Twin: ${outPath} does not have the tensors of ${quantizedPath}`);
  for (const [k, v] of Object.entries(q.metadata)) {
    if (k === 'general.file_type') continue;
    if (!isDeepStrictEqual(twin.metadata[k], v)) throw new Error(`writeF32Twin: metadata '${k}' differs from ${quantizedPath}`);
  }
  return outPath;
}
