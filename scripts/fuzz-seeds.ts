// fuzz-seeds: the seed corpus of the model fuzzer (native/fuzz/fuzz_model.cpp): every architecture
// make-model writes (the eight cases of test/arch.test.ts), as F32, F16 and quantized files, plus
// the bundled stories260K, each a whole file. Shapes are shrunk from make-model's defaults (64
// wide, 260 tokens) so a file is 40-700 KB and the fuzzer runs hundreds of inputs a second
// instead of tens; the full-size files run under the sanitizers in test/sanitizers.test.ts.
//
//   npx tsx scripts/fuzz-seeds.ts DIR
import { copyFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { quantize, type QuantizeType } from '../lib/quantize.js';
import { makeModel, type MakeModelOptions } from './make-model.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** make-model's smallest shapes that every architecture accepts. */
const tiny = { nEmbd: 64, nHead: 2, nHeadKv: 2, nFf: 64, nVocab: 260, nFfExp: 32 } as const;

/** The architecture cases of test/arch.test.ts and test/kernels.test.ts, at tiny shapes. */
export const seedArchitectures: Omit<MakeModelOptions, 'out'>[] = [
  { arch: 'llama', nExpert: 4, nExpertUsed: 2 },
  { arch: 'llama' },
  { arch: 'qwen2' },
  { arch: 'qwen2moe', nFfShexp: 32 },
  { arch: 'qwen3moe', nExpert: 8 },
  { arch: 'olmoe' },
  { arch: 'bailingmoe2', nRot: 16 },
  { arch: 'deepseek2', nHeadKv: 1, nRot: 16, kvLoraRank: 32, qLoraRank: 32 },
  { arch: 'deepseek2', nHeadKv: 1, nRot: 16, kvLoraRank: 32, qLoraRank: 0 },
];

/** Quantized seeds: rows of 64 take the 32-block formats (K-quants fall back as in llama.cpp). */
const seedQuantTypes: QuantizeType[] = ['Q8_0', 'Q4_0', 'Q4_K_M', 'IQ4_XS'];

/** Writes the seed corpus into `dir`; returns the files' paths. */
export async function makeFuzzSeeds(dir: string): Promise<string[]> {
  mkdirSync(dir, { recursive: true });
  const files: string[] = [];
  for (const [i, c] of seedArchitectures.entries()) {
    const base = path.join(dir, `${i}-${c.arch}`);
    const options = { ...tiny, ...(c.arch === 'olmoe' ? { nHeadKv: tiny.nHead } : {}), ...c };
    for (const type of ['f32', 'f16'] as const) {
      await makeModel({ ...options, type, out: `${base}-${type}.gguf` });
      files.push(`${base}-${type}.gguf`);
    }
    for (const type of seedQuantTypes) {
      await quantize(`${base}-f32.gguf`, `${base}-${type}.gguf`, type, { threads: 1 });
      files.push(`${base}-${type}.gguf`);
    }
  }
  const stories = path.join(dir, 'stories260K.gguf');
  copyFileSync(path.join(root, 'models', 'stories260K.gguf'), stories);
  files.push(stories);
  return files;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const dir = process.argv[2];
  if (!dir) {
    console.error('usage: npx tsx scripts/fuzz-seeds.ts DIR');
    process.exit(2);
  }
  const files = await makeFuzzSeeds(dir);
  console.log(`fuzz-seeds: ${files.length} files in ${dir}`);
}
