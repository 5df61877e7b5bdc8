/**
 * {@link ModelInfo}, on its own so that native.ts (whose `info()` fills most of it) and model.ts
 * both name it without native.ts importing model.ts.
 */

/** A loaded model's description. */
import type { Placement } from './placement.js';

export interface ModelInfo {
  /** GGUF `general.architecture`, e.g. `llama`, `qwen3moe` */
  architecture: string;
  /** GGUF `general.name`, when present */
  name: string | undefined;
  /** Transformer layers */
  blockCount: number;
  /** Hidden size */
  embeddingLength: number;
  /** Query heads */
  headCount: number;
  /** Key/value heads */
  headCountKv: number;
  /** Tokens in the vocabulary (rows of the output head) */
  vocabSize: number;
  /** Training context length */
  contextLength: number;
  /** Experts per MoE layer (0 = dense) */
  expertCount: number;
  /** Experts used per token (0 = dense) */
  expertUsedCount: number;
  /** GGUF `general.file_type` (llama.cpp's LLAMA_FTYPE), -1 when absent */
  fileType: number;
  /** File size in bytes */
  sizeBytes: number;
  /** Parameters (elements of all tensors in the file) */
  parameterCount: number;
  /** Parameters read per token: everything but the routed experts, plus n_expert_used / n_expert of those */
  activeParameterCount: number;
  /** Compute threads in use */
  threads: number;
  /** Whether the compute threads are bound one per physical core (`pinThreads`); false when not asked for or refused by the OS */
  threadsPinned?: boolean;
  /** CPU kernels in use: `scalar`, `avx2`, `avx512` or `amx` (x86-64); `neon`, `dotprod` or `i8mm` (arm64) */
  cpuPath: string;
  /** Where the model computes: `cpu`, `cuda`, or `none` for a vocab-only model */
  backend: 'cpu' | 'cuda' | 'none';
  /** The backend in words: `cpu (avx512)`, `cuda (NVIDIA H200, 139.8 GiB, compute capability 9.0)` */
  backendName: string;
  /** With `gpu: 'auto'` on the CPU: why no GPU was used (no CUDA library, driver or device) */
  gpuNote?: string;
  /**
   * On a GPU: where the weights went, in bytes (the plan of {@link Model.planPlacement} for the
   * `gpu` options' budget). Routed experts without a device slot stay in host memory and are
   * computed by the CPU.
   */
  placement?: Placement;
  /**
   * Where the weights are read from (`weightMemory` of {@link LoadModelOptions}): `mapped`, the
   * file's pages in the page cache; `copied`, a private copy in this process's memory; `none`
   * for a vocab-only model.
   */
  weightMemory: 'mapped' | 'copied' | 'none';
  /**
   * Bytes of weights the CPU rewrote at load into its interleaved layout (16 rows per group, so
   * that decode reads a dword of 16 rows in one load; the same results bit for bit): Q4_K and Q5_K
   * matmul weights on CPUs with AVX512_VNNI (not on the `amx` path yet), in the private
   * copy (`copied`) or in private memory that replaces their file pages (`mapped`). 0 elsewhere,
   * and when the weights are not prefetched (`prefetch: false`, `allowLargerThanRam` past the
   * memory).
   */
  weightsArranged: number;
}
