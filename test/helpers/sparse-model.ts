// Models that declare more weight bytes than they take on disk (test/faults.test.ts,
// test/prebuild-win32.test.ts).
import { truncateSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { writeGguf } from '../../lib/gguf/writer.js';
import { makeModelSpec } from '../../scripts/make-model.js';

/**
 * A small llama model plus one unused F32 tensor whose declared size is `paddingBytes`: the file is
 * extended sparsely (no disk blocks), so a model "larger than RAM" costs nothing to make. The tensor
 * is written with 64 elements, then its ne0 is patched in the header and the file is extended.
 */
export async function sparseGiant(out: string, paddingBytes: number): Promise<void> {
  const spec = makeModelSpec({ arch: 'llama', out });
  const name = 'zz.padding';
  const written = await writeGguf(out, {
    ...spec,
    tensors: [...(spec.tensors ?? []), { name, type: 'F32', shape: [64], data: new Float32Array(64) }],
  });
  const elements = Math.ceil(paddingBytes / 4 / 64) * 64;
  const fh = await open(out, 'r+');
  try {
    const header = Buffer.alloc(written.dataOffset);
    await fh.read(header, 0, header.length, 0);
    // Tensor info: u64 name length, the name, u32 n_dims, then ne0 as u64.
    const at = header.indexOf(Buffer.from(name)) + name.length;
    if (header.readUInt32LE(at) !== 1 || header.readBigUInt64LE(at + 4) !== 64n) throw new Error(`${out}: the padding tensor's info is not where expected`);
    const ne0 = Buffer.alloc(8);
    ne0.writeBigUInt64LE(BigInt(elements));
    await fh.write(ne0, 0, 8, at + 4);
  } finally {
    await fh.close();
  }
  const padding = written.tensors.find((t) => t.name === name)!;
  truncateSync(out, written.dataOffset + padding.offset + elements * 4);
}
