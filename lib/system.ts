/**
 * The machine and the package: CPU features and kernel paths, the bundled model.
 */
import path from 'node:path';
import { callNativeSync } from './errors.js';
import { moerunPackageRoot, native } from './native.js';

/** CPU kernel paths and features. */
export interface CpuInfo {
  /** Kernel paths this CPU can run: `scalar`, then `avx2`, `avx512`, `amx` (x86-64) or `neon`, `dotprod`, `i8mm` (arm64) */
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

/** A CUDA device as {@link gpuInfo} reports it. */
export interface GpuDevice {
  /** The `gpuDevice` index of {@link loadModel} */
  index: number;
  name: string;
  /** Device memory in bytes, and how much of it is free now */
  totalMemory: number;
  freeMemory: number;
  /** Compute capability, `major.minor` (`9.0` for an H100/H200) */
  computeCapability: string;
  /** Whether the CUDA library has kernels for this device */
  supported: boolean;
}

/** The CUDA backend as this process sees it. */
export interface GpuInfo {
  /** Path of the CUDA backend library (`libmoerun_cuda.so`), null when none was found */
  library: string | null;
  /** Whether `gpu: 'auto'` would run on a GPU */
  usable: boolean;
  /** Why not, when not usable: no library (CUDA was not built), no driver, no device */
  reason: string;
  /** CUDA driver and runtime versions (13000 = 13.0); 0 when unknown */
  driverVersion: number;
  runtimeVersion: number;
  devices: GpuDevice[];
}

/**
 * The CUDA library and devices: what `gpu: 'auto'` would use, or why none. Loads the library on
 * the first call (never needed for the CPU); creates no device context.
 */
export function gpuInfo(): GpuInfo {
  return callNativeSync(() => native().gpuInfo());
}

/**
 * Path of the model bundled with the package: Karpathy's TinyStories 260K (llama2.c, MIT),
 * 1.2 MB, enough to see text stream with no download.
 */
export const bundledModelPath: string = path.join(moerunPackageRoot, 'models', 'stories260K.gguf');
