/**
 * {@link bench}: which file should I run on this machine? For each model file (and each
 * quantization of it that `quants` asks for) it measures size, load time, peak memory, prefill (pp)
 * and decode (tg) speed, the weight bandwidth decode achieves next to the machine's measured memory
 * bandwidth, and quality against the highest-precision file: mean KL divergence and top-1
 * agreement of teacher-forced next-token distributions over a text, and perplexity.
 * With `vsLlamaCpp` it runs llama.cpp (node-llama-cpp, when installed) on the same files, with the
 * same threads, interleaved with moerun, and reports the ratio.
 *
 * How the speed numbers are made trustworthy on a shared, noisy machine:
 * - each engine runs in its own child process (engines.ts, worker.ts), so its peak RSS is its own
 *   and a native abort is a reported failure;
 * - the file is read once before either engine loads it, so load times are warm-cache times for both;
 * - one warm-up pp and tg per engine is excluded; then `repeats` rounds alternate the engines
 *   (A B A B …) and min / median / max are kept.
 *
 * The parts: options.ts (options and defaults), report.ts (what it returns), measure.ts (speed and
 * quality runs), engines.ts + worker.ts (engines in child processes), quality.ts (KL, top-1,
 * perplexity), gguf-stats.ts (active bytes, bits per weight), bandwidth.ts, conditions.ts. The
 * `moerun bench` command and the table and SVG renderings live with the CLI (lib/cli/).
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import { MoerunError } from '../errors.js';
import { readGgufInfo } from '../gguf/reader.js';
import { quantize } from '../quantize.js';
import { cpuInfo } from '../system.js';
import { measureBandwidth } from './bandwidth.js';
import { gitCommit, packageVersion } from './conditions.js';
import type { EngineName } from './engines.js';
import { activeWeightBytes, arch, bitsPerWeight, expertCount, fileTypeName, parameterCount, vocabSize } from './gguf-stats.js';
import { measureQuality, measureRouting, measureSpeed } from './measure.js';
import { defaultTextPath, validateBenchOptions, type BenchOptions } from './options.js';
import type { BenchFileResult, EngineResult, QualityResult, BenchReport, RoutingResult } from './report.js';

export { defaultTextPath, type BenchOptions } from './options.js';
export type { BenchConditions, BenchFileResult, BenchReport, EngineResult, QualityResult, Spread } from './report.js';

/**
 * Measures each model file (and each quantization of it) for speed, memory and quality; see the
 * file comment for the method. `moerun bench` prints the report as tables (and an SVG plot).
 * @example
 * const report = await bench({ models: ['model-f16.gguf'], quants: ['Q4_K_M', 'Q8_0'], vsLlamaCpp: true });
 * for (const r of report.results) console.log(r.label, r.moerun.tg.median, r.quality?.meanKl);
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
    const steps = o.models.length * o.quants.length + (o.models.length * (1 + o.quants.length)) * (o.vsLlamaCpp ? 3 : 2) + 1 + o.models.length;
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

    // ---- expert routing of the MoE models: popularity per layer, and the simulated cache (first,
    // so that a --vram too small for the model fails before the long measures) ----
    const routing: RoutingResult[] = [];
    for (let i = 0; i < o.models.length; i++) {
      check();
      done++;
      if (expertCount(infos[i]!) === 0) continue;
      progress(`routing: ${files[i]!.label}`);
      routing.push(await measureRouting(files[i]!.label, files[i]!.path, text, o));
    }

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
      routing,
    };
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
