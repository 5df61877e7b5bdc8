// llama.cpp's quantizer as a test tool: test/oracle/llama_quantize.c built against node-llama-cpp's
// prebuilt libllama (headers from its bundled source, cloned locally once), for files in the types
// moerun reads but does not write yet (IQ1/IQ2/IQ3, TQ1_0, TQ2_0, MXFP4).
import path from 'node:path';

import { buildKey, cachedTool, compileStep, llamaBins, llamaSourceDir } from './llama-tools.js';
import { run } from './run.js';

const root = path.join(__dirname, '..', '..');
const driverSource = path.join(root, 'test/oracle/llama_quantize.c');

/**
 * The `llama_ftype` whose default tensor type is each type (the "pure" target of
 * llama_model_quantize). IQ2_S is LLAMA_FTYPE_MOSTLY_IQ2_M's: MOSTLY_IQ2_S (28) writes IQ2_XS.
 */
export const LLAMA_FTYPE = {
  IQ2_XXS: 19, IQ2_XS: 20, IQ3_XXS: 23, IQ1_S: 24, IQ3_S: 26, IQ2_S: 29, IQ1_M: 31, TQ1_0: 36, TQ2_0: 37, MXFP4: 38,
} as const;
export type LlamaQuantType = keyof typeof LLAMA_FTYPE;

/** ggml type ids for token_embd / output. */
export const GGML_TYPE = { F32: 0, F16: 1, Q8_0: 8, Q6_K: 14 } as const;

/** Clones the bundle's headers (once) and builds the driver (cached by its source and the bundle). */
export function llamaQuantizer(): Promise<string> {
  return cachedTool('llama_quantize', buildKey([driverSource]), async (out) => {
    const src = await llamaSourceDir();
    await compileStep('llama_quantize', 'gcc', ['-O1', '-o', out, driverSource, `-I${src}/include`, `-I${src}/ggml/include`, `-L${llamaBins}`,
      '-l:libllama.v0.5.0.so', '-l:libggml.v0.5.0.so', '-lggml-base', '-lm', `-Wl,-rpath,${llamaBins}`]);
  });
}

/**
 * Quantizes `inPath` to `outPath` with llama.cpp: every quantizable tensor as `type` (llama.cpp's
 * fallback where a row is not whole blocks), token_embd and output as the given types, with an
 * importance matrix of ones.
 */
export async function llamaQuantize(inPath: string, outPath: string, type: LlamaQuantType,
  tokenEmbdType: number = GGML_TYPE.F32, outputType: number = GGML_TYPE.Q8_0): Promise<void> {
  const exe = await llamaQuantizer();
  const r = await run(exe, [inPath, outPath, String(LLAMA_FTYPE[type]), String(tokenEmbdType), String(outputType)]);
  if (r.status !== 0) throw new Error(`llama_quantize ${inPath} ${type} failed:\n${r.output}`);
}

/**
 * What `llama-quantize [--pure] [OPTIONS] IN OUT FTYPE` writes: llama.cpp's default parameters and
 * no importance matrix; `recipe` applies the file type's per-tensor mix, `pure` gives every
 * quantizable tensor the file type's own type. `options` are llama-quantize's (`--tensor-type P=T`,
 * `--output-tensor-type T`, `--token-embedding-type T`), plus `--imatrix-ones` (a matrix of ones).
 */
export async function llamaQuantizeFile(inPath: string, outPath: string, ftype: number, mode: 'recipe' | 'pure', options: string[] = []): Promise<void> {
  const exe = await llamaQuantizer();
  const r = await run(exe, [inPath, outPath, String(ftype), mode, ...options]);
  if (r.status !== 0) throw new Error(`llama_quantize ${inPath} ${ftype} ${mode} failed:\n${r.output}`);
}

/**
 * The type llama.cpp gives each tensor for `llama-quantize --dry-run [OPTIONS] IN x FTYPE` (no file
 * written, nothing quantized), in its order, parsed from its per-tensor log: `type = SOURCE` and,
 * for tensors it converts, `(NEW)`. Type names as GGUF's (upper case).
 */
export async function llamaQuantizePlan(inPath: string, ftype: number, mode: 'recipe' | 'pure', options: string[] = []): Promise<{ name: string; type: string }[]> {
  const exe = await llamaQuantizer();
  const r = await run(exe, [inPath, '/dev/null', String(ftype), mode, '--dry-run', ...options]);
  if (r.status !== 0) throw new Error(`llama_quantize --dry-run ${inPath} ${ftype} ${mode} failed:\n${r.output}`);
  const plan: { name: string; type: string }[] = [];
  for (const m of r.stdout.matchAll(/^\[\s*\d+\/\s*\d+\] (\S+)\s+- \[[^\]]*\], type =\s*(\w+), size =[^\n(]*(?:\((\w+)\))?$/gm)) {
    plan.push({ name: m[1]!, type: (m[3] ?? m[2]!).toUpperCase() });
  }
  if (plan.length === 0) throw new Error(`llama_quantize --dry-run printed no tensors:\n${r.output}`);
  return plan;
}
