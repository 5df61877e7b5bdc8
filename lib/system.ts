/**
 * The machine and the package: CPU features and kernel paths, the bundled model.
 */
import path from 'node:path';
import { callNativeSync } from './errors.js';
import { moerunPackageRoot, native } from './native.js';

/** CPU kernel paths and features. */
export interface CpuInfo {
  /** Kernel paths this CPU can run: `scalar`, then `avx2`, `avx512` (x86-64) or `neon`, `dotprod`, `i8mm` (arm64) */
  supportedPaths: string[];
  /** The path in use (`MOERUN_CPU` overrides the best one); null when MOERUN_CPU is invalid */
  activePath: string | null;
  /** Why `activePath` is null */
  error?: string;
  /** Physical cores (the default thread count) */
  physicalCores: number;
  /** CPU feature flags (cpuid on x86-64; `neon`, `dotprod`, `i8mm` from the OS on arm64) */
  features: Record<string, boolean>;
}

/** Which CPU kernels this machine supports and which are in use. */
export function cpuInfo(): CpuInfo {
  return callNativeSync(() => native().cpuInfo());
}

/**
 * Path of the model bundled with the package: Karpathy's TinyStories 260K (llama2.c, MIT),
 * 1.2 MB, enough to see text stream with no download.
 */
export const bundledModelPath: string = path.join(moerunPackageRoot, 'models', 'stories260K.gguf');
