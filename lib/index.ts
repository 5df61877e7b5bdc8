/**
 * moerun: run open-weight LLMs (Mixture-of-Experts first) locally, on our own C++ kernels.
 *
 * @example
 * import { loadModel } from 'moerun';
 * await using model = await loadModel('model.gguf');
 * const session = model.createSession({ contextSize: 2048 });
 * for await (const chunk of session.generate('Once upon a time', { maxTokens: 64 })) {
 *   process.stdout.write(chunk.text);
 * }
 */
export { MoerunError, type MoerunErrorCode } from './errors.js';
export { readGgufInfo, type GgufInfo, type GgufTensorInfo, type GgufValue } from './gguf/reader.js';
export { loadModel, Model, type GpuOptions, type LoadModelOptions, type LoadStats, type ModelInfo, type TokenizeOptions, type DetokenizeOptions } from './model.js';
export type { Placement, PlacementOptions, ExpertPlacement } from './placement.js';
export type { RoutingStats, RoutingStatsOptions } from './routing.js';
export type { SliceStats } from './slices.js';
export {
  Session,
  GenerationStream,
  ChatStream,
  type ChatOptions,
  type ChatChunk,
  type SessionOptions,
  type EvaluateOptions,
  type GenerateOptions,
  type GenerateChunk,
  type GenerateStats,
  type StopReason,
  type KvCacheType,
  type SessionModel,
} from './session.js';
export { Grammar, compileJsonSchema, type GrammarOptions, type JsonSchema } from './grammar/index.js';
export {
  renderChatTemplate,
  toolCallSyntaxOf,
  type ChatMessage,
  type ChatTool,
  type ChatToolCall,
  type RenderChatTemplateOptions,
  type ToolCall,
  type ToolCallSyntax,
} from './chat.js';
export { cpuInfo, gpuInfo, bundledModelPath, type CpuInfo, type GpuInfo, type GpuDevice } from './system.js';
export {
  computeImatrix,
  readImatrix,
  writeImatrix,
  importanceOf,
  type Imatrix,
  type ImatrixEntry,
  type WriteImatrixOptions,
  type ComputeImatrixOptions,
} from './imatrix.js';
export { quantize, quantizeTypes, type QuantizeType, type QuantizeOptions, type QuantizeResult, type QuantizedTensor } from './quantize.js';
export { bench, type BenchOptions, type BenchReport, type BenchFileResult, type BenchConditions, type EngineResult, type QualityResult, type Spread } from './bench/index.js';
export { serve, type ServeOptions, type MoerunServer, type ServerMetrics, type FinishKind, type ApiErrorBody, type ApiErrorType } from './server/index.js';
export {
  connect,
  RemoteModel,
  RemoteSession,
  REMOTE_TOKEN,
  type ConnectOptions,
  type TextModel,
  type TextSession,
  type TextGenerationStream,
  type TextChatStream,
} from './remote/index.js';
