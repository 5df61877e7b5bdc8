// The whole-file quantizer against llama.cpp's (issues 18 and 19): for every target, on the real
// stories260K and on synthetic MoE and MLA models, llama_model_quantize (node-llama-cpp's libllama,
// through test/oracle/llama_quantize.c) quantizes the same input as `llama-quantize IN OUT TYPE`
// would, and the two files must have the same tensors in the same order, with the same types and
// shapes, the same bytes in every tensor, and the same general.file_type. Every target named like a
// llama.cpp file type is its per-tensor recipe; Q3_K, Q4_K and Q5_K (and `pure: true`) are --pure
// runs; tensorTypes / outputTensorType / tokenEmbeddingType are its --tensor-type,
// --output-tensor-type and --token-embedding-type.
//
// The mixes moerun refuses (a tensor type it has no quantizer for yet, or one llama.cpp only writes
// with an importance matrix) must be refused with ERR_UNSUPPORTED naming what is missing, and their
// planned per-tensor types must still equal llama.cpp's (`llama-quantize --dry-run`, with an
// importance matrix of ones where llama.cpp needs one).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundledModelPath, MoerunError, quantize, quantizeTypes, readGgufInfo, type QuantizeOptions, type QuantizeType } from 'moerun';
import { planTensors } from '../lib/quantize.js';
import { LLAMA_FILE_TYPES, type LlamaFileType } from '../lib/quantize/recipes.js';
import { makeModel } from '../scripts/make-model.js';
import { computeImatrix, writeImatrix } from '../lib/imatrix.js';
import { llamaQuantizeFile, llamaQuantizePlan } from './helpers/llama-quantize.js';
import { tensorBytes } from './helpers/twin.js';

const dir = mkdtempSync(path.join(tmpdir(), 'moerun-quantize-llama-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** moerun targets that are pure runs (`llama-quantize --pure`); every other target is its file type's recipe. */
const PURE = new Set<QuantizeType>(['Q3_K', 'Q4_K', 'Q5_K']);

/**
 * The targets moerun refuses without an importance matrix, and why: `quantizer` (a tensor type it
 * cannot write yet) and/or `imatrix` (llama.cpp writes these mixes only with an importance matrix;
 * with one they are compared byte for byte below). Any other refusal fails the test.
 */
const REFUSED: Partial<Record<QuantizeType, { quantizer?: string; imatrix?: true }>> = {
  Q2_K_S: { imatrix: true },
  IQ1_S: { imatrix: true },
  IQ1_M: { imatrix: true },
  IQ2_XXS: { imatrix: true },
  IQ2_XS: { imatrix: true },
  IQ2_S: { imatrix: true },
  IQ2_M: { imatrix: true },
  IQ3_XXS: { imatrix: true },
  IQ3_XS: { imatrix: true },
};

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

interface Comparison {
  tensors: number;
  bytes: number;
  mismatches: string[];
}

/** Tensor lists (order, types, shapes) and file types; with `bytesToo`, every tensor's bytes. */
async function compareFiles(ours: string, theirs: string, bytesToo = true): Promise<Comparison> {
  const [a, b] = await Promise.all([readGgufInfo(ours), readGgufInfo(theirs)]);
  const mismatches: string[] = [];
  if (a.metadata['general.file_type'] !== b.metadata['general.file_type']) {
    mismatches.push(`general.file_type ${String(a.metadata['general.file_type'])} vs ${String(b.metadata['general.file_type'])}`);
  }
  const names = (i: typeof a): string[] => i.tensors.map((t) => t.name);
  if (names(a).join() !== names(b).join()) mismatches.push(`tensor order: ${names(a).join(' ')} vs ${names(b).join(' ')}`);
  let bytes = 0;
  for (const t of a.tensors) {
    const u = b.tensors.find((x) => x.name === t.name);
    if (!u) {
      mismatches.push(`${t.name}: not in llama.cpp's file`);
      continue;
    }
    if (t.type !== u.type || t.shape.join() !== u.shape.join()) {
      mismatches.push(`${t.name}: ${t.type} [${t.shape}] vs ${u.type} [${u.shape}]`);
      continue;
    }
    if (!bytesToo) continue;
    const [x, y] = await Promise.all([tensorBytes(a, ours, t.name), tensorBytes(b, theirs, t.name)]);
    bytes += x.length;
    if (!Buffer.from(x).equals(Buffer.from(y))) {
      let first = 0;
      while (first < x.length && x[first] === y[first]) first++;
      mismatches.push(`${t.name} (${t.type}): bytes differ from byte ${first} of ${x.length}`);
    }
  }
  return { tensors: a.tensors.length, bytes, mismatches };
}

/** llama-quantize's options for the same choices. */
function llamaOptions(o: QuantizeOptions): string[] {
  const args: string[] = [];
  if (typeof o.imatrix === 'string') args.push('--imatrix', o.imatrix);
  for (const t of o.tensorTypes ?? []) args.push('--tensor-type', `${t.pattern}=${t.type}`);
  if (o.outputTensorType) args.push('--output-tensor-type', o.outputTensorType);
  if (o.tokenEmbeddingType) args.push('--token-embedding-type', o.tokenEmbeddingType);
  return args;
}

const table: string[] = [];
afterAll(() => table.length && console.log(['source / target                      tensors    bytes compared  mismatches', ...table].join('\n')));
function record(label: string, c: Comparison): void {
  table.push(`${label.padEnd(36)} ${String(c.tensors).padStart(7)} ${String(c.bytes).padStart(16)}  ${c.mismatches.length}`);
}

/** Quantizes with both and compares; returns false (after checking the refusal) when moerun refuses. */
async function quantizeBoth(source: string, target: QuantizeType, options: QuantizeOptions = {}, label = ''): Promise<boolean> {
  const slug = `${source.replace(/\W+/g, '-')}-${target}${label.replace(/\W+/g, '-')}`;
  const ours = path.join(dir, `${slug}-moerun.gguf`);
  const theirs = path.join(dir, `${slug}-llama.gguf`);
  const r = await quantize(sources[source]!, ours, target, { threads: 2, ...options }).catch((e: unknown) => e);
  const refused = options.imatrix === undefined ? REFUSED[target] : undefined;
  if (r instanceof MoerunError && r.code === 'ERR_UNSUPPORTED' && refused) {
    if (refused.quantizer) expect(r.message).toMatch(new RegExp(`needs the [A-Z0-9_, ]*\\b${refused.quantizer}\\b`));
    if (refused.imatrix) expect(r.message).toContain('only with an importance matrix');
    return false;
  }
  if (!(r && typeof r === 'object' && 'fileType' in r)) throw r;
  const mode = PURE.has(target) || options.pure ? 'pure' : 'recipe';
  await llamaQuantizeFile(sources[source]!, theirs, r.fileType, mode, llamaOptions(options));
  const c = await compareFiles(ours, theirs);
  record(`${source} / ${target}${label}`, c);
  expect(c.mismatches).toEqual([]);
  expect(c.tensors).toBeGreaterThan(10);
  return true;
}

describe("moerun's quantized files equal llama-quantize's, tensor by tensor and byte for byte", () => {
  for (const source of ['stories260K', 'qwen3moe', 'deepseek2', 'qwen3moe (F16 source)']) {
    // The F16 source checks the conversions from F16 on a few targets only.
    const targets = source.includes('F16') ? (['F32', 'BF16', 'Q8_0', 'Q4_K_M'] as const) : quantizeTypes.filter((t) => !REFUSED[t]);
    for (const target of targets) {
      it(`${source} → ${target}`, async () => {
        expect(await quantizeBoth(source, target)).toBe(true);
      }, 60_000);
    }
  }

  // Hand-made mixes: llama-quantize's --tensor-type (first match wins; patterns lower-cased),
  // --output-tensor-type, --token-embedding-type and --pure, on the MoE and MLA models.
  const dynamic: QuantizeOptions = {
    tensorTypes: [
      { pattern: 'FFN_(UP|GATE)_EXPS', type: 'Q2_K' },
      { pattern: 'blk\\.0\\.', type: 'Q8_0' },
      { pattern: 'ffn_down', type: 'IQ4_XS' },
    ],
    outputTensorType: 'Q8_0',
    tokenEmbeddingType: 'Q4_K',
  };
  const mla: QuantizeOptions = { tensorTypes: [{ pattern: 'attn_k_b', type: 'Q6_K' }, { pattern: '_shexp', type: 'Q5_0' }] };
  const cases: [string, QuantizeType, QuantizeOptions, string][] = [
    ['qwen3moe', 'Q4_K_M', dynamic, ' + overrides'],
    ['qwen3moe', 'Q3_K_M', { pure: true }, ' --pure'],
    ['deepseek2', 'Q3_K_M', mla, ' + overrides'],
    ['deepseek2', 'Q2_K', { ...dynamic, pure: true }, ' + overrides --pure'],
  ];
  for (const [source, target, options, label] of cases) {
    it(`${source} → ${target}${label}`, async () => {
      expect(await quantizeBoth(source, target, options, label)).toBe(true);
    }, 60_000);
  }
});

// With an importance matrix (moerun's own, computed on the model, one file given to both): the
// mixes llama.cpp writes only with one, and targets whose quantizers then take another path
// (K-quants, the legacy 4/5-bit types, IQ4_NL / IQ4_XS, also as the IQ types' fallback for
// short rows), byte for byte.
describe('with an importance matrix: the same files as llama-quantize --imatrix', () => {
  const imatrixOf: Record<string, string> = {};
  const calibration = Array.from({ length: 1500 }, (_, i) => ['once', 'upon', 'a', 'time', 'there', 'was', 'a', 'little', 'girl', 'named', 'lily', 'who', 'loved', 'the', 'park'][(i * 7919) % 15]).join(' ');
  beforeAll(async () => {
    for (const source of ['stories260K', 'qwen3moe', 'deepseek2']) {
      const out = path.join(dir, `${source}-imatrix.gguf`);
      await writeImatrix(out, await computeImatrix(sources[source]!, calibration, { contextSize: 64, chunks: 2, threads: 2 }));
      imatrixOf[source] = out;
    }
  }, 120_000);
  // For CI time, the IQ2_XXS, IQ2_S (IQ2_XS tensors), IQ2_M (IQ2_S tensors) and IQ3_XS mixes (the
  // lattice searches take 10-30 s a file here); IQ1_S, IQ3_XXS (qwen3moe) and IQ2_XS, IQ1_M
  // (deepseek2) also pass (EXTRA=1).
  const extra: [string, QuantizeType][] = [
    ['qwen3moe', 'IQ1_S'], ['qwen3moe', 'IQ3_XXS'], ['deepseek2', 'IQ2_XS'], ['deepseek2', 'IQ1_M'],
  ];
  const cases: [string, QuantizeType][] = [
    ['qwen3moe', 'IQ2_XXS'], ['qwen3moe', 'IQ2_M'], ['qwen3moe', 'Q2_K_S'], ['deepseek2', 'IQ3_XS'], ['deepseek2', 'IQ2_S'], ['deepseek2', 'Q3_K_M'], ['deepseek2', 'Q6_K'],
    ['deepseek2', 'Q4_0'], ['deepseek2', 'Q4_1'], ['deepseek2', 'Q5_1'], ['deepseek2', 'IQ4_NL'],
    ['stories260K', 'Q5_0'], ['stories260K', 'IQ4_XS'],
    ...(process.env.EXTRA === '1' ? extra : []),
  ];
  for (const [source, target] of cases) {
    it(`${source} → ${target} --imatrix`, async () => {
      expect(await quantizeBoth(source, target, { imatrix: imatrixOf[source]! }, ' --imatrix')).toBe(true);
    }, 60_000);
  }
});

describe('the mixes moerun cannot write yet: refused, and planned as llama.cpp plans them', () => {
  for (const source of ['qwen3moe', 'deepseek2']) {
    for (const target of quantizeTypes.filter((t) => REFUSED[t])) {
      it(`${source} → ${target}`, async () => {
        const written = await quantizeBoth(source, target);
        if (written) return; // its quantizers have landed: compared byte for byte above
        // llama.cpp's plan for the same file type (llama-quantize --dry-run, with an importance
        // matrix of ones where the mix needs one: it changes a few IQ3_XXS rules) must give every
        // tensor the type ours gives it.
        const hasImatrix = REFUSED[target]!.imatrix === true;
        const llama = await llamaQuantizePlan(sources[source]!, LLAMA_FILE_TYPES[target as LlamaFileType].id, 'recipe', hasImatrix ? ['--imatrix-ones'] : []);
        const plan = planTensors(await readGgufInfo(sources[source]!), target, { pure: false, overrides: [], hasImatrix });
        expect(plan.map((p) => `${p.tensor.name} ${p.type}`)).toEqual(llama.map((t) => `${t.name} ${t.type}`));
        table.push(`${`${source} / ${target} (plan)`.padEnd(36)} ${String(plan.length).padStart(7)} ${'types only'.padStart(16)}  0`);
      }, 60_000);
    }
  }
});

// The layer rules (use_more_bits, the first eighth / sixteenth of the layers, Q3_K_M's first two
// attn_v) need more layers than the models above have: on a 16-layer dense llama with GQA 4, every
// target's plan, with and without an importance matrix, against llama-quantize --dry-run's.
describe('plans on a 16-layer model equal llama-quantize --dry-run, for every target', () => {
  let deep = '';
  beforeAll(async () => {
    deep = (await makeModel({ arch: 'llama', nLayer: 16, nFf: 256, nHead: 8, nHeadKv: 2, out: path.join(dir, 'llama16.gguf'), type: 'f32' })).path;
  }, 120_000);
  for (const hasImatrix of [false, true]) {
    it(hasImatrix ? 'with an importance matrix' : 'without an importance matrix', async () => {
      const info = await readGgufInfo(deep);
      for (const target of quantizeTypes) {
        const pure = PURE.has(target);
        const ftype = LLAMA_FILE_TYPES[(pure ? `${target}_S` : target) as LlamaFileType].id; // Q4_K: Q4_K_S --pure
        const llama = await llamaQuantizePlan(deep, ftype, pure ? 'pure' : 'recipe', hasImatrix ? ['--imatrix-ones'] : []);
        const plan = planTensors(info, target, { pure: false, overrides: [], hasImatrix });
        expect(plan.map((p) => `${target} ${p.tensor.name} ${p.type}`)).toEqual(llama.map((t) => `${target} ${t.name} ${t.type}`));
      }
      table.push(`${`llama16 / all ${quantizeTypes.length} (plan${hasImatrix ? ', imatrix' : ''})`.padEnd(36)} ${String(info.tensors.length).padStart(7)} ${'types only'.padStart(16)}  0`);
    }, 120_000);
  }
});

