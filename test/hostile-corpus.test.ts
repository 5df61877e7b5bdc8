// A corpus of hostile model files, each loaded whole (loadModel, then a prompt if it loads) in a
// child process under an address-space limit of 1 GiB above what loading a valid model needs: every
// file must be refused with a MoerunError naming the problem, with no crash, no hang over 20 s and
// no allocation over 1 GiB (issue 18, "Done when"). The corpus: container damage (truncation, magic,
// version, counts, lengths, dimensions, types, offsets, overlap, duplicates, alignment) on real and
// synthetic files, and inconsistent models (vocabulary, counts, shapes, missing tensors, MoE and MLA
// hyper-parameters) from make-model.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { bundledModelPath } from 'moerun';
import { encodeGguf, type GgufValue } from '../lib/gguf/writer.js';
import { makeModelSpec, type MakeModelOptions } from '../scripts/make-model.js';
import { run } from './helpers/run.js';

const dir = mkdtempSync(path.join(tmpdir(), 'moerun-corpus-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

interface Hostile {
  name: string;
  bytes: Uint8Array;
  /** What the error message must say. */
  says: RegExp;
}

// ---- building blocks ---------------------------------------------------------------------------

/** Small shapes: the corpus is ~70 files, written and loaded in a few seconds. */
const SMALL = { nEmbd: 64, nFf: 128, nHead: 4, nHeadKv: 2, nLayer: 2 };

/** A make-model file's bytes with some metadata replaced (`edit` returns undefined to drop a key). */
function model(options: Omit<MakeModelOptions, 'out'>, edit: (key: string, value: GgufValue) => GgufValue | undefined = (_, v) => v, tensors?: (t: NonNullable<ReturnType<typeof makeModelSpec>['tensors']>) => NonNullable<ReturnType<typeof makeModelSpec>['tensors']>): Uint8Array {
  // deepseek2 keeps its own shapes (one latent KV head, MLA ranks, expert groups).
  const spec = makeModelSpec({ ...(options.arch === 'deepseek2' ? {} : SMALL), ...options, out: 'unused.gguf' });
  const metadata = (spec.metadata as [string, GgufValue][]).flatMap(([k, v]): [string, GgufValue][] => {
    const nv = edit(k, v);
    return nv === undefined ? [] : [[k, nv]];
  });
  return encodeGguf({ ...spec, metadata, tensors: tensors ? tensors(spec.tensors ?? []) : spec.tensors });
}

/** Where tensor `name`'s info record starts in a GGUF's header: just past its name string. */
function tensorInfoAt(bytes: Uint8Array, name: string): number {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const needle = Buffer.concat([Buffer.from(new BigUint64Array([BigInt(name.length)]).buffer), Buffer.from(name)]);
  const at = b.indexOf(needle);
  if (at < 0) throw new Error(`no tensor info for ${name}`);
  return at + needle.length;
}

/** A copy of `bytes` with tensor `name`'s info patched: n_dims (u32), ne (u64 each), type (u32), offset (u64). */
function patchTensor(bytes: Uint8Array, name: string, patch: { nDims?: number; ne?: bigint[]; type?: number; offset?: bigint | ((old: bigint) => bigint) }): Uint8Array {
  const out = Buffer.from(bytes);
  const at = tensorInfoAt(out, name);
  const nDims = out.readUInt32LE(at);
  if (patch.nDims !== undefined) out.writeUInt32LE(patch.nDims, at);
  patch.ne?.forEach((v, i) => out.writeBigUInt64LE(v, at + 4 + 8 * i));
  const typeAt = at + 4 + 8 * nDims;
  if (patch.type !== undefined) out.writeUInt32LE(patch.type, typeAt);
  if (patch.offset !== undefined) {
    const old = out.readBigUInt64LE(typeAt + 4);
    out.writeBigUInt64LE(typeof patch.offset === 'function' ? patch.offset(old) : patch.offset, typeAt + 4);
  }
  return out;
}

function tensorOffset(bytes: Uint8Array, name: string): bigint {
  const b = Buffer.from(bytes);
  const at = tensorInfoAt(b, name);
  return b.readBigUInt64LE(at + 4 + 8 * b.readUInt32LE(at) + 4);
}

/** A copy of `bytes` with the first occurrence of string `from` replaced by `to` (same length): the
 * writer refuses duplicate names, so duplicates are made after it. */
function rename(bytes: Uint8Array, from: string, to: string): Uint8Array {
  if (from.length !== to.length) throw new Error('rename: same length only');
  const out = Buffer.from(bytes);
  const at = out.indexOf(Buffer.from(from));
  if (at < 0) throw new Error(`rename: no '${from}'`);
  out.write(to, at, 'latin1');
  return out;
}

function withU64(bytes: Uint8Array, at: number, value: bigint): Uint8Array {
  const out = Buffer.from(bytes);
  out.writeBigUInt64LE(value, at);
  return out;
}

const u32 = (value: number): GgufValue => ({ type: 'u32', value });
const i32 = (value: number): GgufValue => ({ type: 'i32', value });

// ---- the corpus --------------------------------------------------------------------------------

function corpus(): Hostile[] {
  const stories = new Uint8Array(readFileSync(bundledModelPath));
  const llama = model({ arch: 'llama' });
  const out: Hostile[] = [];
  const add = (name: string, bytes: Uint8Array, says: RegExp): void => void out.push({ name, bytes, says });

  // Container damage, on the real model and on a synthetic one.
  for (const [label, file] of [['stories260K', stories], ['llama', llama]] as const) {
    for (const at of [0, 3, 23, 24, 100, 1000, 20_000, file.length >> 1, file.length - 1]) {
      add(`${label}: truncated at ${at} of ${file.length} bytes`, file.subarray(0, at), /shorter than a GGUF header|truncated|past the end|past the data section's end|more than the file can hold/i);
    }
  }
  const bad = Buffer.from(llama);
  bad.write('GGML', 0, 'latin1');
  add('bad magic', bad, /magic|not a GGUF/i);
  for (const version of [0, 1, 4, 0xffffffff]) {
    const v = Buffer.from(llama);
    v.writeUInt32LE(version, 4);
    add(`version ${version}`, v, /version/i);
  }
  add('2^63 tensors', withU64(llama, 8, 1n << 63n), /tensor|count|file could hold|too many/i);
  add('2^40 metadata keys', withU64(llama, 16, 1n << 40n), /key|count|file could hold|too many/i);
  add('first key length 2^62', withU64(llama, 24, 1n << 62n), /string|length|past the end/i);
  const q = 'blk.0.attn_q.weight';
  add('a tensor of 5 dimensions', patchTensor(llama, q, { nDims: 5 }), /dimension/i);
  add('element count overflowing 64 bits', patchTensor(llama, q, { ne: [1n << 40n, 1n << 40n] }), /overflow|element|too large|past the end/i);
  add('an unknown tensor type (99)', patchTensor(llama, q, { type: 99 }), /type/i);
  add('a misaligned tensor offset', patchTensor(llama, q, { offset: (o) => o + 1n }), /align/i);
  add('tensor data past the end of the file', patchTensor(llama, q, { offset: 1n << 40n }), /ends past the data section's end/);
  add('two tensors over the same bytes', patchTensor(llama, q, { offset: tensorOffset(llama, 'blk.0.attn_k.weight') }), /overlaps/);
  add('a tensor type that does not match its shape (Q4_K rows of 64)', patchTensor(llama, q, { type: 12 }), /block|multiple|row|shape|size/i);
  add('a duplicated tensor name', rename(llama, 'blk.0.attn_k.weight', q), /duplicate|twice|more than once/i);
  {
    const spec = makeModelSpec({ ...SMALL, arch: 'llama', out: 'unused.gguf' });
    const md = spec.metadata as [string, GgufValue][];
    add('a duplicated metadata key', rename(encodeGguf({ ...spec, metadata: [...md, ['llama.block_counX', u32(7)]] }), 'llama.block_counX', 'llama.block_count'), /duplicate|twice|more than once/i);
    const bytes = Buffer.from(encodeGguf({ ...spec, metadata: [...md, ['general.alignment', u32(32)]] }));
    // The value of general.alignment sits right after its key and type; patch 32 -> 0 and -> 3.
    const key = Buffer.from('general.alignment');
    const at = bytes.indexOf(key) + key.length + 4;
    expect(bytes.readUInt32LE(at)).toBe(32);
    for (const a of [0, 3]) {
      const b = Buffer.from(bytes);
      b.writeUInt32LE(a, at);
      add(`alignment ${a}`, b, /alignment/i);
    }
  }

  // Inconsistent models.
  const tokens = (k: string, v: GgufValue): GgufValue | undefined =>
    k === 'tokenizer.ggml.tokens' || k === 'tokenizer.ggml.scores' || k === 'tokenizer.ggml.token_type'
      ? ((v as unknown as { slice(a: number, b: number): GgufValue }).slice(0, 300) as GgufValue)
      : v;
  add('300 tokens beside 512-row embeddings', model({ arch: 'llama', nVocab: 512 }, tokens), /vocabulary has 300 tokens but token_embd.weight has 512 rows/);
  add('scores shorter than the token list', model({ arch: 'llama' }, (k, v) => (k === 'tokenizer.ggml.scores' ? ((v as unknown as { slice(a: number, b: number): GgufValue }).slice(0, 10) as GgufValue) : v)), /scores|token/i);
  add('no general.architecture', model({ arch: 'llama' }, (k, v) => (k === 'general.architecture' ? undefined : v)), /general.architecture/);
  add("architecture 'gpt-99'", model({ arch: 'llama' }, (k, v) => (k === 'general.architecture' ? { type: 'string', value: 'gpt-99' } : v)), /architecture 'gpt-99' is not supported/);
  add('head count -8 (i32)', model({ arch: 'llama' }, (k, v) => (k === 'llama.attention.head_count' ? i32(-8) : v)), /is -8, not a count/);
  add('head count 0', model({ arch: 'llama' }, (k, v) => (k === 'llama.attention.head_count' ? u32(0) : v)), /head/i);
  add('head count 7 (not dividing 64 channels)', model({ arch: 'llama' }, (k, v) => (k === 'llama.attention.head_count' ? u32(7) : v)), /head|shape|expected/i);
  add('block count 1000 (tensors missing)', model({ arch: 'llama' }, (k, v) => (k === 'llama.block_count' ? u32(1000) : v)), /missing|not found|blk\.2/i);
  add('block count 2^31', model({ arch: 'llama' }, (k, v) => (k === 'llama.block_count' ? u32(2 ** 31) : v)), /2147483648, not a count/);
  add('a missing attention tensor', model({ arch: 'llama' }, undefined, (ts) => ts.filter((t) => t.name !== q)), /blk.0.attn_q.weight/);
  add('a transposed FFN tensor', model({ arch: 'llama' }, undefined, (ts) => ts.map((t) => (t.name === 'blk.0.ffn_up.weight' ? { ...t, shape: [t.shape[1]!, t.shape[0]!] } : t))), /blk.0.ffn_up.weight/);
  add('rope dimension count 256 > head size 16', model({ arch: 'llama' }, (k, v) => (k === 'llama.rope.dimension_count' ? u32(256) : v)), /rope|dimension/i);
  const moe = { arch: 'qwen3moe' as const, nExpert: 4, nExpertUsed: 2 };
  add('expert count 2^31', model(moe, (k, v) => (k === 'qwen3moe.expert_count' ? u32(2 ** 31) : v)), /2147483648, not a count/);
  add('experts used 5 of 4', model(moe, (k, v) => (k === 'qwen3moe.expert_used_count' ? u32(5) : v)), /implausible MoE hyper-parameters/);
  add('expert count 8 beside tensors of 4 experts', model(moe, (k, v) => (k === 'qwen3moe.expert_count' ? u32(8) : v)), /'blk.0.ffn_gate_inp.weight' has shape \[64, 4\], expected \[64, 8\]/);
  add('no expert count on an MoE model', model(moe, (k, v) => (k === 'qwen3moe.expert_count' ? undefined : v)), /'qwen3moe.expert_count' is missing or 0, but the file has expert routers/);
  const mla = { arch: 'deepseek2' as const };
  add('MLA: kv_lora_rank 2x its tensors', model(mla, (k, v) => (k === 'deepseek2.attention.kv_lora_rank' ? u32(2 * Number((v as { value: number }).value ?? v)) : v)), /kv|lora|shape|expected/i);
  add('MLA: key length not matching its tensors', model(mla, (k, v) => (k === 'deepseek2.attention.key_length' ? u32(1000) : v)), /key|head|shape|expected/i);
  return out;
}

// ---- the run -----------------------------------------------------------------------------------

/** Loads each file in a fresh child; prints one JSON line per file and the child's VmPeak. */
const loader = `
import { readFileSync } from 'node:fs';
const { loadModel, MoerunError } = await import(process.argv[2]);
const files = JSON.parse(readFileSync(process.argv[3], 'utf8'));
for (const file of files) {
  const t0 = performance.now();
  let result;
  try {
    const m = await loadModel(file, { threads: 1 });
    try {
      const s = m.createSession({ contextSize: 32 });
      await s.generate('Once', { maxTokens: 2, temperature: 0 }).text();
      await s.dispose();
    } finally {
      await m.dispose();
    }
    result = { loaded: true };
  } catch (e) {
    result = { moerunError: e instanceof MoerunError, code: e?.code, message: String(e?.message ?? e) };
  }
  console.log(JSON.stringify({ file, ms: performance.now() - t0, ...result }));
}
const peak = /VmPeak:\\s+(\\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
console.log(JSON.stringify({ vmPeakKiB: peak ? Number(peak[1]) : NaN }));
`;

interface LoadLine {
  file: string;
  ms: number;
  loaded?: boolean;
  moerunError?: boolean;
  code?: string;
  message?: string;
}

async function loadAll(files: string[], limitKiB?: number): Promise<{ lines: LoadLine[]; vmPeakKiB: number; status: number | null; signal: string | null; stderr: string }> {
  const script = path.join(dir, 'load.mjs');
  writeFileSync(script, loader);
  const list = path.join(dir, `files-${files.length}.json`);
  writeFileSync(list, JSON.stringify(files));
  const entry = path.join(root, 'dist', 'index.js');
  const cmd = `${limitKiB ? `ulimit -v ${limitKiB} && ` : ''}exec timeout -s KILL 600 "${process.execPath}" "${script}" "${entry}" "${list}"`;
  const r = await run('bash', ['-c', cmd]);
  const parsed = r.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as LoadLine & { vmPeakKiB?: number });
  const last = parsed.at(-1);
  return { lines: parsed.filter((l) => l.file !== undefined), vmPeakKiB: last?.vmPeakKiB ?? NaN, status: r.status, signal: r.signal, stderr: r.stderr };
}

describe('a corpus of hostile files', () => {
  it('every file is refused with a MoerunError naming the problem: no crash, no hang over 20 s, nothing over 1 GiB', async () => {
    const hostile = corpus();
    const files = hostile.map((h, i) => {
      const p = path.join(dir, `${String(i).padStart(3, '0')}.gguf`);
      writeFileSync(p, h.bytes);
      return p;
    });
    // What a valid model costs in address space, then the limit: that plus 1 GiB.
    const valid = path.join(dir, 'valid.gguf');
    writeFileSync(valid, model({ arch: 'deepseek2' }));
    const baseline = await loadAll([bundledModelPath, valid]);
    expect(baseline.status, baseline.stderr).toBe(0);
    expect(baseline.lines.map((l) => l.loaded)).toEqual([true, true]);
    const limitKiB = baseline.vmPeakKiB + 1024 * 1024;
    const r = await loadAll(files, limitKiB);
    expect(r.signal, r.stderr).toBeNull();
    expect(r.status, r.stderr).toBe(0);
    expect(r.lines.length).toBe(hostile.length);
    const rows = r.lines.map((l, i) => ({ ...l, name: hostile[i]!.name, says: hostile[i]!.says }));
    const codes = new Map<string, number>();
    for (const row of rows) codes.set(row.code ?? 'loaded', (codes.get(row.code ?? 'loaded') ?? 0) + 1);
    console.log(
      `${rows.length} hostile files, address space limited to ${(limitKiB / 1024 / 1024).toFixed(2)} GiB (valid model peak ${(baseline.vmPeakKiB / 1024 / 1024).toFixed(2)} GiB + 1 GiB); ` +
        `codes: ${[...codes].map(([c, n]) => `${c} ${n}`).join(', ')}; slowest ${Math.max(...rows.map((x) => x.ms)).toFixed(0)} ms`,
    );
    const wrong = rows
      .filter((row) => row.loaded || !row.moerunError || !['ERR_BAD_FORMAT', 'ERR_UNSUPPORTED'].includes(row.code!) || !row.says.test(row.message ?? '') || row.ms >= 20_000)
      .map((row) => `${row.name}: ${row.loaded ? 'LOADED' : `${row.code} ${row.message}`} (${row.ms.toFixed(0)} ms)`);
    expect(wrong).toEqual([]);
  }, 300_000);
});
