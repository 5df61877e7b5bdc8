// The importance matrix (issue 19 part 2): moerun's collection against llama.cpp's own llama-imatrix
// (built from the source node-llama-cpp bundles, test/helpers/llama-imatrix.ts) on the same model
// and text, llama.cpp's file formats both ways, and quantization with a matrix against
// llama_model_quantize given the same file.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundledModelPath, computeImatrix, importanceOf, MoerunError, quantize, readGgufInfo, readImatrix, writeImatrix, type Imatrix } from 'moerun';
import { writeGguf } from '../lib/gguf/writer.js';
import { makeModel } from '../scripts/make-model.js';
import { llamaImatrix } from './helpers/llama-imatrix.js';
import { llamaQuantizeFile, LLAMA_FTYPE } from './helpers/llama-quantize.js';
import { run } from './helpers/run.js';

const dir = mkdtempSync(path.join(tmpdir(), 'moerun-imatrix-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Seeded pseudo-English: enough tokens for a few chunks on every test vocabulary. */
function calibrationText(words: number): string {
  const vocab = ('once upon a time there was a little girl named lily she loved to play outside in the park with her ' +
    'friends one day they saw a big red ball and wanted to run after it but the dog was faster than all of them').split(' ');
  let seed = 12345;
  const out: string[] = [];
  for (let i = 0; i < words; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    out.push(vocab[(seed >>> 8) % vocab.length]!);
  }
  return out.join(' ') + '\n';
}

const textFile = path.join(dir, 'calibration.txt');
const text = calibrationText(3000);
const models: Record<string, { path: string; ctx: number; chunks: number }> = {};
beforeAll(async () => {
  writeFileSync(textFile, text);
  models['stories260K'] = { path: bundledModelPath, ctx: 128, chunks: 4 };
  const qwen = await makeModel({ arch: 'qwen3moe', nExpert: 8, nExpertUsed: 2, out: path.join(dir, 'qwen3moe.gguf'), type: 'f32' });
  models['qwen3moe'] = { path: qwen.path, ctx: 64, chunks: 4 };
  const ds = await makeModel({ arch: 'deepseek2', out: path.join(dir, 'deepseek2.gguf'), type: 'f32' });
  models['deepseek2'] = { path: ds.path, ctx: 64, chunks: 4 };
}, 120_000);

/** Largest relative difference of the two matrices' sums; their names, shapes and counts must be equal. */
function compareMatrices(ours: Imatrix, theirs: Imatrix): number {
  expect([...ours.entries.keys()]).toEqual([...theirs.entries.keys()]);
  let worst = 0;
  for (const [name, t] of theirs.entries) {
    const o = ours.entries.get(name)!;
    expect(o.counts, name).toEqual(t.counts);
    expect(o.sums.length, name).toBe(t.sums.length);
    for (let i = 0; i < t.sums.length; i++) {
      const denom = Math.max(Math.abs(t.sums[i]!), 1e-30);
      worst = Math.max(worst, Math.abs(o.sums[i]! - t.sums[i]!) / denom);
    }
  }
  return worst;
}

describe('computeImatrix against llama-imatrix (same model, text, context; F32 KV cache)', () => {
  for (const name of ['stories260K', 'qwen3moe', 'deepseek2']) {
    it(name, async () => {
      const m = models[name]!;
      const theirsPath = path.join(dir, `${name}-llama.gguf`);
      await llamaImatrix(m.path, textFile, theirsPath, m.ctx, m.chunks);
      const theirs = await readImatrix(theirsPath);
      const ours = await computeImatrix(m.path, text, { contextSize: m.ctx, chunks: m.chunks, kvCacheType: 'f32', threads: 2, dataset: textFile });
      expect(ours.chunkCount).toBe(theirs.chunkCount);
      expect(ours.chunkSize).toBe(theirs.chunkSize);
      expect(theirs.datasets).toEqual([textFile]);
      const worst = compareMatrices(ours, theirs);
      // what each architecture must exercise: routed experts per expert, MLA heads per head
      if (name === 'qwen3moe') expect(ours.entries.get('blk.0.ffn_down_exps.weight')!.counts.length).toBe(8);
      if (name === 'deepseek2') {
        // one count for the whole product, sums per head: (ne0 = nope, ne2 = n_head)
        const kb = (await readGgufInfo(m.path)).tensors.find((t) => t.name.endsWith('attn_k_b.weight'))!;
        expect(ours.entries.get(kb.name)!.counts.length).toBe(1);
        expect(ours.entries.get(kb.name)!.sums.length).toBe(kb.shape[0]! * kb.shape[2]!);
        expect(kb.shape[2]).toBeGreaterThan(1);
      }
      console.log(`${name}: ${ours.entries.size} tensors, ${ours.chunkCount} chunks of ${ours.chunkSize}: largest relative difference ${worst.toExponential(2)}`);
      expect(worst).toBeLessThanOrEqual(1e-5);

      // our file, read back, is the same matrix; llama.cpp's legacy .dat of the same run gives the same importances
      const oursPath = path.join(dir, `${name}-moerun.gguf`);
      await writeImatrix(oursPath, ours);
      expect(compareMatrices(await readImatrix(oursPath), ours)).toBe(0);
      const datPath = path.join(dir, `${name}-llama.dat`);
      await llamaImatrix(m.path, textFile, datPath, m.ctx, m.chunks, ['--output-format', 'dat']);
      const dat = await readImatrix(datPath);
      expect(dat.format).toBe('dat');
      expect(dat.chunkCount).toBe(theirs.chunkCount);
      for (const key of theirs.entries.keys()) {
        const a = importanceOf(dat, key)!;
        const b = importanceOf(theirs, key)!;
        // legacy files drop experts that saw no tokens to 1 as GGUF's reader does; both are means
        for (let i = 0; i < b.length; i++) expect(Math.abs(a[i]! - b[i]!)).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(b[i]!)));
      }

      // our legacy .dat of the same matrix: the entries, call counts, chunk count and dataset
      // llama-imatrix wrote, and its values within the same 1e-5
      const oursDatPath = path.join(dir, `${name}-moerun.dat`);
      await writeImatrix(oursDatPath, ours, { format: 'dat' });
      const oursDat = await readImatrix(oursDatPath);
      expect(oursDat.format).toBe('dat');
      expect([...oursDat.entries.keys()]).toEqual([...dat.entries.keys()]);
      expect(oursDat.chunkCount).toBe(dat.chunkCount);
      expect(oursDat.datasets).toEqual(dat.datasets);
      let worstDat = 0;
      for (const [key, theirsEntry] of dat.entries) {
        const e = oursDat.entries.get(key)!;
        expect(Array.from(e.counts), key).toEqual(Array.from(theirsEntry.counts)); // ncall
        for (let i = 0; i < e.sums.length; i++) {
          worstDat = Math.max(worstDat, Math.abs(e.sums[i]! - theirsEntry.sums[i]!) / Math.max(1, Math.abs(theirsEntry.sums[i]!)));
        }
      }
      console.log(`${name}: our .dat against llama-imatrix's: largest relative difference ${worstDat.toExponential(2)}`);
      expect(worstDat).toBeLessThanOrEqual(1e-5);
      // and written back unchanged from a legacy matrix
      await writeImatrix(path.join(dir, `${name}-again.dat`), oursDat, { format: 'dat' });
      expect(readFileSync(path.join(dir, `${name}-again.dat`)).equals(readFileSync(oursDatPath))).toBe(true);
    });
  }
});

describe('quantize with an importance matrix, against llama_model_quantize given the same file', () => {
  // a pure run (token_embd / output at Q8_0, which have no entry); the mixes, with the K, legacy and
  // IQ4 quantizers' importance paths, are in test/quantize-llama.test.ts
  const cases: { model: string; type: 'IQ2_XXS' }[] = [{ model: 'qwen3moe', type: 'IQ2_XXS' }];
  for (const c of cases) {
    it(`${c.model} ${c.type} (pure)`, async () => {
      const m = models[c.model]!;
      const imatrixPath = path.join(dir, `${c.model}-for-quantize.gguf`);
      await writeImatrix(imatrixPath, await computeImatrix(m.path, text, { contextSize: m.ctx, chunks: m.chunks, kvCacheType: 'f32', threads: 2 }));
      const ours = path.join(dir, `${c.model}-${c.type}-moerun.gguf`);
      const theirs = path.join(dir, `${c.model}-${c.type}-llama.gguf`);
      await quantize(m.path, ours, c.type, { imatrix: imatrixPath, pure: true, tokenEmbeddingType: 'Q8_0', outputTensorType: 'Q8_0', threads: 2 });
      await llamaQuantizeFile(m.path, theirs, LLAMA_FTYPE[c.type], 'pure', ['--imatrix', imatrixPath, '--token-embedding-type', 'q8_0', '--output-tensor-type', 'q8_0']);
      const [a, b] = await Promise.all([readGgufInfo(ours), readGgufInfo(theirs)]);
      const fa = readFileSync(ours);
      const fb = readFileSync(theirs);
      expect(a.tensors.map((t) => `${t.name}:${t.type}`)).toEqual(b.tensors.map((t) => `${t.name}:${t.type}`));
      const differ = a.tensors.filter((t, i) => {
        const u = b.tensors[i]!;
        return Buffer.compare(fa.subarray(t.offset, t.offset + t.byteSize), fb.subarray(u.offset, u.offset + u.byteSize)) !== 0;
      });
      expect(differ.map((t) => t.name)).toEqual([]);
      expect(a.tensors.filter((t) => t.type === c.type).length).toBeGreaterThan(10);
      // the keys llama-quantize records
      expect(a.metadata['quantize.imatrix.file']).toBe(imatrixPath);
      expect(a.metadata['quantize.imatrix.entries_count']).toBe(b.metadata['quantize.imatrix.entries_count']);
      expect(a.metadata['quantize.imatrix.chunks_count']).toBe(b.metadata['quantize.imatrix.chunks_count']);
    });
  }
});

describe('imatrix files: malformed ones are ERR_BAD_FORMAT', () => {
  const expectCode = async (p: Promise<unknown>, code: string, message?: RegExp): Promise<void> => {
    const err = await p.then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(MoerunError);
    expect((err as MoerunError).code).toBe(code);
    if (message) expect((err as MoerunError).message).toMatch(message);
  };
  const f32 = (v: number[]): Float32Array => Float32Array.from(v);

  it('a missing file is ERR_IO', async () => {
    await expectCode(readImatrix(path.join(dir, 'nope.gguf')), 'ERR_IO');
  });
  it('sums without counts, F16 sums, a count that does not divide the sums, no tensors', async () => {
    const md = { 'general.type': 'imatrix' };
    const cases: [string, Parameters<typeof writeGguf>[1]['tensors'], RegExp][] = [
      ['nocounts', [{ name: 'blk.0.x.weight.in_sum2', type: 'F32', shape: [4, 1], data: f32([1, 2, 3, 4]) }], /no counts/],
      ['f16', [{ name: 'blk.0.x.weight.in_sum2', type: 'F16', shape: [4, 1], data: new Uint16Array(4) },
        { name: 'blk.0.x.weight.counts', type: 'F32', shape: [1, 1], data: f32([1]) }], /must be F32/],
      ['ragged', [{ name: 'blk.0.x.weight.in_sum2', type: 'F32', shape: [5, 1], data: f32([1, 2, 3, 4, 5]) },
        { name: 'blk.0.x.weight.counts', type: 'F32', shape: [1, 2], data: f32([1, 1]) }], /not a whole number/],
      ['empty', [], /no tensors/],
    ];
    for (const [name, tensors, message] of cases) {
      const p = path.join(dir, `bad-${name}.gguf`);
      await writeGguf(p, { metadata: md, tensors });
      await expectCode(readImatrix(p), 'ERR_BAD_FORMAT', message);
    }
    // a truncated GGUF is the GGUF reader's error, not a legacy file
    const good = path.join(dir, 'good.gguf');
    await writeGguf(good, { metadata: md, tensors: [{ name: 'blk.0.x.weight.in_sum2', type: 'F32', shape: [4, 1], data: f32([1, 2, 3, 4]) },
      { name: 'blk.0.x.weight.counts', type: 'F32', shape: [1, 1], data: f32([2]) }] });
    const bytes = readFileSync(good);
    writeFileSync(path.join(dir, 'truncated.gguf'), bytes.subarray(0, (await readGgufInfo(good)).dataOffset + 2));
    await expectCode(readImatrix(path.join(dir, 'truncated.gguf')), 'ERR_BAD_FORMAT');
    // no imatrix.* keys: readable, but quantize refuses it as llama-quantize does
    const im = await readImatrix(good);
    expect(im.hasMetadata).toBe(false);
    expect(Array.from(importanceOf(im, 'blk.0.x.weight')!)).toEqual([0.5, 1, 1.5, 2]);
    await expectCode(quantize(bundledModelPath, path.join(dir, 'x.gguf'), 'Q4_K_M', { imatrix: good }), 'ERR_BAD_FORMAT', /imatrix\.datasets/);
  });
  it('legacy .dat: parsed by its layout; garbage and truncation are refused', async () => {
    const name = Buffer.from('blk.0.attn_q.weight');
    const parts = [Int32Array.of(1), Int32Array.of(name.length), name, Int32Array.of(10), Int32Array.of(2), f32([20, 5]),
      Int32Array.of(10), Int32Array.of(4), Buffer.from('data')];
    const buf = Buffer.concat(parts.map((p) => Buffer.from(p.buffer, p.byteOffset, p.byteLength)));
    const p = path.join(dir, 'legacy.dat');
    writeFileSync(p, buf);
    const im = await readImatrix(p);
    expect(im.format).toBe('dat');
    expect(im.chunkCount).toBe(10);
    expect(im.datasets).toEqual(['data']);
    expect(Array.from(importanceOf(im, 'blk.0.attn_q.weight')!)).toEqual([2, 0.5]);
    for (const cut of [3, 10, 30]) {
      writeFileSync(path.join(dir, 'cut.dat'), buf.subarray(0, cut));
      await expectCode(readImatrix(path.join(dir, 'cut.dat')), 'ERR_BAD_FORMAT');
    }
    writeFileSync(path.join(dir, 'garbage.dat'), Buffer.from('this is not an importance matrix at all'));
    await expectCode(readImatrix(path.join(dir, 'garbage.dat')), 'ERR_BAD_FORMAT');
  });
  it('legacy .dat writer: the layout llama-imatrix writes, from sums and counts', async () => {
    // two experts of 2 columns, the second without rows (stored as 1 x ncall); a tensor no row
    // reached (left out); chunks of 4 tokens, the largest count 10 -> ncall = ceil(10 / 4) = 3
    const im: Imatrix = {
      entries: new Map([
        ['blk.0.ffn_down_exps.weight', { sums: f32([20, 5, 7, 9]), counts: f32([10, 0]) }],
        ['blk.0.ffn_gate_exps.weight', { sums: f32([0, 0]), counts: f32([0]) }],
      ]),
      datasets: ['a.txt', 'b.txt'],
      chunkCount: 3,
      chunkSize: 4,
      format: 'gguf',
      hasMetadata: true,
    };
    const p = path.join(dir, 'written.dat');
    await writeImatrix(p, im, { format: 'dat' });
    const name = Buffer.from('blk.0.ffn_down_exps.weight');
    const parts = [Int32Array.of(1), Int32Array.of(name.length), name, Int32Array.of(3), Int32Array.of(4), f32([6, 1.5, 3, 3]),
      Int32Array.of(3), Int32Array.of(5), Buffer.from('b.txt')];
    const want = Buffer.concat(parts.map((q) => Buffer.from(q.buffer, q.byteOffset, q.byteLength)));
    expect(readFileSync(p).equals(want)).toBe(true);
    await expect(writeImatrix(p, { ...im, chunkSize: 0 }, { format: 'dat' })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: /chunkSize/ });
    await expect(writeImatrix(p, im, { format: 'ggml' as never })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(writeImatrix(p, im, { fromat: 'dat' } as never)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
  });
});

describe('computeImatrix and quantize: arguments, abort, the CLI', () => {
  it('too little text, bad options and a bad matrix for quantize are clear errors', async () => {
    await expect(computeImatrix(bundledModelPath, 'once upon a time', { contextSize: 64 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: /needs at least 128/ });
    await expect(computeImatrix(bundledModelPath, text, { contextSize: 8 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(computeImatrix(bundledModelPath, text, { contextSise: 64 } as never)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(quantize(bundledModelPath, path.join(dir, 'y.gguf'), 'Q4_K_M', { imatrix: 42 as never })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    // a matrix whose sizes do not fit the model's tensors
    const wrong = await readImatrix(path.join(dir, 'good.gguf'));
    wrong.hasMetadata = true;
    wrong.entries = new Map([['blk.0.attn_q.weight', { sums: new Float32Array(3), counts: Float32Array.of(1) }]]);
    await expect(quantize(bundledModelPath, path.join(dir, 'z.gguf'), 'Q8_0', { imatrix: wrong })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: /3 values/ });
    // without a matrix the IQ mixes are still refused
    await expect(quantize(models['qwen3moe']!.path, path.join(dir, 'w.gguf'), 'IQ2_XXS')).rejects.toMatchObject({ code: 'ERR_UNSUPPORTED', message: /importance matrix/ });
  });
  it('an abort stops the evaluation', async () => {
    const controller = new AbortController();
    const p = computeImatrix(bundledModelPath, text, { contextSize: 128, signal: controller.signal, onProgress: () => controller.abort() });
    await expect(p).rejects.toMatchObject({ code: 'ERR_ABORTED' });
  });
  it('moerun imatrix writes the file moerun quantize --imatrix takes', async () => {
    const out = path.join(dir, 'cli.gguf');
    const cli = path.join(__dirname, '..', 'dist', 'cli.js');
    const r = await run(process.execPath, [cli, 'imatrix', '--model', bundledModelPath, '--text', textFile, '-o', out, '--ctx', '128', '--chunks', '2', '--threads', '2']);
    expect(r.status, r.output).toBe(0);
    const im = await readImatrix(out);
    expect(im.chunkCount).toBe(2);
    expect(im.datasets).toEqual([textFile]);
    const q = await run(process.execPath, [cli, 'quantize', bundledModelPath, path.join(dir, 'cli-q4km.gguf'), 'Q8_0', '--imatrix', out]);
    expect(q.status, q.output).toBe(0);
    const datOut = path.join(dir, 'cli.dat');  // the name picks the legacy format
    const d = await run(process.execPath, [cli, 'imatrix', '--model', bundledModelPath, '--text', textFile, '-o', datOut, '--ctx', '128', '--chunks', '2', '--threads', '2']);
    expect(d.status, d.output).toBe(0);
    expect((await readImatrix(datOut)).format).toBe('dat');
    const badFormat = await run(process.execPath, [cli, 'imatrix', '--model', bundledModelPath, '--text', textFile, '--output-format', 'json']);
    expect(badFormat.status).toBe(2);
    expect(badFormat.stderr).toMatch(/gguf or dat/);
    const bad = await run(process.execPath, [cli, 'imatrix', '--model', bundledModelPath, '--text', path.join(dir, 'nope.txt')]);
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/cannot read/);
  });
});
