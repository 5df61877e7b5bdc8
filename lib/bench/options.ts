/**
 * The options of {@link bench}: their one definition, defaults and validation.
 */
import path from 'node:path';

import { moerunPackageRoot } from '../native.js';
import { parseByteSize } from '../placement.js';
import { describeQuantizeType, type QuantizeType } from '../quantize.js';
import { cpuInfo } from '../system.js';
import { checkKnownKeys, describe, functionOption, invalid, optionsObject, positiveInteger, abortSignal, booleanOption, nonEmptyString } from '../validate.js';

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
  /**
   * For MoE models, expert routing is measured on the text (popularity per layer); with this, also
   * the hit rate of a hot-expert cache on a GPU with this much memory for the model (bytes or
   * `'24GiB'`), simulated on the same tokens ({@link Model.routingStats}).
   */
  vram?: number | string;
  /** Also run llama.cpp (the `node-llama-cpp` package) on every file and report the ratio. */
  vsLlamaCpp?: boolean;
  /** Called with the fraction done and what is running. */
  onProgress?: (fraction: number, label: string) => void;
  /** Stops between steps; the promise rejects with `ERR_ABORTED`. */
  signal?: AbortSignal;
}

/** The names of {@link BenchOptions}, each checked against the interface. */
const benchOptionKeys = [
  'models', 'quants', 'text', 'threads', 'pp', 'tg', 'repeats', 'qualityTokens', 'vram', 'vsLlamaCpp', 'onProgress', 'signal',
] as const satisfies readonly (keyof BenchOptions)[];

/** {@link BenchOptions} with every default filled in (`text`, `onProgress` and `signal` may stay undefined). @internal */
export type ResolvedBenchOptions = Required<Omit<BenchOptions, 'text' | 'vram' | 'onProgress' | 'signal'>> & {
  [K in 'text' | 'vram' | 'onProgress' | 'signal']: BenchOptions[K];
};

/** The bundled default text for quality: Aesop's fables (public domain). */
export const defaultTextPath: string = path.join(moerunPackageRoot, 'models', 'aesop.txt');

/** Checks `options` and fills in the defaults. @internal */
export function validateBenchOptions(options: BenchOptions): ResolvedBenchOptions {
  const o = optionsObject(options, 'bench()');
  checkKnownKeys(o, benchOptionKeys, 'bench()');
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
    vram: o.vram === undefined ? undefined : parseByteSize('vram', o.vram),
    vsLlamaCpp: o.vsLlamaCpp === undefined ? false : booleanOption('vsLlamaCpp', o.vsLlamaCpp),
    onProgress: o.onProgress === undefined ? undefined : functionOption<NonNullable<BenchOptions['onProgress']>>('onProgress', o.onProgress),
    signal: o.signal === undefined ? undefined : abortSignal('signal', o.signal),
  };
}
