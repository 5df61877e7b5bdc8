/**
 * Placement: where a model's parts go on a GPU with a memory budget (issue 14's planner; the
 * decision itself is made in the core, native/runtime/placement.h, so that the CUDA backend and
 * the C++ drivers follow the same plan). KV cache and activations first, then every non-expert
 * weight, then as many routed-expert slots as the rest of the budget holds, spread evenly over
 * the MoE layers; the token embedding stays on the host unless the output head shares it.
 */
import { kvCacheTypes, MAX_CONTEXT_SIZE, type KvCacheType } from './session.js';
import { checkKnownKeys, describe, invalid, oneOf, optionsObject, positiveInteger } from './validate.js';

/** Where routed experts may go: as the budget allows, all on the CPU, or all on the GPU. */
export type ExpertPlacement = 'auto' | 'cpu' | 'gpu';

/** Options of {@link Model.planPlacement}. */
export interface PlacementOptions {
  /** The device memory the model may use: bytes, or a string such as `'20GiB'`, `'512 MiB'`, `'24GB'`. */
  vram: number | string;
  /** KV cache positions to plan for. Default: as {@link Model.createSession} would (training context, at most 4096). */
  contextSize?: number;
  /** KV cache element type. Default `'f16'`. */
  kvCacheType?: KvCacheType;
  /** Tokens per forward chunk, which bounds the activations. Default: a session's, 512 tokens for MoE models and 256 for dense ones. */
  batchSize?: number;
  /** `'cpu'`: every routed expert stays in host memory (llama.cpp's `--cpu-moe`); `'gpu'`: all on the device or an error. Default `'auto'`. */
  experts?: ExpertPlacement;
}

/** A placement, in bytes. */
export interface Placement {
  /** The budget planned for. */
  budgetBytes: number;
  device: {
    /** Non-expert weights: attention, routers, shared experts, dense FFNs, output head. */
    weightBytes: number;
    kvCacheBytes: number;
    /** Activations for one batch (an upper bound). */
    scratchBytes: number;
    /** The routed experts given a slot on the device. */
    expertBytes: number;
    expertCount: number;
    totalBytes: number;
  };
  host: {
    /** The token embedding, unless tied to the output head. */
    weightBytes: number;
    /** Routed experts computed by the CPU (or loaded into the device's slots as they are needed). */
    expertBytes: number;
    expertCount: number;
  };
  /** Routed experts in the model: experts per MoE layer × MoE layers. */
  expertCount: number;
  /** Per layer: how many of its experts have a device slot (0 on dense layers), and one expert's bytes. */
  layers: { deviceExperts: number; expertBytes: number }[];
  /** One line for logs and the CLI. */
  summary: string;
}

/** What the addon's `placement()` returns. */
export interface NativePlacement {
  budgetBytes: number;
  deviceWeightBytes: number;
  deviceKvBytes: number;
  deviceScratchBytes: number;
  deviceExpertBytes: number;
  hostWeightBytes: number;
  hostExpertBytes: number;
  expertCount: number;
  deviceExpertCount: number;
  layerDeviceExperts: number[];
  layerExpertBytes: number[];
  summary: string;
}

const UNITS: Record<string, number> = {
  b: 1,
  kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12,
  kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40,
  k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40,
};

/** A byte count from a number or a string with a unit (`'20GiB'`, `'1.5 GB'`, `'512M'` = MiB). */
export function parseByteSize(name: string, value: unknown): number {
  if (typeof value === 'number') {
    if (Number.isSafeInteger(value) && value > 0) return value;
    throw invalid(`Expected ${name} to be a positive whole number of bytes but received ${describe(value)}`);
  }
  if (typeof value === 'string') {
    const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(value);
    const unit = m ? UNITS[(m[2] || 'b').toLowerCase()] : undefined;
    if (m && unit !== undefined) {
      const bytes = Math.floor(Number(m[1]) * unit);
      if (bytes > 0 && Number.isSafeInteger(bytes)) return bytes;
    }
  }
  throw invalid(`Expected ${name} to be a byte size such as 20GiB, 512MiB or 24GB but received ${describe(value)}`);
}

/** @internal Validated options for the addon: (budget, contextSize, kvType, batchSize (0: the default), experts). */
export function placementArgs(options: PlacementOptions | undefined, defaultContext: number): [number, number, KvCacheType, number, ExpertPlacement] {
  if (options === undefined) throw invalid('planPlacement() needs options with vram, e.g. { vram: "20GiB" }');
  const o = optionsObject(options, 'planPlacement()');
  checkKnownKeys(o, ['vram', 'contextSize', 'kvCacheType', 'batchSize', 'experts'] satisfies (keyof PlacementOptions)[], 'planPlacement()');
  const vram = parseByteSize('vram', o.vram);
  const contextSize = o.contextSize === undefined ? defaultContext : positiveInteger('contextSize', o.contextSize);
  const kv = o.kvCacheType === undefined ? 'f16' : oneOf('kvCacheType', o.kvCacheType, kvCacheTypes);
  const batch = o.batchSize === undefined ? 0 : positiveInteger('batchSize', o.batchSize); // 0: the session's default
  const experts = o.experts === undefined ? 'auto' : oneOf('experts', o.experts, ['auto', 'cpu', 'gpu'] as const);
  if (contextSize > MAX_CONTEXT_SIZE) throw invalid(`contextSize ${contextSize} is larger than the largest supported, ${MAX_CONTEXT_SIZE}`);
  if (batch > MAX_CONTEXT_SIZE) throw invalid(`batchSize ${batch} is larger than the largest supported, ${MAX_CONTEXT_SIZE}`);
  return [vram, contextSize, kv, batch, experts];
}

/** @internal The addon's plan in the public shape. */
export function toPlacement(p: NativePlacement): Placement {
  const layers = p.layerDeviceExperts.map((deviceExperts, i) => ({ deviceExperts, expertBytes: p.layerExpertBytes[i]! }));
  return {
    budgetBytes: p.budgetBytes,
    device: {
      weightBytes: p.deviceWeightBytes,
      kvCacheBytes: p.deviceKvBytes,
      scratchBytes: p.deviceScratchBytes,
      expertBytes: p.deviceExpertBytes,
      expertCount: p.deviceExpertCount,
      totalBytes: p.deviceWeightBytes + p.deviceKvBytes + p.deviceScratchBytes + p.deviceExpertBytes,
    },
    host: { weightBytes: p.hostWeightBytes, expertBytes: p.hostExpertBytes, expertCount: p.expertCount - p.deviceExpertCount },
    expertCount: p.expertCount,
    layers,
    summary: p.summary,
  };
}
