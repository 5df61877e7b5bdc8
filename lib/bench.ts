/**
 * `moerun bench` and {@link bench}: which file should I run on this machine? For each model file
 * (and each quantization of it that `quants` asks for) it measures size, load time, peak memory,
 * prefill (pp) and decode (tg) speed, the weight bandwidth decode achieves next to the machine's
 * measured memory bandwidth, and quality against the highest-precision file: mean KL divergence and
 * top-1 agreement of teacher-forced next-token distributions over a text, and perplexity.
 * With `vsLlamaCpp` it runs llama.cpp (node-llama-cpp, when installed) on the same files, with the
 * same threads, interleaved with moerun, and reports the ratio.
 *
 * How the speed numbers are made trustworthy on a shared, noisy machine:
 * - each engine runs in its own child process (bench-worker.ts), so its peak RSS is its own and a
 *   native abort is a reported failure;
 * - the file is read once before either engine loads it, so load times are warm-cache times for both;
 * - one warm-up pp and tg per engine is excluded; then `repeats` rounds alternate the engines
 *   (A B A B …) and min / median / max are kept.
 */
import { fork, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';

import { MoerunError } from './errors.js';
import { readGgufInfo, type GgufInfo } from './gguf/reader.js';
import { loadModel } from './model.js';
import { moerunPackageRoot } from './native.js';
import { describeQuantizeType, quantize, type QuantizeType } from './quantize.js';
import { cpuInfo } from './system.js';
import { checkKnownKeys, describe, functionOption, invalid, optionsObject, positiveInteger, abortSignal, booleanOption, nonEmptyString } from './validate.js';
import type { WorkerInit, WorkerRequest } from './bench-worker.js';

// ============================================================================================
// Public surface
// ============================================================================================

/** Options of {@link bench}. */
export interface BenchOptions {
  /** GGUF files to measure (at least one). */
  models: string[];
  /** Quantize each model to each of these types (our quantizer, into a temp dir) and measure those too. */
  quants?: QuantizeType[];
  /** Path of a UTF-8 text for the quality measures (default: the bundled Aesop fables). */
  text?: string;
  /** Compute threads for both engines (default: physical cores). */
  threads?: number;
  /** Prompt tokens for the prefill measure (default 512). */
  pp?: number;
  /** Decode steps for the decode measure (default 128). */
  tg?: number;
  /** Measured rounds per engine after one warm-up (default 3). */
  repeats?: number;
  /** At most this many text tokens for the quality measures (default 1024). */
  qualityTokens?: number;
  /** Also run llama.cpp (the `node-llama-cpp` package) on every file and report the ratio. */
  vsLlamaCpp?: boolean;
  /** Called with the fraction done and what is running. */
  onProgress?: (fraction: number, label: string) => void;
  /** Stops between steps; the promise rejects with `ERR_ABORTED`. */
  signal?: AbortSignal;
}

/** min / median / max of repeated measures of tokens per second. */
export interface Spread {
  min: number;
  median: number;
  max: number;
  /** Every measured run, in order. */
  runs: number[];
}

/** One engine on one file. */
export interface EngineResult {
  /** `moerun (avx512)` or `llama.cpp` */
  engine: string;
  /** Load time with the file in the page cache, ms. */
  loadMs: number;
  /** Peak resident memory of the engine's process (mapped weights it touched included), bytes. */
  peakRssBytes: number;
  /** Prefill tokens/s. */
  pp: Spread;
  /** Decode tokens/s. */
  tg: Spread;
  /** Weight bytes read per second while decoding (active bytes per token × median tg). */
  decodeGBs: number;
}

/** Quality against the reference (highest-precision) file. */
export interface QualityResult {
  /** Mean KL(reference ‖ this) of the next-token distributions, nats. */
  meanKl: number;
  /** Fraction of positions where both pick the same most likely token. */
  top1: number;
  /** exp(mean negative log-likelihood of the text's next tokens). */
  perplexity: number;
  /** Positions scored. */
  positions: number;
}

/** One measured file. */
export interface BenchFileResult {
  /** Short name: the quantization type, or the file name. */
  label: string;
  path: string;
  /** e.g. `Q4_K_M`, `F32`: the file type, or the most common matrix type when the file does not say. */
  type: string;
  sizeBytes: number;
  parameterCount: number;
  /** Tensor data bits per parameter. */
  bitsPerWeight: number;
  /** Weight bytes one decode step reads: every dense tensor, the used share of routed experts, one embedding row. */
  activeBytesPerToken: number;
  moerun: EngineResult;
  /** Present with `vsLlamaCpp`: llama.cpp's figures, or why it could not run this file. */
  llamaCpp?: EngineResult | { error: string };
  /** moerun ÷ llama.cpp, median over median. */
  ratio?: { pp: number; tg: number };
  /** Quality against `reference` (the reference itself scores KL 0, top-1 100%); null when not measured. */
  quality: QualityResult | null;
  /** Label of the file `quality` is measured against. */
  reference: string | null;
}

/** The conditions of a run, printed above every table. */
export interface BenchConditions {
  date: string;
  commit: string;
  moerunVersion: string;
  node: string;
  cpu: string;
  /** moerun's kernel path (`cpuInfo().activePath`). */
  isa: string;
  threads: number;
  /** Read bandwidth with `threads` threads, GB/s (10⁹ bytes). */
  bandwidthGBs: number;
  /** 1-minute load average when the run started and ended, and the machine's logical CPUs: a load above the CPUs means other work competed for them. */
  loadAverage: { start: number; end: number; cpus: number };
  pp: number;
  tg: number;
  repeats: number;
  /** Text and its tokens used for quality. */
  text: string;
  textTokens: number;
}

/** What {@link bench} returns (and `--json` writes). */
export interface BenchReport {
  conditions: BenchConditions;
  results: BenchFileResult[];
}

/**
 * Measures each model file (and each quantization of it) for speed, memory and quality; see the
 * file comment for the method.
 * @example
 * const report = await bench({ models: ['model-f16.gguf'], quants: ['Q4_K_M', 'Q8_0'], vsLlamaCpp: true });
 * console.log(formatBenchTable(report));
 */
export async function bench(options: BenchOptions): Promise<BenchReport> {
  const o = validateBenchOptions(options);
  const check = (): void => {
    if (o.signal?.aborted) throw new MoerunError('ERR_ABORTED', 'bench: aborted');
  };
  const loadStart = os.loadavg()[0]!;
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'moerun-bench-'));
  try {
    // ---- files: the given models, then their quantizations ----
    const files: { label: string; path: string; type?: string }[] = o.models.map((m) => ({ label: path.basename(m), path: m }));
    const steps = o.models.length * o.quants.length + (o.models.length * (1 + o.quants.length)) * (o.vsLlamaCpp ? 3 : 2) + 1;
    let done = 0;
    const progress = (label: string): void => o.onProgress?.(Math.min(1, done / steps), label);
    for (const model of o.models) {
      for (const q of o.quants) {
        check();
        const out = path.join(tmp, `${path.basename(model, '.gguf')}-${q}.gguf`);
        progress(`quantize ${path.basename(model)} → ${q}`);
        await quantize(model, out, q, { threads: o.threads, signal: o.signal });
        files.push({ label: q, path: out, type: q });
        done++;
      }
    }
    const infos = await Promise.all(files.map((f) => readGgufInfo(f.path)));

    // ---- conditions ----
    progress('memory bandwidth');
    const bandwidth = await measureBandwidth(o.threads);
    done++;
    const textPath = o.text ?? defaultTextPath;
    const text = await readFile(textPath, 'utf8');

    // ---- speed ----
    const speed: { moerun: EngineResult; llamaCpp?: EngineResult | { error: string } }[] = [];
    for (let i = 0; i < files.length; i++) {
      check();
      const engines: EngineName[] = o.vsLlamaCpp ? ['moerun', 'llama.cpp'] : ['moerun'];
      const vocab = vocabSize(infos[i]!);
      const r = await measureSpeed(files[i]!.path, {
        engines, threads: o.threads, pp: o.pp, tg: o.tg, repeats: o.repeats, vocabSize: vocab,
        activeBytesPerToken: activeWeightBytes(infos[i]!),
        onStep: (label) => progress(`${files[i]!.label}: ${label}`),
      });
      done += engines.length;
      speed.push({ moerun: r.moerun as EngineResult, ...(o.vsLlamaCpp ? { llamaCpp: r['llama.cpp'] } : {}) });
    }

    // ---- quality: against the highest-precision file of the same vocabulary ----
    const bpw = infos.map((info) => bitsPerWeight(info));
    const refOf = files.map((_, i) => {
      let best = -1;
      for (let j = 0; j < files.length; j++) {
        if (vocabSize(infos[j]!) !== vocabSize(infos[i]!) || arch(infos[j]!) !== arch(infos[i]!)) continue;
        if (best < 0 || bpw[j]! > bpw[best]!) best = j;
      }
      return best;
    });
    const quality: (QualityResult | null)[] = files.map(() => null);
    let textTokens = 0;
    for (const ref of new Set(refOf)) {
      check();
      const members = files.map((_, i) => i).filter((i) => refOf[i] === ref);
      progress(`quality: ${files[ref]!.label}`);
      const scored = await measureQuality(files[ref]!.path, members.map((i) => files[i]!.path), text, o, tmp, () => {
        done++;
        progress(`quality: ${members.length} files`);
      });
      textTokens = Math.max(textTokens, scored.tokens);
      members.forEach((m, k) => (quality[m] = scored.results[k]!));
    }

    const cpu = cpuInfo();
    const results: BenchFileResult[] = files.map((f, i) => {
      const info = infos[i]!;
      const s = speed[i]!;
      const llama = s.llamaCpp;
      const ratio = llama && 'engine' in llama ? { pp: s.moerun.pp.median / llama.pp.median, tg: s.moerun.tg.median / llama.tg.median } : undefined;
      return {
        label: f.label,
        path: f.path,
        type: f.type ?? fileTypeName(info),
        sizeBytes: Number(info.fileSize),
        parameterCount: parameterCount(info),
        bitsPerWeight: bpw[i]!,
        activeBytesPerToken: activeWeightBytes(info),
        moerun: s.moerun,
        ...(llama ? { llamaCpp: llama } : {}),
        ...(ratio ? { ratio } : {}),
        quality: quality[i]!,
        reference: refOf[i]! >= 0 ? files[refOf[i]!]!.label : null,
      };
    });
    o.onProgress?.(1, 'done');
    return {
      conditions: {
        date: new Date().toISOString(),
        commit: gitCommit(),
        moerunVersion: await packageVersion(),
        node: process.version,
        cpu: os.cpus()[0]?.model?.trim() ?? 'unknown CPU',
        isa: cpu.activePath ?? 'unknown',
        threads: o.threads,
        bandwidthGBs: bandwidth / 1e9,
        loadAverage: { start: loadStart, end: os.loadavg()[0]!, cpus: os.cpus().length },
        pp: o.pp,
        tg: o.tg,
        repeats: o.repeats,
        text: path.basename(textPath),
        textTokens,
      },
      results,
    };
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** The bundled default text for quality: Aesop's fables (public domain). */
export const defaultTextPath: string = path.join(moerunPackageRoot, 'models', 'aesop.txt');

interface ResolvedBenchOptions {
  models: string[];
  quants: QuantizeType[];
  text: string | undefined;
  threads: number;
  pp: number;
  tg: number;
  repeats: number;
  qualityTokens: number;
  vsLlamaCpp: boolean;
  onProgress: ((fraction: number, label: string) => void) | undefined;
  signal: AbortSignal | undefined;
}

function validateBenchOptions(options: BenchOptions): ResolvedBenchOptions {
  const o = optionsObject(options, 'bench()');
  checkKnownKeys(o, ['models', 'quants', 'text', 'threads', 'pp', 'tg', 'repeats', 'qualityTokens', 'vsLlamaCpp', 'onProgress', 'signal'], 'bench()');
  if (!Array.isArray(o.models) || o.models.length === 0) throw invalid(`Expected a non-empty array of paths for models but received ${describe(o.models)}`);
  o.models.forEach((m, i) => nonEmptyString(`models[${i}]`, m));
  if (o.quants !== undefined && !Array.isArray(o.quants)) throw invalid(`Expected an array of quantization types for quants but received ${describe(o.quants)}`);
  const quants = (o.quants ?? []).map((q) => describeQuantizeType(q) as QuantizeType);
  return {
    models: o.models,
    quants,
    text: o.text === undefined ? undefined : nonEmptyString('text', o.text),
    threads: o.threads === undefined ? cpuInfo().physicalCores : positiveInteger('threads', o.threads),
    pp: o.pp === undefined ? 512 : positiveInteger('pp', o.pp),
    tg: o.tg === undefined ? 128 : positiveInteger('tg', o.tg),
    repeats: o.repeats === undefined ? 3 : positiveInteger('repeats', o.repeats),
    qualityTokens: o.qualityTokens === undefined ? 1024 : positiveInteger('qualityTokens', o.qualityTokens),
    vsLlamaCpp: o.vsLlamaCpp === undefined ? false : booleanOption('vsLlamaCpp', o.vsLlamaCpp),
    onProgress: o.onProgress === undefined ? undefined : functionOption<(f: number, l: string) => void>('onProgress', o.onProgress),
    signal: o.signal === undefined ? undefined : abortSignal('signal', o.signal),
  };
}

// ============================================================================================
// Quality arithmetic
// ============================================================================================

/** log-softmax of one row of logits, in float64. */
export function logSoftmax(logits: ArrayLike<number>): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i]! > max) max = logits[i]!;
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i]! - max);
  const lse = max + Math.log(sum);
  const out = new Float64Array(logits.length);
  for (let i = 0; i < logits.length; i++) out[i] = logits[i]! - lse;
  return out;
}

/** KL(P ‖ Q) in nats, from the log-probabilities of P and Q. */
export function klDivergence(logP: ArrayLike<number>, logQ: ArrayLike<number>): number {
  let kl = 0;
  for (let i = 0; i < logP.length; i++) {
    const p = Math.exp(logP[i]!);
    if (p > 0) kl += p * (logP[i]! - logQ[i]!);
  }
  return Math.max(0, kl);
}

function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i]! > x[best]!) best = i;
  return best;
}

/**
 * Running sums for the quality of one file against a reference: add rows of next-token
 * log-probabilities (reference and file) with the token that came next, then read the result.
 */
export class QualityAccumulator {
  #kl = 0;
  #nll = 0;
  #agree = 0;
  #n = 0;

  /** One position: the reference's and this file's log-probabilities, and the actual next token. */
  add(refLogProbs: ArrayLike<number>, logProbs: ArrayLike<number>, nextToken: number): void {
    this.#kl += klDivergence(refLogProbs, logProbs);
    this.#nll -= logProbs[nextToken]!;
    if (argmax(refLogProbs) === argmax(logProbs)) this.#agree++;
    this.#n++;
  }

  result(): QualityResult {
    const n = this.#n;
    if (n === 0) return { meanKl: Number.NaN, top1: Number.NaN, perplexity: Number.NaN, positions: 0 };
    return { meanKl: this.#kl / n, top1: this.#agree / n, perplexity: Math.exp(this.#nll / n), positions: n };
  }
}

/**
 * Scores every file in `paths` against `refPath` over `text`, teacher-forced in windows of up to
 * 512 tokens (each starting with BOS when the model adds one). The reference's log-probabilities
 * are spilled to a file in `tmp` so a large vocabulary does not need them all in memory.
 */
async function measureQuality(
  refPath: string,
  paths: string[],
  text: string,
  o: ResolvedBenchOptions,
  tmp: string,
  onFile: () => void,
): Promise<{ tokens: number; results: QualityResult[] }> {
  // Windows of the reference's tokenization (files of one vocabulary share it).
  const windows: number[][] = [];
  let tokens = 0;
  let nVocab = 0;
  {
    const model = await loadModel(refPath, { threads: o.threads });
    try {
      nVocab = model.info.vocabSize;
      const bos = model.tokenize('', { addBos: true });
      const body = [...model.tokenize(text, { addBos: false })].slice(0, o.qualityTokens);
      const ctx = Math.max(16, Math.min(512, model.info.contextLength || 512));
      const per = ctx - bos.length;
      for (let at = 0; at + 1 < body.length; at += per) windows.push([...bos, ...body.slice(at, at + per)]);
      tokens = body.length;
    } finally {
      await model.dispose();
    }
  }
  const spill = path.join(tmp, 'reference-logprobs.f32');
  const results: QualityResult[] = [];
  const order = [refPath, ...paths.filter((p) => p !== refPath)];
  const byPath = new Map<string, QualityResult>();
  for (const file of order) {
    if (o.signal?.aborted) throw new MoerunError('ERR_ABORTED', 'bench: aborted');
    const isRef = file === refPath;
    const model = await loadModel(file, { threads: o.threads });
    const acc = new QualityAccumulator();
    const fh = await open(spill, isRef ? 'w' : 'r');
    try {
      const ctx = Math.max(...windows.map((w) => w.length), 1);
      const session = model.createSession({ contextSize: ctx });
      let offset = 0;
      const rowBytes = nVocab * 4;
      for (const w of windows) {
        session.reset();
        const logits = await session.evaluate(w, { logits: 'all' });
        // Row i predicts token i+1; the first scored position is the first text token after BOS.
        for (let i = 0; i + 1 < w.length; i++) {
          const lp = logSoftmax(logits.subarray(i * nVocab, (i + 1) * nVocab));
          let ref: Float64Array | Float32Array = lp;
          if (isRef) {
            await fh.write(Float32Array.from(lp), 0, undefined, offset);
          } else {
            const buf = new Float32Array(nVocab);
            await fh.read(new Uint8Array(buf.buffer), 0, rowBytes, offset);
            ref = buf;
          }
          offset += rowBytes;
          acc.add(ref, lp, w[i + 1]!);
        }
      }
      await session.dispose();
    } finally {
      await fh.close();
      await model.dispose();
    }
    byPath.set(file, acc.result());
    onFile();
  }
  for (const p of paths) results.push(byPath.get(p)!);
  return { tokens, results };
}

// ============================================================================================
// GGUF arithmetic: active bytes per token, bits per weight, type names
// ============================================================================================

function numberMeta(info: GgufInfo, key: string): number {
  const v = info.metadata[key];
  return typeof v === 'number' ? v : typeof v === 'bigint' ? Number(v) : 0;
}

function arch(info: GgufInfo): string {
  const a = info.metadata['general.architecture'];
  return typeof a === 'string' ? a : '';
}

function vocabSize(info: GgufInfo): number {
  const tokens = info.metadata['tokenizer.ggml.tokens'];
  if (Array.isArray(tokens)) return tokens.length;
  const embd = info.tensors.find((t) => t.name === 'token_embd.weight');
  return embd?.shape[1] ?? 0;
}

/** Elements of all tensors. */
function parameterCount(info: GgufInfo): number {
  return info.tensors.reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0);
}

function bitsPerWeight(info: GgufInfo): number {
  const bytes = info.tensors.reduce((n, t) => n + t.byteSize, 0);
  return (8 * bytes) / Math.max(1, parameterCount(info));
}

/**
 * Weight bytes one decode step reads: every tensor of the layers that run (attention, dense FFNs,
 * shared experts, routers, norms) and the output head; `n_expert_used / n_expert` of each routed
 * expert tensor (`*_exps`); one row of token_embd (all of it when it doubles as the output head);
 * nothing of next-token-prediction layers, which the forward pass skips.
 */
export function activeWeightBytes(info: GgufInfo): number {
  const a = arch(info);
  const nExpert = numberMeta(info, `${a}.expert_count`);
  const nUsed = numberMeta(info, `${a}.expert_used_count`);
  const nLayer = numberMeta(info, `${a}.block_count`);
  const nNextn = numberMeta(info, `${a}.nextn_predict_layers`);
  const tied = !info.tensors.some((t) => t.name === 'output.weight');
  let bytes = 0;
  for (const t of info.tensors) {
    const layer = /^blk\.(\d+)\./.exec(t.name);
    if (layer && nNextn > 0 && Number(layer[1]) >= nLayer - nNextn) continue;
    if (t.name === 'token_embd.weight') bytes += tied ? t.byteSize : t.byteSize / (t.shape[1] ?? 1);
    else if (t.name.includes('_exps') && nExpert > 0) bytes += (t.byteSize * nUsed) / nExpert;
    else bytes += t.byteSize;
  }
  return bytes;
}

/** llama.cpp's LLAMA_FTYPE names. */
const FILE_TYPES: Record<number, string> = {
  0: 'F32', 1: 'F16', 2: 'Q4_0', 3: 'Q4_1', 7: 'Q8_0', 8: 'Q5_0', 9: 'Q5_1', 10: 'Q2_K', 11: 'Q3_K_S', 12: 'Q3_K_M',
  13: 'Q3_K_L', 14: 'Q4_K_S', 15: 'Q4_K_M', 16: 'Q5_K_S', 17: 'Q5_K_M', 18: 'Q6_K', 25: 'IQ4_NL', 30: 'IQ4_XS', 32: 'BF16',
};

/** The file type's name, or the type holding most matrix bytes when `general.file_type` is absent. */
function fileTypeName(info: GgufInfo): string {
  const ft = info.metadata['general.file_type'];
  if (ft !== undefined) {
    const name = FILE_TYPES[Number(ft)];
    if (name) return name;
  }
  const bytes = new Map<string, number>();
  for (const t of info.tensors) if (t.shape.filter((d) => d > 1).length >= 2) bytes.set(t.type, (bytes.get(t.type) ?? 0) + t.byteSize);
  return [...bytes].sort((x, y) => y[1] - x[1])[0]?.[0] ?? 'unknown';
}

// ============================================================================================
// Speed: engines in child processes, interleaved
// ============================================================================================

/** `moerun` or `llama.cpp`. */
export type EngineName = 'moerun' | 'llama.cpp';

/** Options of {@link measureSpeed}. */
export interface SpeedOptions {
  engines: EngineName[];
  threads: number;
  pp: number;
  tg: number;
  repeats: number;
  vocabSize: number;
  activeBytesPerToken: number;
  onStep?: (label: string) => void;
}

/**
 * pp/tg tokens/s, load time and peak RSS of each engine on `file`, interleaved round by round after
 * one excluded warm-up each. An engine that fails gives `{ error }` (moerun's failure is thrown).
 */
export async function measureSpeed(file: string, o: SpeedOptions): Promise<Partial<Record<EngineName, EngineResult | { error: string }>>> {
  await warmPageCache(file);
  const contextSize = Math.max(o.pp, o.tg + 1) + 16;
  const tokens = pseudoRandomTokens(o.pp, o.vocabSize, 1);
  const first = pseudoRandomTokens(1, o.vocabSize, 2)[0]!;
  const out: Partial<Record<EngineName, EngineResult | { error: string }>> = {};
  const running: { name: EngineName; proc: EngineProcess; label: string; pp: number[]; tg: number[] }[] = [];
  try {
    for (const name of o.engines) {
      o.onStep?.(`load ${name}`);
      try {
        const proc = await EngineProcess.start({ engine: name, file, threads: o.threads, contextSize });
        running.push({ name, proc, label: name === 'moerun' ? `moerun (${cpuInfo().activePath ?? '?'})` : 'llama.cpp', pp: [], tg: [] });
      } catch (err) {
        if (name === 'moerun') throw err;
        out[name] = { error: (err as Error).message };
      }
    }
    const failed = new Set<EngineName>();
    const step = async (e: (typeof running)[number], req: WorkerRequest, sink: number[] | null, n: number): Promise<void> => {
      if (failed.has(e.name)) return;
      try {
        const ms = await e.proc.request(req);
        if (sink) sink.push((n * 1000) / ms);
      } catch (err) {
        if (e.name === 'moerun') throw err;
        failed.add(e.name);
        out[e.name] = { error: (err as Error).message };
      }
    };
    for (let r = 0; r <= o.repeats; r++) {
      const measured = r > 0; // round 0 warms caches, pages and thread pools
      for (const e of running) {
        o.onStep?.(`${measured ? `round ${r}/${o.repeats}` : 'warm-up'}: pp${o.pp} ${e.name}`);
        await step(e, { cmd: 'pp', tokens }, measured ? e.pp : null, o.pp);
      }
      for (const e of running) {
        o.onStep?.(`${measured ? `round ${r}/${o.repeats}` : 'warm-up'}: tg${o.tg} ${e.name}`);
        await step(e, { cmd: 'tg', first, n: o.tg }, measured ? e.tg : null, o.tg);
      }
    }
    for (const e of running) {
      if (failed.has(e.name)) continue;
      const tg = spread(e.tg);
      out[e.name] = {
        engine: e.label,
        loadMs: e.proc.loadMs,
        peakRssBytes: e.proc.maxRssBytes,
        pp: spread(e.pp),
        tg,
        decodeGBs: (tg.median * o.activeBytesPerToken) / 1e9,
      };
    }
    return out;
  } finally {
    await Promise.all(running.map((e) => e.proc.close()));
  }
}

/** min / median / max of a list of rates. */
export function spread(runs: number[]): Spread {
  const s = [...runs].sort((a, b) => a - b);
  const n = s.length;
  const median = n === 0 ? Number.NaN : n % 2 === 1 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
  return { min: s[0] ?? Number.NaN, median, max: s[n - 1] ?? Number.NaN, runs };
}

/** Deterministic token ids in [3, vocabSize) (past <unk>/<s>/</s>), the same for every engine. */
function pseudoRandomTokens(n: number, vocabSize: number, seed: number): number[] {
  let s = (seed * 0x9e3779b9) >>> 0 || 1;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out.push(3 + ((s >>> 0) % Math.max(1, vocabSize - 3)));
  }
  return out;
}

/** Reads the file once so both engines load it from the page cache. */
async function warmPageCache(file: string): Promise<void> {
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(16 << 20);
    for (let at = 0; ; at += buf.length) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, at);
      if (bytesRead < buf.length) break;
    }
  } finally {
    await fh.close();
  }
}

/** The bench worker module, compiled (dist) or run from source through tsx. */
function workerModule(): { path: string; execArgv: string[] } {
  const here = fileURLToPath(import.meta.url);
  if (here.endsWith('.ts')) return { path: path.join(path.dirname(here), 'bench-worker.ts'), execArgv: ['--import', 'tsx'] };
  return { path: path.join(path.dirname(here), 'bench-worker.js'), execArgv: [] };
}

/** One engine in a child process. */
class EngineProcess {
  loadMs = 0;
  maxRssBytes = 0;
  #proc: ChildProcess;
  #stderr = '';
  #pending: { resolve: (v: { ms?: number; loadMs?: number; maxRssBytes: number }) => void; reject: (e: Error) => void } | null = null;
  #exited: string | null = null;

  private constructor(proc: ChildProcess, readonly init: WorkerInit) {
    this.#proc = proc;
    proc.stderr?.on('data', (d: Buffer) => {
      this.#stderr = (this.#stderr + d.toString()).slice(-2000);
    });
    proc.on('message', (msg: { ok: boolean; error?: string; ms?: number; loadMs?: number; maxRssBytes: number }) => {
      const p = this.#pending;
      this.#pending = null;
      if (!p) return;
      if (msg.ok) p.resolve(msg);
      else p.reject(new Error(`${init.engine}: ${msg.error ?? 'failed'}`));
    });
    proc.on('exit', (code, signal) => {
      this.#exited = signal ? `killed by ${signal}` : `exited with code ${code}`;
      const p = this.#pending;
      this.#pending = null;
      const tail = this.#stderr.trim().split('\n').slice(-3).join(' | ');
      p?.reject(new Error(`${init.engine} on ${path.basename(init.file)}: the process ${this.#exited}${tail ? `: ${tail}` : ''}`));
    });
  }

  static async start(init: WorkerInit): Promise<EngineProcess> {
    const w = workerModule();
    const proc = fork(w.path, [], { execArgv: w.execArgv, stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
    const e = new EngineProcess(proc, init);
    const r = await e.#send(init);
    e.loadMs = r.loadMs ?? 0;
    e.maxRssBytes = r.maxRssBytes;
    return e;
  }

  async request(req: WorkerRequest): Promise<number> {
    const r = await this.#send(req);
    this.maxRssBytes = Math.max(this.maxRssBytes, r.maxRssBytes);
    return r.ms ?? Number.NaN;
  }

  #send(msg: object): Promise<{ ms?: number; loadMs?: number; maxRssBytes: number }> {
    if (this.#exited) return Promise.reject(new Error(`${this.init.engine}: the process ${this.#exited}`));
    return new Promise((resolve, reject) => {
      this.#pending = { resolve, reject };
      this.#proc.send(msg);
    });
  }

  async close(): Promise<void> {
    if (this.#exited) return;
    const gone = new Promise<void>((r) => this.#proc.once('exit', () => r()));
    this.#proc.send({ cmd: 'exit' });
    const timer = setTimeout(() => this.#proc.kill(), 5000);
    await gone;
    clearTimeout(timer);
  }
}

// ============================================================================================
// Memory bandwidth: `threads` workers each scan their own buffer with memchr (Buffer.indexOf of a
// byte that is not there), so the rate is what the cores can pull from DRAM.
// ============================================================================================

/** Read bandwidth in bytes/s with `threads` threads (each scanning 256 MiB for ~1 s). */
export async function measureBandwidth(threads: number, seconds = 1): Promise<number> {
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    const buf = Buffer.alloc(256 << 20, 1);
    buf.indexOf(0); // fault the pages in
    parentPort.postMessage('ready');
    parentPort.once('message', () => {
      let bytes = 0;
      const t0 = performance.now();
      while (performance.now() - t0 < workerData * 1000) { buf.indexOf(0); bytes += buf.length; }
      parentPort.postMessage(bytes / ((performance.now() - t0) / 1000));
    });`;
  const workers = Array.from({ length: threads }, () => new Worker(code, { eval: true, workerData: seconds }));
  try {
    await Promise.all(workers.map((w) => new Promise((r) => w.once('message', r))));
    const rates = await Promise.all(workers.map((w) => new Promise<number>((r) => (w.once('message', r), w.postMessage('go')))));
    return rates.reduce((a, b) => a + b, 0);
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

// ============================================================================================
// Conditions
// ============================================================================================

/** Short commit of the moerun checkout, `+dirty` with uncommitted changes; `n/a` outside git. */
export function gitCommit(): string {
  try {
    const opts = { cwd: moerunPackageRoot, stdio: ['ignore', 'pipe', 'ignore'] as ['ignore', 'pipe', 'ignore'] };
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], opts).toString().trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], opts).toString().trim() !== '';
    return dirty ? `${head}+dirty` : head;
  } catch {
    return 'n/a';
  }
}

async function packageVersion(): Promise<string> {
  try {
    return (JSON.parse(await readFile(path.join(moerunPackageRoot, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

// ============================================================================================
// Output: table, SVG
// ============================================================================================

/** A plain text table: one header row, right-aligned cells (left-aligned first column). */
export function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  return [line(header), `|${widths.map((w, i) => (i === 0 ? ':' : '-') + '-'.repeat(w) + (i === 0 ? '-' : ':')).join('|')}|`, ...rows.map(line)].join('\n');
}

const mib = (n: number): string => (n / 2 ** 20).toFixed(n < 10 * 2 ** 20 ? 2 : 0);
const fmt = (x: number, digits = 1): string => (Number.isFinite(x) ? x.toFixed(digits) : 'n/a');
const rate = (s: Spread): string => `${fmt(s.median)} (${fmt(s.min)}–${fmt(s.max)})`;

/** One line of conditions, printed above the tables. */
export function formatConditions(c: BenchConditions): string {
  return (
    `moerun ${c.moerunVersion} @ ${c.commit}, node ${c.node}, ${c.cpu}, ISA path ${c.isa}, ${c.threads} threads, ` +
    `memory bandwidth ${fmt(c.bandwidthGBs)} GB/s (read, ${c.threads} threads); load average ${fmt(c.loadAverage.start)} → ${fmt(c.loadAverage.end)} on ${c.loadAverage.cpus} CPUs; pp${c.pp} / tg${c.tg} tokens/s as median (min–max) of ${c.repeats} ` +
    `interleaved runs after a warm-up; quality over ${c.textTokens} tokens of ${c.text}`
  );
}

/** The report as plain tables (speed and quality; llama.cpp and ratios when measured). */
export function formatBenchTable(report: BenchReport): string {
  const c = report.conditions;
  const rows = report.results.map((r) => [
    r.label,
    r.type,
    mib(r.sizeBytes),
    fmt(r.bitsPerWeight, 2),
    fmt(r.moerun.loadMs, 0),
    mib(r.moerun.peakRssBytes),
    rate(r.moerun.pp),
    rate(r.moerun.tg),
    `${fmt(r.moerun.decodeGBs, 2)} / ${fmt(c.bandwidthGBs)}`,
    r.quality ? fmt(r.quality.meanKl, 5) : 'n/a',
    r.quality ? `${fmt(r.quality.top1 * 100, 1)}%` : 'n/a',
    r.quality ? fmt(r.quality.perplexity, 3) : 'n/a',
  ]);
  const out = [
    formatConditions(c),
    '',
    formatTable(
      ['file', 'type', 'MiB', 'bits/w', 'load ms', 'RSS MiB', `pp${c.pp} tok/s`, `tg${c.tg} tok/s`, 'decode GB/s / bw', 'KL vs ref', 'top-1', 'PPL'],
      rows,
    ),
  ];
  const refs = [...new Set(report.results.map((r) => r.reference).filter((r): r is string => r !== null))];
  if (refs.length > 0) out.push(`quality reference: ${refs.join(', ')} (the highest-precision file of each vocabulary)`);
  if (report.results.some((r) => r.llamaCpp)) {
    const vs = report.results.map((r) => {
      const l = r.llamaCpp;
      if (!l || !('engine' in l)) return [r.label, `failed: ${l?.error ?? 'not run'}`, '', '', '', '', '', '', ''];
      return [
        r.label,
        fmt(l.loadMs, 0),
        mib(l.peakRssBytes),
        rate(r.moerun.pp),
        rate(l.pp),
        `${fmt(r.ratio!.pp, 2)}×`,
        rate(r.moerun.tg),
        rate(l.tg),
        `${fmt(r.ratio!.tg, 2)}×`,
      ];
    });
    out.push(
      '',
      formatTable(['file', 'llama.cpp load ms', 'llama.cpp RSS MiB', `moerun pp${c.pp}`, `llama.cpp pp${c.pp}`, 'pp ratio', `moerun tg${c.tg}`, `llama.cpp tg${c.tg}`, 'tg ratio'], vs),
      'ratio = moerun ÷ llama.cpp (medians); > 1 means moerun is faster',
    );
  }
  return out.join('\n');
}

function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Ticks at 1, 2 or 5 × 10^k covering [0, max]. */
export function niceTicks(max: number, target = 5): number[] {
  if (!(max > 0) || !Number.isFinite(max)) return [0, 1];
  const raw = max / target;
  const pow = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * pow).find((s) => s >= raw) ?? 10 * pow;
  const ticks: number[] = [];
  for (let v = 0; v <= max + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  if (ticks[ticks.length - 1]! < max) ticks.push(Number((ticks[ticks.length - 1]! + step).toPrecision(12)));
  return ticks;
}

/**
 * An SVG plot of decode speed (tg tokens/s) against KL divergence from the reference: one labelled
 * point per file (up and to the left is better), with llama.cpp's decode speed as hollow points
 * when measured.
 */
export function renderBenchSvg(report: BenchReport, title = 'Decode speed vs quality loss'): string {
  const W = 720;
  const H = 440;
  const m = { left: 74, right: 28, top: 56, bottom: 78 };
  const pw = W - m.left - m.right;
  const ph = H - m.top - m.bottom;
  const pts = report.results.filter((r) => r.quality && Number.isFinite(r.quality.meanKl));
  const llamaTg = (r: BenchFileResult): number | null => (r.llamaCpp && 'engine' in r.llamaCpp ? r.llamaCpp.tg.median : null);
  const xMax = Math.max(...pts.map((r) => r.quality!.meanKl), 1e-6) * 1.12;
  const yMax = Math.max(...pts.map((r) => Math.max(r.moerun.tg.median, llamaTg(r) ?? 0)), 1e-6) * 1.12;
  const xt = niceTicks(xMax);
  const yt = niceTicks(yMax);
  const X = (v: number): number => m.left + (v / xt[xt.length - 1]!) * pw;
  const Y = (v: number): number => m.top + ph - (v / yt[yt.length - 1]!) * ph;
  const f = (n: number): string => n.toFixed(1);
  const tickLabel = (v: number): string => (v === 0 ? '0' : Math.abs(v) < 0.01 ? v.toExponential(0) : String(Number(v.toPrecision(3))));
  const c = report.conditions;
  const s: string[] = [];
  s.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="12">`);
  s.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="#ffffff"/>`);
  s.push(`<text x="${m.left}" y="24" font-size="16" font-weight="bold" fill="#222222">${escapeXml(title)}</text>`);
  s.push(
    `<text x="${m.left}" y="42" fill="#666666">${escapeXml(`${c.cpu}, ${c.isa}, ${c.threads} threads, moerun @ ${c.commit}; up and left is better`)}</text>`,
  );
  s.push('<g stroke="#e6e6e6" stroke-width="1">');
  for (const v of xt) s.push(`<line x1="${f(X(v))}" y1="${m.top}" x2="${f(X(v))}" y2="${m.top + ph}"/>`);
  for (const v of yt) s.push(`<line x1="${m.left}" y1="${f(Y(v))}" x2="${m.left + pw}" y2="${f(Y(v))}"/>`);
  s.push('</g>');
  s.push(`<rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}" fill="none" stroke="#444444" stroke-width="1"/>`);
  s.push('<g fill="#444444" text-anchor="middle">');
  for (const v of xt) s.push(`<text x="${f(X(v))}" y="${m.top + ph + 18}">${tickLabel(v)}</text>`);
  s.push('</g>');
  s.push('<g fill="#444444" text-anchor="end">');
  for (const v of yt) s.push(`<text x="${m.left - 8}" y="${f(Y(v) + 4)}">${tickLabel(v)}</text>`);
  s.push('</g>');
  s.push(`<text x="${m.left + pw / 2}" y="${H - 34}" text-anchor="middle" fill="#222222" font-size="13">mean KL divergence from ${escapeXml(pts.find((r) => r.reference)?.reference ?? 'the reference')} (nats/token, lower is better)</text>`);
  s.push(`<text transform="translate(20 ${m.top + ph / 2}) rotate(-90)" text-anchor="middle" fill="#222222" font-size="13">decode speed, tg${c.tg} (tokens/s)</text>`);
  s.push('<g font-size="12">');
  // Labels: one line each, placed right/left and above/below the point, whichever overlaps no
  // earlier label (approximate text boxes of 6.5 px a character).
  const boxes: { x0: number; x1: number; y0: number; y1: number }[] = [];
  for (const r of pts) {
    const x = X(r.quality!.meanKl);
    const y = Y(r.moerun.tg.median);
    const l = llamaTg(r);
    if (l !== null) {
      s.push(`<line x1="${f(x)}" y1="${f(y)}" x2="${f(x)}" y2="${f(Y(l))}" stroke="#f28e2b" stroke-width="1" stroke-dasharray="3 3"/>`);
      s.push(`<circle cx="${f(x)}" cy="${f(Y(l))}" r="5" fill="#ffffff" stroke="#f28e2b" stroke-width="2"/>`);
    }
    s.push(`<circle cx="${f(x)}" cy="${f(y)}" r="6" fill="#4e79a7" stroke="#ffffff" stroke-width="1.5"/>`);
    const detail = `${mib(r.sizeBytes)} MiB, top-1 ${fmt(r.quality!.top1 * 100, 1)}%`;
    const width = 6.5 * (r.label.length + detail.length + 3);
    const candidates = [
      { anchor: 'start', dx: 10, dy: -9 }, { anchor: 'start', dx: 10, dy: 17 },
      { anchor: 'end', dx: -10, dy: -9 }, { anchor: 'end', dx: -10, dy: 17 },
    ].map((c) => {
      const x0 = c.anchor === 'start' ? x + c.dx : x + c.dx - width;
      return { ...c, box: { x0, x1: x0 + width, y0: y + c.dy - 12, y1: y + c.dy + 3 } };
    });
    const fits = (b: { x0: number; x1: number; y0: number; y1: number }): boolean =>
      b.x0 >= 2 && b.x1 <= W - 2 && !boxes.some((o) => b.x0 < o.x1 && o.x0 < b.x1 && b.y0 < o.y1 && o.y0 < b.y1);
    const pick = candidates.find((c) => fits(c.box)) ?? candidates.find((c) => c.box.x0 >= 2 && c.box.x1 <= W - 2) ?? candidates[0]!;
    boxes.push(pick.box);
    s.push(
      `<text x="${f(x + pick.dx)}" y="${f(y + pick.dy)}" text-anchor="${pick.anchor}" fill="#222222"><tspan font-weight="bold">${escapeXml(r.label)}</tspan>` +
        `<tspan fill="#666666"> · ${escapeXml(detail)}</tspan></text>`,
    );
  }
  s.push('</g>');
  // Legend
  const ly = H - 14;
  s.push(`<circle cx="${m.left + 6}" cy="${ly - 4}" r="6" fill="#4e79a7"/>`);
  s.push(`<text x="${m.left + 18}" y="${ly}" fill="#222222">moerun</text>`);
  if (pts.some((r) => llamaTg(r) !== null)) {
    s.push(`<circle cx="${m.left + 86}" cy="${ly - 4}" r="5" fill="#ffffff" stroke="#f28e2b" stroke-width="2"/>`);
    s.push(`<text x="${m.left + 98}" y="${ly}" fill="#222222">llama.cpp (same file, same threads)</text>`);
  }
  s.push('</svg>');
  return s.join('\n') + '\n';
}

// ============================================================================================
// CLI: moerun bench
// ============================================================================================

/** Parsed `moerun bench` arguments. */
export interface BenchCliArgs {
  options: BenchOptions;
  json: string | undefined;
  svg: string | undefined;
}

/** Usage of `moerun bench`. */
export const benchUsage = `  moerun bench --model A.gguf [--model B.gguf ...] [--quants Q4_0,Q4_K_M,Q6_K,Q8_0] [--text FILE]
               [--threads N] [--pp 512] [--tg 128] [--repeats 3] [--json out.json] [--svg out.svg] [--vs-llama-cpp]
      Measures each file (and each --quants level of it, quantized into a temp dir): size, load time,
      peak RSS, pp/tg tokens/s, decode GB/s against measured memory bandwidth, and KL divergence,
      top-1 agreement and perplexity against the highest-precision file over --text (default: Aesop).
      --vs-llama-cpp runs llama.cpp (node-llama-cpp) on the same files, interleaved, with ratios.
`;

/** Parses `moerun bench` arguments (without the command word); throws ERR_INVALID_ARGUMENT. */
export function parseBenchArgs(args: string[]): BenchCliArgs {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: false,
      options: {
        model: { type: 'string', short: 'm', multiple: true },
        quants: { type: 'string' },
        text: { type: 'string' },
        threads: { type: 'string', short: 't' },
        pp: { type: 'string' },
        tg: { type: 'string' },
        repeats: { type: 'string' },
        json: { type: 'string' },
        svg: { type: 'string' },
        'vs-llama-cpp': { type: 'boolean' },
      },
    });
  } catch (err) {
    throw new MoerunError('ERR_INVALID_ARGUMENT', `bench: ${(err as Error).message}`);
  }
  const v = parsed.values;
  if (!v.model || v.model.length === 0) throw new MoerunError('ERR_INVALID_ARGUMENT', 'bench: at least one --model PATH is required');
  const int = (name: string, s: string | undefined): number | undefined => {
    if (s === undefined) return undefined;
    const n = Number(s);
    if (s.trim() === '' || !Number.isInteger(n) || n <= 0) throw new MoerunError('ERR_INVALID_ARGUMENT', `bench: --${name} expects a positive integer, got '${s}'`);
    return n;
  };
  const quants = v.quants === undefined ? undefined : v.quants.split(',').map((q) => q.trim()).filter((q) => q !== '');
  if (quants) for (const q of quants) describeQuantizeType(q);
  const options: BenchOptions = { models: v.model };
  if (quants) options.quants = quants as QuantizeType[];
  if (v.text !== undefined) options.text = v.text;
  const threads = int('threads', v.threads);
  if (threads !== undefined) options.threads = threads;
  const pp = int('pp', v.pp);
  if (pp !== undefined) options.pp = pp;
  const tg = int('tg', v.tg);
  if (tg !== undefined) options.tg = tg;
  const repeats = int('repeats', v.repeats);
  if (repeats !== undefined) options.repeats = repeats;
  if (v['vs-llama-cpp']) options.vsLlamaCpp = true;
  return { options, json: v.json, svg: v.svg };
}

/** Whether node-llama-cpp can be imported here. */
async function haveNodeLlamaCpp(): Promise<boolean> {
  try {
    const moduleName = 'node-llama-cpp'; // a devDependency: never imported statically from lib/
    await import(moduleName);
    return true;
  } catch {
    return false;
  }
}

/** `moerun bench ...`: runs {@link bench}, prints the tables, writes JSON and SVG. Returns the exit code. */
export async function benchCommand(args: string[]): Promise<number> {
  const { options, json, svg } = parseBenchArgs(args);
  for (const m of options.models) if (!existsSync(m)) throw new MoerunError('ERR_IO', `bench: no such model file '${m}'`);
  if (options.vsLlamaCpp && !(await haveNodeLlamaCpp())) {
    process.stderr.write('moerun bench: --vs-llama-cpp needs the node-llama-cpp package: npm install --no-save node-llama-cpp\n');
    return 2;
  }
  const controller = new AbortController();
  const onSigint = (): void => controller.abort();
  process.once('SIGINT', onSigint);
  const tty = process.stderr.isTTY;
  let last = 0;
  const started = Date.now();
  const draw = (fraction: number, label: string): void => {
    const now = Date.now();
    if (!tty || (now - last < 100 && fraction < 1)) return;
    last = now;
    const width = 30;
    const filled = Math.round(fraction * width);
    const text = label.length > 48 ? `${label.slice(0, 45)}...` : label;
    process.stderr.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(fraction * 100).toFixed(0).padStart(3)}% ${String(Math.round((now - started) / 1000)).padStart(4)} s ${text.padEnd(48)}`);
  };
  try {
    const report = await bench({ ...options, onProgress: draw, signal: controller.signal });
    if (tty) process.stderr.write('\n');
    process.stdout.write(formatBenchTable(report) + '\n');
    if (json) await writeFile(json, JSON.stringify(report, null, 2) + '\n');
    if (svg) await writeFile(svg, renderBenchSvg(report));
    return 0;
  } catch (err) {
    if (tty) process.stderr.write('\n');
    if (err instanceof MoerunError && err.code === 'ERR_ABORTED') {
      process.stderr.write('moerun bench: interrupted\n');
      return 130;
    }
    throw err;
  } finally {
    process.off('SIGINT', onSigint);
  }
}
