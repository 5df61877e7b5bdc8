/**
 * GGUF arithmetic for the report: active bytes per token, bits per weight, parameter count,
 * vocabulary size and type names, from a file's header alone.
 */
import type { GgufInfo } from '../gguf/reader.js';
import { stringTableOf } from '../gguf/string-table.js';
import { LLAMA_FILE_TYPES } from '../quantize/recipes.js';

function numberMeta(info: GgufInfo, key: string): number {
  const v = info.metadata[key];
  return typeof v === 'number' ? v : typeof v === 'bigint' ? Number(v) : 0;
}

/** `general.architecture`, or '' when absent. */
export function arch(info: GgufInfo): string {
  const a = info.metadata['general.architecture'];
  return typeof a === 'string' ? a : '';
}

/** Tokens in the vocabulary: the token list, or the embedding's rows. */
export function vocabSize(info: GgufInfo): number {
  // The table's length, when the reader made one: reading the key would make 150k strings.
  const table = stringTableOf(info.metadata, 'tokenizer.ggml.tokens');
  if (table) return table.length;
  const tokens = info.metadata['tokenizer.ggml.tokens'];
  if (Array.isArray(tokens)) return tokens.length;
  const embd = info.tensors.find((t) => t.name === 'token_embd.weight');
  return embd?.shape[1] ?? 0;
}

/** Routed experts per MoE layer (0: a dense model). */
export function expertCount(info: GgufInfo): number {
  return numberMeta(info, `${arch(info)}.expert_count`);
}

/** Elements of all tensors. */
export function parameterCount(info: GgufInfo): number {
  return info.tensors.reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0);
}

/** Tensor data bits per parameter. */
export function bitsPerWeight(info: GgufInfo): number {
  const bytes = info.tensors.reduce((n, t) => n + t.byteSize, 0);
  return (8 * bytes) / Math.max(1, parameterCount(info));
}

/**
 * Weight bytes one decode step reads: every tensor of the layers that run (attention, dense FFNs,
 * shared experts, routers, norms) and the output head; `n_expert_used / n_expert` of each routed
 * expert tensor (`*_exps`); one row of token_embd (all of it when it doubles as the output head);
 * nothing of next-token-prediction layers, which the forward pass skips.
 */
export function activeWeightBytes(info: GgufInfo): number {
  const a = arch(info);
  const nExpert = numberMeta(info, `${a}.expert_count`);
  const nUsed = numberMeta(info, `${a}.expert_used_count`);
  const nLayer = numberMeta(info, `${a}.block_count`);
  const nNextn = numberMeta(info, `${a}.nextn_predict_layers`);
  const tied = !info.tensors.some((t) => t.name === 'output.weight');
  let bytes = 0;
  for (const t of info.tensors) {
    const layer = /^blk\.(\d+)\./.exec(t.name);
    if (layer && nNextn > 0 && Number(layer[1]) >= nLayer - nNextn) continue;
    if (t.name === 'token_embd.weight') bytes += tied ? t.byteSize : t.byteSize / (t.shape[1] ?? 1);
    else if (t.name.includes('_exps') && nExpert > 0) bytes += (t.byteSize * nUsed) / nExpert;
    else bytes += t.byteSize;
  }
  return bytes;
}

/** llama.cpp's LLAMA_FTYPE names, by value. */
const FILE_TYPES: Record<number, string> = Object.fromEntries(Object.entries(LLAMA_FILE_TYPES).map(([name, f]) => [f.id, name]));

/** The file type's name, or the type holding most matrix bytes when `general.file_type` is absent. */
export function fileTypeName(info: GgufInfo): string {
  const ft = info.metadata['general.file_type'];
  if (ft !== undefined) {
    const name = FILE_TYPES[Number(ft)];
    if (name) return name;
  }
  const bytes = new Map<string, number>();
  for (const t of info.tensors) if (t.shape.filter((d) => d > 1).length >= 2) bytes.set(t.type, (bytes.get(t.type) ?? 0) + t.byteSize);
  return [...bytes].sort((x, y) => y[1] - x[1])[0]?.[0] ?? 'unknown';
}
