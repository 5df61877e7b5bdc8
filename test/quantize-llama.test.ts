// The whole-file quantizer against llama.cpp's (issue 18, part 5): for every target moerun writes,
// on the real stories260K and on synthetic MoE and MLA models, llama_model_quantize (node-llama-cpp's
// libllama, through test/oracle/llama_quantize.c) quantizes the same input with the same recipe, and
// the two files must have the same tensors in the same order, with the same types and shapes, the
// same bytes in every tensor, and the same general.file_type. Block types are llama-quantize's
// --pure runs; Q4_K_M, Q5_K_M and Q6_K are its per-tensor mixes.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundledModelPath, quantize, quantizeTypes, readGgufInfo, type QuantizeType } from 'moerun';
import { makeModel } from '../scripts/make-model.js';
import { llamaQuantizeFile } from './helpers/llama-quantize.js';
import { tensorBytes } from './helpers/twin.js';

const dir = mkdtempSync(path.join(tmpdir(), 'moerun-quantize-llama-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The targets moerun writes as llama.cpp's per-tensor mixes; every other target is pure. */
const MIXES = new Set<QuantizeType>(['Q4_K_M', 'Q5_K_M', 'Q6_K']);

const sources: Record<string, string> = {};
beforeAll(async () => {
  sources['stories260K'] = bundledModelPath;
  // 256-wide rows, so the K-quants apply without fallbacks; experts as 3-D tensors, 8 of them (the
  // mixes' n_expert == 8 rules); deepseek2's MLA tensors and leading dense layer.
  const moe = { arch: 'qwen3moe', nExpert: 8, nExpertUsed: 2 } as const;
  sources['qwen3moe'] = (await makeModel({ ...moe, out: path.join(dir, 'qwen3moe.gguf'), type: 'f32' })).path;
  sources['deepseek2'] = (await makeModel({ arch: 'deepseek2', out: path.join(dir, 'deepseek2.gguf'), type: 'f32' })).path;
  const f16 = (await makeModel({ ...moe, out: path.join(dir, 'qwen3moe-f16.gguf'), type: 'f16' })).path;
  sources['qwen3moe (F16 source)'] = f16;
}, 120_000);

interface Mismatch {
  what: string;
}

async function compareFiles(ours: string, theirs: string): Promise<{ tensors: number; bytes: number; mismatches: Mismatch[] }> {
  const [a, b] = await Promise.all([readGgufInfo(ours), readGgufInfo(theirs)]);
  const mismatches: Mismatch[] = [];
  if (a.metadata['general.file_type'] !== b.metadata['general.file_type']) {
    mismatches.push({ what: `general.file_type ${String(a.metadata['general.file_type'])} vs ${String(b.metadata['general.file_type'])}` });
  }
  const names = (i: typeof a): string[] => i.tensors.map((t) => t.name);
  if (names(a).join() !== names(b).join()) mismatches.push({ what: `tensor order: ${names(a).join(' ')} vs ${names(b).join(' ')}` });
  let bytes = 0;
  for (const t of a.tensors) {
    const u = b.tensors.find((x) => x.name === t.name);
    if (!u) {
      mismatches.push({ what: `${t.name}: not in llama.cpp's file` });
      continue;
    }
    if (t.type !== u.type || t.shape.join() !== u.shape.join()) {
      mismatches.push({ what: `${t.name}: ${t.type} [${t.shape}] vs ${u.type} [${u.shape}]` });
      continue;
    }
    const [x, y] = await Promise.all([tensorBytes(a, ours, t.name), tensorBytes(b, theirs, t.name)]);
    bytes += x.length;
    if (!Buffer.from(x).equals(Buffer.from(y))) {
      let first = 0;
      while (first < x.length && x[first] === y[first]) first++;
      mismatches.push({ what: `${t.name} (${t.type}): bytes differ from byte ${first} of ${x.length}` });
    }
  }
  return { tensors: a.tensors.length, bytes, mismatches };
}

describe("moerun's quantized files equal llama-quantize's, tensor by tensor and byte for byte", () => {
  const table: string[] = [];
  afterAll(() => table.length && console.log(['source / target          tensors    bytes compared  mismatches', ...table].join('\n')));

  for (const source of ['stories260K', 'qwen3moe', 'deepseek2', 'qwen3moe (F16 source)']) {
    // The F16 source checks the conversions from F16 on a few targets only.
    const targets = source.includes('F16') ? (['F32', 'BF16', 'Q8_0', 'Q4_K_M'] as const) : quantizeTypes;
    for (const target of targets) {
      it(`${source} → ${target}`, async () => {
        const slug = `${source.replace(/\W+/g, '-')}-${target}`;
        const ours = path.join(dir, `${slug}-moerun.gguf`);
        const theirs = path.join(dir, `${slug}-llama.gguf`);
        const r = await quantize(sources[source]!, ours, target, { threads: 2 });
        await llamaQuantizeFile(sources[source]!, theirs, r.fileType, MIXES.has(target) ? 'recipe' : 'pure');
        const c = await compareFiles(ours, theirs);
        table.push(`${`${source} / ${target}`.padEnd(24)} ${String(c.tensors).padStart(7)} ${String(c.bytes).padStart(16)}  ${c.mismatches.length}`);
        expect(c.mismatches.map((m) => m.what)).toEqual([]);
        expect(c.tensors).toBeGreaterThan(10);
      }, 60_000);
    }
  }
});
