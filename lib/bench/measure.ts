/**
 * Running the measures: speed (each engine in a child process, interleaved round by round after
 * one excluded warm-up) and quality (teacher-forced next-token distributions against a reference).
 */
import { open } from 'node:fs/promises';
import path from 'node:path';

import { MoerunError } from '../errors.js';
import { loadModel } from '../model.js';
import { cpuInfo } from '../system.js';
import { EngineProcess, type EngineName, type WorkerRequest } from './engines.js';
import type { ResolvedBenchOptions } from './options.js';
import { logSoftmax, QualityAccumulator } from './quality.js';
import type { EngineResult, QualityResult, RoutingResult, Spread } from './report.js';

// ============================================================================================
// Speed: engines in child processes, interleaved
// ============================================================================================

/** Options of {@link measureSpeed}: those of {@link bench} it uses, the engines and the file's figures. */
export interface SpeedOptions extends Pick<ResolvedBenchOptions, 'threads' | 'pp' | 'tg' | 'repeats'> {
  engines: EngineName[];
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

// ============================================================================================
// Quality: teacher-forced distributions against a reference
// ============================================================================================

/** Options of {@link measureQuality}: those of {@link bench} it uses. */
export type QualityOptions = Pick<ResolvedBenchOptions, 'threads' | 'qualityTokens' | 'signal'>;

/**
 * Scores every file in `paths` against `refPath` over `text`, teacher-forced in windows of up to
 * 512 tokens (each starting with BOS when the model adds one). The reference's log-probabilities
 * are spilled to a file in `tmp` so a large vocabulary does not need them all in memory.
 */
export async function measureQuality(
  refPath: string,
  paths: string[],
  text: string,
  o: QualityOptions,
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
// Expert routing (MoE models)
// ============================================================================================

/**
 * Which experts the text's first `qualityTokens` tokens select per layer, in windows of 512, and
 * with `vram` the hit rate of that placement's hot-expert cache ({@link Model.routingStats}).
 */
export async function measureRouting(label: string, file: string, text: string, o: Pick<ResolvedBenchOptions, 'threads' | 'qualityTokens' | 'vram' | 'signal'>): Promise<RoutingResult> {
  const model = await loadModel(file, { threads: o.threads });
  try {
    const tokens = [...model.tokenize(text)].slice(0, o.qualityTokens);
    const contextSize = Math.min(512, Math.max(16, tokens.length));
    const stats = await model.routingStats(tokens, { contextSize, ...(o.vram === undefined ? {} : { vram: o.vram }), ...(o.signal ? { signal: o.signal } : {}) });
    const result: RoutingResult = { label, tokens: stats.tokens, layers: stats.layers };
    if (stats.cache) {
      const p = stats.cache.placement;
      result.cache = { vramBytes: p.budgetBytes, deviceExperts: p.device.expertCount, expertCount: p.expertCount, hitRate: stats.cache.hitRate, loadsPerToken: stats.cache.loadsPerToken };
    }
    return result;
  } finally {
    await model.dispose();
  }
}
