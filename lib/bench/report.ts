/**
 * What {@link bench} reports: the figures of each engine on each file, quality against the
 * reference file, and the conditions of the run. Plain data, written as JSON by `moerun bench --json`.
 */

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

/** Expert routing of one MoE model over the text. */
export interface RoutingResult {
  label: string;
  /** Text tokens read. */
  tokens: number;
  /** Per MoE layer: how many tokens selected each expert. */
  layers: { layer: number; selections: number[] }[];
  /** With `vram`: the hot-expert cache of that placement, simulated on the same tokens. */
  cache?: { vramBytes: number; deviceExperts: number; expertCount: number; hitRate: number; loadsPerToken: number };
}

/** What {@link bench} returns (and `--json` writes). */
export interface BenchReport {
  conditions: BenchConditions;
  results: BenchFileResult[];
  /** MoE models given as `models` (not their quantizations). */
  routing: RoutingResult[];
}
