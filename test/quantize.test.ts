// The quantizer (lib/quantize.ts): option errors, llama.cpp's per-tensor recipe, byte equality with
// llama.cpp's own quantizer, stories260K quantized and decoded, and synthetic 256-aligned llama
// models per type run by llama.cpp (node-llama-cpp) and by moerun against their F32 twin.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundledModelPath, loadModel, MoerunError, quantize, readGgufInfo, type QuantizeType } from 'moerun';

import { writeGguf } from '../lib/gguf/writer.js';
import { makeModel } from '../scripts/make-model.js';
import { compareLogits, nmse } from './helpers/metrics.js';
import { llamaCppGreedy, llamaCppLogits } from './helpers/oracle.js';
import { run } from './helpers/run.js';
import { tensorBytes, tensorFloats, writeF32Twin } from './helpers/twin.js';

const dir = mkdtempSync(path.join(tmpdir(), 'moerun-quantize-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const out = (name: string): string => path.join(dir, name);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

// =================================================================================================
describe('quantize() options', () => {
  it('rejects bad arguments with exact messages', async () => {
    await expect(quantize('', out('x.gguf'), 'Q8_0')).rejects.toThrow("Expected a non-empty string for inPath but received \"\" (string)");
    await expect(quantize(bundledModelPath, out('x.gguf'), 'Q4_K_X' as QuantizeType)).rejects.toThrow(
      /^Expected one of 'F32', 'F16', 'BF16', 'Q8_0', .*'Q4_K_M', .*'IQ3_M' for type but received "Q4_K_X" \(string\)$/,
    );
    await expect(quantize(bundledModelPath, out('x.gguf'), 'Q8_0', { thread: 2 } as never)).rejects.toThrow(
      "Unknown option 'thread' for quantize(); did you mean 'threads'?. Known options: threads, onProgress, signal, tensorTypes, outputTensorType, tokenEmbeddingType, pure",
    );
    await expect(quantize(bundledModelPath, out('x.gguf'), 'Q8_0', { threads: 0 })).rejects.toThrow(
      'Expected a positive integer for threads but received 0 (number)',
    );
    const err = await quantize(bundledModelPath, out('x.gguf'), 'Q8_0', { signal: 'no' as never }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MoerunError);
    expect((err as MoerunError).code).toBe('ERR_INVALID_ARGUMENT');
    await expect(quantize(out('missing.gguf'), out('x.gguf'), 'Q8_0')).rejects.toMatchObject({ code: 'ERR_IO' });
    expect(existsSync(out('x.gguf'))).toBe(false);
  });

  it('checks tensor-type overrides, and refuses what it cannot write before writing anything', async () => {
    const q = (opts: object, type: QuantizeType = 'Q4_K_M') => quantize(bundledModelPath, out('o.gguf'), type, opts as never);
    await expect(q({ tensorTypes: 'x' })).rejects.toThrow('Expected an array of { pattern, type } for tensorTypes but received "x" (string)');
    await expect(q({ tensorTypes: [{ pattern: '', type: 'Q4_K' }] })).rejects.toThrow('Expected a non-empty string for tensorTypes[0].pattern');
    await expect(q({ tensorTypes: [{ pattern: 'a(', type: 'Q4_K' }] })).rejects.toThrow(/^tensorTypes\[0\]\.pattern is not a regular expression: /);
    await expect(q({ tensorTypes: [{ pattern: 'attn', type: 'Q9_K' }] })).rejects.toThrow(
      "Expected a tensor type name ('Q4_K', 'F16', ...) for tensorTypes[0].type but received \"Q9_K\" (string)",
    );
    await expect(q({ outputTensorType: 7 })).rejects.toThrow("Expected a tensor type name ('Q4_K', 'F16', ...) for outputTensorType but received 7 (number)");
    await expect(q({ tensorTypes: [{ pattern: 'attn', type: 'Q4_K' }] }, 'F16')).rejects.toThrow('tensorTypes apply to quantized targets only, not F16');
    await expect(q({ pure: 'yes' })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    // A type moerun has no quantizer for: refused, naming it and a tensor that needs it; no file.
    // (stories260K's 64-wide rows: an IQ type would fall back to IQ4_NL; MXFP4's 32-blocks stay)
    const err = await q({ tensorTypes: [{ pattern: 'ffn_up', type: 'MXFP4' }] }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_UNSUPPORTED' });
    expect((err as Error).message).toBe(
      "quantize: cannot write Q4_K_M: it needs the MXFP4 quantizer, which moerun does not have yet: MXFP4 (e.g. 'blk.0.ffn_up.weight')",
    );
    expect(existsSync(out('o.gguf'))).toBe(false);
  });

  it('leaves no file behind when aborted, before or during the work', async () => {
    const before = new AbortController();
    before.abort();
    await expect(quantize(bundledModelPath, out('aborted.gguf'), 'Q8_0', { signal: before.signal })).rejects.toMatchObject({ code: 'ERR_ABORTED' });
    const during = new AbortController();
    let calls = 0;
    const p = quantize(bundledModelPath, out('aborted.gguf'), 'Q8_0', {
      signal: during.signal,
      onProgress: () => {
        if (++calls === 3) during.abort();
      },
    });
    await expect(p).rejects.toMatchObject({ code: 'ERR_ABORTED' });
    expect(calls).toBe(3);
    expect(readdirSync(dir).filter((f) => f.startsWith('aborted'))).toEqual([]); // no temp file either
  });
});

// =================================================================================================
describe('moerun quantize (CLI)', () => {
  const cli = path.join(root, 'dist', 'cli.js');

  it('quantizes a file and reports what it wrote; a bad TYPE is a clear error', async () => {
    const file = out('cli-q8.gguf');
    const ok = await run(process.execPath, [cli, 'quantize', bundledModelPath, file, 'q8_0', '--threads', '2']);
    expect(ok.status).toBe(0);
    expect(ok.stdout).toMatch(/file type 7; tensors: 32 Q8_0, 11 F32, 5 F16; 5 fell back/);
    expect(existsSync(file)).toBe(true);
    const bad = await run(process.execPath, [cli, 'quantize', bundledModelPath, out('cli-bad.gguf'), 'Q4_K_X']);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/Expected one of 'F32', .* for type but received "Q4_K_X" \(string\) \[ERR_INVALID_ARGUMENT\]/);
    expect(existsSync(out('cli-bad.gguf'))).toBe(false);
    // --tensor-type: ffn_up and ffn_gate of the 5 layers as Q4_0, the rest as Q8_0 decides
    const mixed = await run(process.execPath, [cli, 'quantize', bundledModelPath, out('cli-mixed.gguf'), 'Q8_0', '--tensor-type', 'ffn_(up|gate)=q4_0']);
    expect(mixed.status).toBe(0);
    expect(mixed.stdout).toMatch(/tensors: .*\b22 Q8_0\b/);
    expect(mixed.stdout).toMatch(/\b10 Q4_0\b/);
    const badOverride = await run(process.execPath, [cli, 'quantize', bundledModelPath, out('cli-bad.gguf'), 'Q8_0', '--tensor-type', 'ffn_up']);
    expect(badOverride.status).toBe(1);
    expect(badOverride.stderr).toContain('Expected PATTERN=TYPE for --tensor-type but received "ffn_up" (string)');
  });

  it('stops on Ctrl-C (SIGINT) and leaves no file, not even the temp file', async () => {
    // One 128 MiB F32 matrix, quantized to IQ4_XS (the slowest quantizer): seconds of work.
    const src = out('cli-big.gguf');
    const values = new Float32Array(4096 * 8192);
    for (let i = 0, x = 1; i < values.length; i++) values[i] = ((x = Math.imul(x, 1664525) + 1013904223) >> 8) / 2 ** 23;
    await writeGguf(src, { metadata: { 'general.architecture': 'llama' }, tensors: [{ name: 'blk.0.ffn_up.weight', type: 'F32', shape: [4096, 8192], data: values }] });
    const dst = out('cli-interrupted.gguf');
    const child = spawn(process.execPath, [cli, 'quantize', src, dst, 'IQ4_XS', '--threads', '2'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    let running = true;
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => ((running = false), resolve(code))));
    // Wait until the temp file exists (the signal handlers are installed and the work has
    // started), however long a loaded machine takes to get there; then interrupt. IQ4_XS of
    // 32M weights takes seconds on 2 threads, so the child cannot finish before the signal.
    const tmp = (): string[] => readdirSync(dir).filter((f) => f.startsWith('cli-interrupted'));
    while (running && tmp().length === 0) await new Promise((r) => setTimeout(r, 10));
    expect(running, `the child exited before its temp file was seen: ${stderr}`).toBe(true);
    expect(tmp().length).toBe(1);
    child.kill('SIGINT');
    expect(await exited).toBe(130);
    expect(stderr).toContain('interrupted; no output file was written');
    expect(tmp()).toEqual([]);
  });
});

// =================================================================================================
// stories260K: rows are 64 wide (embeddings, attention, ffn_gate/up) or 172 wide (ffn_down), so
// most tensors cannot take 256-element K-quant blocks. What llama.cpp's quantizer does, and we do:
// - norms (1-D) stay F32: llama.cpp never quantizes 1-D tensors;
// - 64-wide rows are a whole number of 32-blocks: Q8_0/Q4_0 apply directly; K-quants fall back
//   (Q6_K → Q8_0, Q4_K → Q5_0, Q5_K → Q5_1); the Q4_K_M/Q5_K_M output rule gives Q8_0 (not Q6_K);
// - ffn_down rows (172) are not even a multiple of 32, so every quantized type falls back to F16.
describe('stories260K quantized by us', () => {
  let golden: number[] = [];
  beforeAll(async () => {
    await using model = await loadModel(bundledModelPath, { threads: 2 });
    golden = await greedy(model, 60);
  });

  async function greedy(model: Awaited<ReturnType<typeof loadModel>>, n: number): Promise<number[]> {
    const session = model.createSession({ contextSize: 256 });
    const tokens: number[] = [];
    for await (const chunk of session.generate('Once upon a time', { temperature: 0, maxTokens: n })) tokens.push(chunk.token);
    await session.dispose();
    return tokens;
  }

  it('follows llama.cpp per tensor, copies metadata with its types, sets general.file_type', async () => {
    const file = out('stories-q4km.gguf');
    const r = await quantize(bundledModelPath, file, 'Q4_K_M', { threads: 2 });
    const src = await readGgufInfo(bundledModelPath);
    const dst = await readGgufInfo(file);
    const type = (name: string): string => dst.tensors.find((t) => t.name === name)!.type;
    expect(r.fileType).toBe(15); // LLAMA_FTYPE_MOSTLY_Q4_K_M
    expect(dst.metadata['general.file_type']).toBe(15);
    expect(dst.metadata['general.quantization_version']).toBe(2);
    for (const [k, v] of Object.entries(src.metadata)) expect(dst.metadata[k], k).toEqual(v);
    expect(type('output_norm.weight')).toBe('F32');
    expect(type('blk.3.ffn_norm.weight')).toBe('F32');
    expect(type('output.weight')).toBe('Q8_0'); // output rule: 64 % 256 ≠ 0 → Q8_0
    expect(type('token_embd.weight')).toBe('Q5_0'); // Q4_K falls back to Q5_0
    expect(type('blk.0.attn_q.weight')).toBe('Q5_0');
    // attn_v: use_more_bits(i, 5) holds for i = 2, 4 → Q6_K, which falls back to Q8_0.
    expect([0, 1, 2, 3, 4].map((i) => type(`blk.${i}.attn_v.weight`))).toEqual(['Q5_0', 'Q5_0', 'Q8_0', 'Q5_0', 'Q8_0']);
    expect(type('blk.1.ffn_down.weight')).toBe('F16'); // 172 is not a multiple of 32
    // Written in llama.cpp's order: non-layer tensors first, then by layer, then by name.
    expect(dst.tensors.slice(0, 4).map((t) => t.name)).toEqual(['output.weight', 'output_norm.weight', 'token_embd.weight', 'blk.0.attn_k.weight']);
    expect(r.tensors.filter((t) => t.fallback).length).toBe(36); // all 2-D tensors but output.weight
  });

  it.each(['Q8_0', 'Q6_K', 'Q4_K_M'] as const)('decodes at %s to text sharing ≥ 20 leading tokens with F32', async (type) => {
    const file = out(`stories-${type}.gguf`);
    await quantize(bundledModelPath, file, type, { threads: 2 });
    await using model = await loadModel(file, { threads: 2 });
    const tokens = await greedy(model, 60);
    let shared = 0;
    while (shared < golden.length && tokens[shared] === golden[shared]) shared++;
    console.log(`stories260K ${type}: ${shared} of 60 greedy tokens shared with F32: ${JSON.stringify(model.detokenize(tokens))}`);
    expect(shared).toBeGreaterThanOrEqual(20);
  });

  // At Q5_K_M every 64-wide tensor falls back to Q5_1, and this tiny model's greedy text leaves the
  // F32 story after 16 tokens ("play with her toys" instead of "play outside"): llama.cpp does the
  // same on the same file, so the check here is that we decode exactly what llama.cpp decodes.
  it('decodes at Q5_K_M exactly as llama.cpp does on the same file', async () => {
    const file = out('stories-Q5_K_M.gguf');
    await quantize(bundledModelPath, file, 'Q5_K_M', { threads: 2 });
    await using model = await loadModel(file, { threads: 2 });
    const prompt = [1, ...model.tokenize('Once upon a time', { addBos: false })];
    const ref = await llamaCppGreedy(file, prompt, 40, { contextSize: 128 });
    const session = model.createSession({ contextSize: 128, kvCacheType: 'f32' });
    const ours: number[] = [];
    for await (const chunk of session.generate(prompt, { maxTokens: 40, temperature: 0 })) ours.push(chunk.token);
    expect(ours).toEqual(ref);
    expect(ours).not.toEqual(golden.slice(0, 40)); // it really is the diverging case
  });
});

// =================================================================================================
// llama.cpp's quantizer on the same data: test/fixtures/quant/<TYPE>.bin holds seeded random floats,
// llama.cpp's blocks for them (ggml_quantize_chunk, as llama-quantize calls it) and its
// dequantization (scripts/make-quant-fixtures.py). We put the floats into a GGUF, quantize the file,
// and compare bytes and reconstruction error.
describe("quantize() against llama.cpp's quantizer (fixtures)", () => {
  const types = ['Q4_0', 'Q4_1', 'Q5_0', 'Q5_1', 'Q8_0', 'Q2_K', 'Q3_K', 'Q4_K', 'Q5_K', 'Q6_K', 'IQ4_NL', 'IQ4_XS'] as const;

  function fixture(type: string): { src: Float32Array; blocks: Uint8Array; deq: Float32Array } {
    const b = readFileSync(path.join(root, 'test', 'fixtures', 'quant', `${type}.bin`));
    const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
    expect(b.subarray(0, 4).toString('latin1')).toBe('MQFX');
    const n = v.getUint32(12, true);
    const copy = (at: number, len: number): Uint8Array => new Uint8Array(b.subarray(at, at + len));
    const src = new Float32Array(copy(16, 4 * n).buffer);
    const qbytes = b.length - 16 - 8 * n;
    return { src, blocks: copy(16 + 4 * n, qbytes), deq: new Float32Array(copy(16 + 4 * n + qbytes, 4 * n).buffer) };
  }

  it.each(types)('%s: the same bytes as llama.cpp, so the same reconstruction error', async (type) => {
    const f = fixture(type);
    const srcFile = out(`fx-${type}-f32.gguf`);
    const name = 'blk.0.ffn_up.weight';
    await writeGguf(srcFile, { metadata: { 'general.architecture': 'llama' }, tensors: [{ name, type: 'F32', shape: [256, f.src.length / 256], data: f.src }] });
    const qFile = out(`fx-${type}.gguf`);
    await quantize(srcFile, qFile, type, { threads: 2 });
    const info = await readGgufInfo(qFile);
    expect(info.tensors[0]!.type).toBe(type);
    const ours = await tensorBytes(info, qFile, name);
    const oursDeq = await tensorFloats(info, qFile, name);
    const eOurs = nmse(oursDeq, f.src);
    const eLlama = nmse(f.deq, f.src);
    console.log(`${type.padEnd(6)} reconstruction NMSE: ours ${eOurs.toExponential(3)}, llama.cpp ${eLlama.toExponential(3)}`);
    expect(Buffer.from(ours).equals(Buffer.from(f.blocks))).toBe(true);
    expect(eOurs).toBeLessThanOrEqual(eLlama);
  });
});

// =================================================================================================
// A 256-aligned synthetic llama (make-model: d 256, ffn 512, 2 layers, vocab 512) at each type.
// Our quantized file must load in llama.cpp and in moerun. The reference is its F32 twin (the same
// quantized weights dequantized and written as F32: test/helpers/twin.ts, our quantize(.., 'F32')), run
// by llama.cpp; both engines run the quantized file and are compared with it (DESIGN.md).
describe('synthetic llama per type: llama.cpp and moerun on our quantized file vs its F32 twin', () => {
  const N_VOCAB = 512;
  const PROMPT = [1, ...Array.from({ length: 31 }, (_, i) => 3 + ((i * 97 + 41) % 500))];
  const source = makeModel({ arch: 'llama', out: out('synth-f32.gguf'), seed: 11, nEmbd: 256, nFf: 512, nLayer: 2 });

  async function moerunLogits(file: string): Promise<Float32Array> {
    await using model = await loadModel(file, { threads: 2 });
    const session = model.createSession({ contextSize: 64, kvCacheType: 'f32' });
    const logits = await session.evaluate(PROMPT, { logits: 'all' });
    await session.dispose();
    return logits;
  }

  it.each(['Q4_0', 'Q8_0', 'Q4_K', 'Q5_K', 'Q6_K', 'Q4_K_M'] as const)('%s', async (type) => {
    const src = (await source).path;
    const qFile = out(`synth-${type}.gguf`);
    const twin = out(`synth-${type}-twin.gguf`);
    await quantize(src, qFile, type, { threads: 2 });
    await writeF32Twin(qFile, twin, 2);

    // Weight reconstruction error of the whole model (every quantized tensor, pooled).
    const srcInfo = await readGgufInfo(src);
    const qInfo = await readGgufInfo(qFile);
    let err = 0;
    let norm = 0;
    for (const t of qInfo.tensors) {
      if (t.type === 'F32') continue;
      const a = await tensorFloats(qInfo, qFile, t.name);
      const b = await tensorFloats(srcInfo, src, t.name);
      for (let i = 0; i < b.length; i++) {
        err += (a[i]! - b[i]!) ** 2;
        norm += b[i]! ** 2;
      }
    }

    const ref = await llamaCppLogits(twin, PROMPT, { contextSize: 64 });
    const llama = await llamaCppLogits(qFile, PROMPT, { contextSize: 64 });
    const ours = await moerunLogits(qFile);
    const cl = compareLogits(llama.logits, ref.logits, N_VOCAB);
    const co = compareLogits(ours, ref.logits, N_VOCAB);
    const sameFile = nmse(ours, llama.logits);
    console.log(
      `${type.padEnd(6)} weights NMSE ${(err / norm).toExponential(2)} | logits NMSE vs F32 twin: moerun ${co.nmse.toExponential(2)}, ` +
        `llama.cpp ${cl.nmse.toExponential(2)} | top-1 on decisive: moerun ${co.top1Decisive.agree}/${co.top1Decisive.total}, ` +
        `llama.cpp ${cl.top1Decisive.agree}/${cl.top1Decisive.total} | moerun vs llama.cpp on the same file ${sameFile.toExponential(2)}`,
    );
    expect(cl.nmse).toBeGreaterThan(0); // llama.cpp did run quantized weights
    expect(co.nmse).toBeLessThanOrEqual(1.25 * cl.nmse);
    expect(co.top1Decisive.agree).toBeGreaterThanOrEqual(cl.top1Decisive.agree);
    expect(co.top1Decisive.total).toBeGreaterThanOrEqual(20); // the twin is decisive almost everywhere
    expect(sameFile).toBeLessThan(1e-3);
  });
});
