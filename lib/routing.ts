/**
 * Routing statistics (issue 14): which routed experts a text selects, layer by layer, and what a
 * hot-expert cache on a GPU of a given size would hit on it. The counting and the cache policy
 * (least recently used, per layer, slots from {@link Model.planPlacement}) are the core's
 * (native/runtime/expert_stats.h, expert_cache.h); on the CPU the cache is simulated on the same
 * tokens in the same order, so the hit rate says what such a device would see, before one is bought.
 */
import type { Placement, PlacementOptions } from './placement.js';
import { abortSignal, checkKnownKeys, describe, invalid, optionsObject, positiveInteger } from './validate.js';

/** Options of {@link Model.routingStats}. */
export interface RoutingStatsOptions {
  /** Tokens per chunk: the text is read in independent windows of this many tokens. Default 512. */
  contextSize?: number;
  /**
   * Also simulate the hot-expert cache of a GPU with this much memory for the model (bytes or
   * `'24GiB'`): {@link Model.planPlacement}'s expert slots, planned for `contextSize`.
   */
  vram?: PlacementOptions['vram'];
  /** Stops between chunks; the promise rejects with `ERR_ABORTED`. */
  signal?: AbortSignal;
}

/** What {@link Model.routingStats} measured. */
export interface RoutingStats {
  /** Tokens read. */
  tokens: number;
  /** Per MoE layer (dense layers are left out): how many tokens selected each expert. */
  layers: { layer: number; selections: number[] }[];
  /** With `vram`: the simulated cache. */
  cache?: {
    placement: Placement;
    /** Selected experts that were resident, and those that were not (computed by the CPU). */
    hits: number;
    misses: number;
    /** hits / (hits + misses). */
    hitRate: number;
    /** Experts the cache would have copied to the device, per token. */
    loadsPerToken: number;
  };
}

/** @internal Validated options. */
export function routingArgs(options: RoutingStatsOptions | undefined): { contextSize: number; vram?: PlacementOptions['vram']; signal?: AbortSignal } {
  const o = optionsObject(options, 'routingStats()');
  checkKnownKeys(o, ['contextSize', 'vram', 'signal'] satisfies (keyof RoutingStatsOptions)[], 'routingStats()');
  return {
    contextSize: o.contextSize === undefined ? 512 : positiveInteger('contextSize', o.contextSize),
    ...(o.vram === undefined ? {} : { vram: o.vram }),
    ...(o.signal === undefined ? {} : { signal: abortSignal('signal', o.signal) }),
  };
}

/** @internal The input as token ids. */
export function routingInput(input: unknown, tokenize: (text: string) => Int32Array): Int32Array | number[] {
  if (typeof input === 'string') return tokenize(input);
  if (input && typeof input === 'object' && 'length' in input) return Array.from(input as ArrayLike<number>);
  throw invalid(`Expected a string or token ids for input but received ${describe(input)}`);
}

/**
 * A compact picture of one layer's popularity for a terminal: experts sorted by how often they
 * were selected, in 16 columns, each the share of selections of its sixteenth of the experts,
 * as a bar of eighths (" ▁▂▃▄▅▆▇█" over 0..max). A flat line is balanced routing; a ramp, hot experts.
 */
export function popularityBar(selections: readonly number[]): string {
  const sorted = [...selections].sort((a, b) => b - a);
  const columns = Math.min(16, sorted.length);
  if (columns === 0) return '';
  const sums = Array.from({ length: columns }, (_, c) => {
    const from = Math.floor((c * sorted.length) / columns);
    const to = Math.floor(((c + 1) * sorted.length) / columns);
    return sorted.slice(from, to).reduce((a, b) => a + b, 0) / Math.max(1, to - from);
  });
  const max = Math.max(...sums);
  const bars = ' ▁▂▃▄▅▆▇█';
  return sums.map((v) => bars[max > 0 ? Math.round((v / max) * 8) : 0]).join('');
}
