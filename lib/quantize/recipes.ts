/**
 * llama.cpp's quantization recipes (src/llama-quant.cpp): which type each tensor of a model gets
 * when `llama-quantize IN OUT <FILE TYPE>` writes it. The rules are llama.cpp's; this file restates
 * them over moerun's names (GGUF type names, tensor names), one function per llama.cpp function:
 *
 * - {@link LLAMA_FILE_TYPES}: `llama_ftype` by llama-quantize's name, with its default tensor type
 *   (`llama_ftype_get_default_type`);
 * - {@link tensorCategory}: `tensor_get_category`;
 * - {@link recipeType}: `llama_tensor_get_type_impl`, the per-file-type mix (output and token_embd,
 *   attn_v / fused attn_qkv / MLA attn_kv_b with `use_more_bits`, 8-expert and GQA rules, the 70B
 *   rule, ffn_down by layer, attn_output, attn_q/attn_k and ffn_gate/ffn_up of the IQ3 mixes);
 * - {@link fallbackType}: `tensor_type_fallback`, for rows that are not a whole number of blocks;
 * - {@link requiresImatrix}: `tensor_requires_imatrix`.
 */
import { ggmlTypeInfo, type GgmlTypeName } from '../gguf/constants.js';
import { MoerunError } from '../errors.js';

/**
 * llama.cpp's file types, by the name `llama-quantize` takes: `id` is the LLAMA_FTYPE value written
 * as `general.file_type`, `type` the tensor type every quantizable tensor starts from.
 * (llama-quantize's aliases Q3_K / Q4_K / Q5_K for the _M mixes are not here: in moerun those names
 * are pure block types, see lib/quantize.ts.)
 */
export const LLAMA_FILE_TYPES = {
  F32: { id: 0, type: 'F32' },
  F16: { id: 1, type: 'F16' },
  Q4_0: { id: 2, type: 'Q4_0' },
  Q4_1: { id: 3, type: 'Q4_1' },
  Q8_0: { id: 7, type: 'Q8_0' },
  Q5_0: { id: 8, type: 'Q5_0' },
  Q5_1: { id: 9, type: 'Q5_1' },
  Q2_K: { id: 10, type: 'Q2_K' },
  Q3_K_S: { id: 11, type: 'Q3_K' },
  Q3_K_M: { id: 12, type: 'Q3_K' },
  Q3_K_L: { id: 13, type: 'Q3_K' },
  Q4_K_S: { id: 14, type: 'Q4_K' },
  Q4_K_M: { id: 15, type: 'Q4_K' },
  Q5_K_S: { id: 16, type: 'Q5_K' },
  Q5_K_M: { id: 17, type: 'Q5_K' },
  Q6_K: { id: 18, type: 'Q6_K' },
  IQ2_XXS: { id: 19, type: 'IQ2_XXS' },
  IQ2_XS: { id: 20, type: 'IQ2_XS' },
  Q2_K_S: { id: 21, type: 'Q2_K' },
  IQ3_XS: { id: 22, type: 'IQ3_S' },
  IQ3_XXS: { id: 23, type: 'IQ3_XXS' },
  IQ1_S: { id: 24, type: 'IQ1_S' },
  IQ4_NL: { id: 25, type: 'IQ4_NL' },
  IQ3_S: { id: 26, type: 'IQ3_S' },
  IQ3_M: { id: 27, type: 'IQ3_S' },
  IQ2_S: { id: 28, type: 'IQ2_XS' }, // sic: llama.cpp's IQ2_S file type is mostly IQ2_XS tensors
  IQ2_M: { id: 29, type: 'IQ2_S' },
  IQ4_XS: { id: 30, type: 'IQ4_XS' },
  IQ1_M: { id: 31, type: 'IQ1_M' },
  BF16: { id: 32, type: 'BF16' },
} as const satisfies Record<string, { id: number; type: GgmlTypeName }>;

/** A llama.cpp file type name: `'Q4_K_M'`, `'IQ2_XXS'`, ... */
export type LlamaFileType = keyof typeof LLAMA_FILE_TYPES;

export type TensorCategory =
  | 'output' | 'token_embd' | 'attn_qkv' | 'attn_kv_b' | 'attn_v' | 'attn_k' | 'attn_q' | 'attn_output'
  | 'ffn_up' | 'ffn_gate' | 'ffn_down' | 'other';

/** llama.cpp's `tensor_get_category`: by exact name, then by substring, first match wins. */
export function tensorCategory(name: string): TensorCategory {
  if (name === 'output.weight') return 'output';
  if (name === 'token_embd.weight' || name === 'per_layer_token_embd.weight') return 'token_embd';
  for (const c of ['attn_qkv', 'attn_kv_b', 'attn_v', 'attn_k', 'attn_q', 'attn_output'] as const) {
    if (name.includes(`${c}.weight`)) return c;
  }
  for (const c of ['ffn_up', 'ffn_gate', 'ffn_down'] as const) if (name.includes(c)) return c;
  return 'other';
}

/** `category_is_attn_v`: the tensors that carry V (plain, fused QKV, and MLA's attn_kv_b). */
export function isAttnVLike(c: TensorCategory): boolean {
  return c === 'attn_v' || c === 'attn_qkv' || c === 'attn_kv_b';
}

/** What the recipe needs to know about the model (llama.cpp's hparams and quantize state). */
export interface RecipeModel {
  arch: string;
  /** `max(1, n_expert)`. */
  nExpert: number;
  /** `block_count` (llama.cpp's n_ffn_down / n_ffn_gate / n_ffn_up). */
  nLayer: number;
  /** `n_head / n_head_kv` of layer 0 (0 when n_head_kv is 0). */
  nGqa: number;
  /** llama.cpp's LLM_TYPE_70B (8 heads share each attn_v: it gets a step more precision). */
  is70B: boolean;
  /** No output.weight: token_embd doubles as the output and follows the output rule. */
  tied: boolean;
  /** Number of attn_v-like tensors (n_attention_wv). */
  nAttnV: number;
  /** An importance matrix is given (changes a few IQ3_XXS / IQ4 / Q4_0 / Q5_0 rules). */
  hasImatrix: boolean;
}

/** llama.cpp's running counters (i_attention_wv, i_ffn_down, i_ffn_gate, i_ffn_up), in tensor order. */
export interface RecipeCounters {
  attnV: number;
  ffnDown: number;
  ffnGate: number;
  ffnUp: number;
}

/** The file types whose tensors are mostly 1.5-2.7 bits: one family of rules. */
const LOW_BIT_IQ = new Set<LlamaFileType>(['IQ2_XXS', 'IQ2_XS', 'IQ1_S', 'IQ2_S', 'IQ2_M', 'IQ1_M']);
/** Their output tensor gets Q5_K (with IQ3_XXS). */
const OUTPUT_Q5_K = new Set<LlamaFileType>([...LOW_BIT_IQ, 'IQ3_XXS']);
/** Mixes whose attn_output in an 8-expert model is Q5_K. */
const EXPERT8_ATTN_OUTPUT_Q5_K = new Set<LlamaFileType>([
  'Q2_K', 'IQ3_XS', 'IQ3_XXS', 'Q3_K_S', 'Q3_K_M', 'IQ4_NL', 'Q4_K_S', 'Q4_K_M', 'IQ3_S', 'IQ3_M', 'IQ4_XS',
]);

/** `use_more_bits`: the first and last eighth of the layers, and every third one between. */
export function useMoreBits(i: number, n: number): boolean {
  return i < Math.trunc(n / 8) || i >= Math.trunc((7 * n) / 8) || (i - Math.trunc(n / 8)) % 3 === 2;
}

/**
 * llama.cpp's `layer_info`: with experts, the layer number from the tensor's name (expert tensors
 * are not in layer order in every file); without, the running counter.
 */
function layerOf(counter: number, name: string, model: RecipeModel): number {
  if (model.nExpert <= 1) return counter;
  const m = /^blk\.(\d+)\./.exec(name);
  if (!m) throw new MoerunError('ERR_BAD_FORMAT', `quantize: cannot find the layer of tensor '${name}'`);
  const layer = Number(m[1]);
  if (layer >= model.nLayer) throw new MoerunError('ERR_BAD_FORMAT', `quantize: tensor '${name}' is in layer ${layer}, but the model has ${model.nLayer}`);
  return layer;
}

/**
 * llama.cpp's `llama_tensor_get_type_impl`: the type file type `ft` gives the quantizable tensor
 * `name` (row length `ne0`), starting from the file type's default `type`. Advances `counters` as
 * llama.cpp does, so call it once per tensor, in llama.cpp's tensor order.
 * `outputType` is llama-quantize's --output-tensor-type (it reaches here for a tied token_embd).
 */
export function recipeType(
  ft: LlamaFileType,
  type: GgmlTypeName,
  name: string,
  ne0: number,
  model: RecipeModel,
  counters: RecipeCounters,
  outputType?: GgmlTypeName,
): GgmlTypeName {
  const cat = tensorCategory(name);
  const { arch, nExpert, nGqa, nLayer } = model;
  const falcon = arch === 'falcon';
  const eighth = Math.trunc(nLayer / 8);

  if (cat === 'output' || (model.tied && cat === 'token_embd')) {
    if (outputType) return outputType;
    if (falcon || ne0 % ggmlTypeInfo(type).blockSize !== 0) return 'Q8_0';
    if (OUTPUT_Q5_K.has(ft)) return 'Q5_K';
    return type !== 'Q8_0' ? 'Q6_K' : type;
  }
  if (cat === 'token_embd') {
    if (ft === 'IQ2_XXS' || ft === 'IQ2_XS' || ft === 'IQ1_S' || ft === 'IQ1_M') return 'Q2_K';
    if (ft === 'IQ2_S' || ft === 'IQ2_M' || ft === 'IQ3_XXS') return 'IQ3_S';
    return type;
  }
  if (LOW_BIT_IQ.has(ft)) {
    const iq2sm = ft === 'IQ2_S' || ft === 'IQ2_M';
    if (isAttnVLike(cat)) {
      counters.attnV++;
      return nGqa >= 4 || nExpert >= 4 ? 'Q4_K' : iq2sm ? 'IQ3_S' : 'Q2_K';
    }
    if (nExpert === 8 && cat === 'attn_k') return 'Q4_K';
    if (cat === 'ffn_down') {
      // llama.cpp compares the running counter here, not the layer, even with experts.
      const early = counters.ffnDown < eighth;
      counters.ffnDown++;
      return early ? (iq2sm ? 'IQ3_S' : 'Q2_K') : type;
    }
    if (cat === 'attn_output') {
      if (nExpert === 8) return 'Q5_K';
      if (ft === 'IQ1_S' || ft === 'IQ1_M') return 'IQ2_XXS';
      if (iq2sm) return 'IQ3_S';
    }
    return type;
  }
  if (isAttnVLike(cat)) {
    const i = counters.attnV++;
    let t = type;
    if (ft === 'Q2_K') t = nGqa >= 4 ? 'Q4_K' : 'Q3_K';
    else if (ft === 'Q2_K_S' && nGqa >= 4) t = 'Q4_K';
    else if (ft === 'IQ3_XXS') t = nGqa >= 4 ? 'Q4_K' : !model.hasImatrix ? 'IQ3_S' : 'IQ3_XXS';
    else if ((ft === 'IQ3_XS' || ft === 'IQ3_S') && nGqa >= 4) t = 'Q4_K';
    else if (ft === 'IQ3_M') t = 'Q4_K';
    else if (ft === 'Q3_K_M') t = i < 2 ? 'Q5_K' : 'Q4_K';
    else if (ft === 'Q3_K_L') t = 'Q5_K';
    else if ((ft === 'IQ4_NL' || ft === 'IQ4_XS') && nGqa >= 4) t = 'Q5_K';
    else if ((ft === 'Q4_K_M' || ft === 'Q5_K_M') && useMoreBits(i, model.nAttnV)) t = 'Q6_K';
    else if (ft === 'Q4_K_S' && i < 4) t = 'Q5_K';
    if (model.is70B && (t === 'Q3_K' || t === 'Q4_K')) t = 'Q5_K';
    // 8 experts: attn_v is a small share of the model, so Q8_0 costs little
    if (nExpert === 8) t = 'Q8_0';
    return t;
  }
  if (cat === 'attn_k') {
    if (nExpert === 8) return 'Q8_0';
    if (ft === 'IQ3_XS') return 'IQ3_XXS';
    if (ft === 'IQ3_XXS') return 'IQ2_S';
    return type;
  }
  if (cat === 'attn_q') {
    if (ft === 'IQ3_XS') return 'IQ3_XXS';
    if (ft === 'IQ3_XXS') return 'IQ2_S';
    return type;
  }
  if (cat === 'ffn_down') {
    const layer = layerOf(counters.ffnDown, name, model);
    counters.ffnDown++;
    if (ft === 'Q2_K') return 'Q3_K';
    if (ft === 'Q2_K_S') return layer < eighth ? 'Q4_K' : type;
    if (ft === 'IQ3_XXS' && !model.hasImatrix) return layer < eighth ? 'Q4_K' : 'Q3_K';
    if (ft === 'Q3_K_M') return layer < Math.trunc(nLayer / 16) ? 'Q5_K' : !falcon || useMoreBits(layer, nLayer) ? 'Q4_K' : 'Q3_K';
    if (ft === 'IQ3_M' && (layer < eighth || (nExpert === 8 && useMoreBits(layer, nLayer)))) return 'Q4_K';
    if (ft === 'Q3_K_L') return falcon ? 'Q4_K' : 'Q5_K';
    if (ft === 'Q4_K_M') {
      if (falcon) return layer < Math.trunc(nLayer / 16) ? 'Q6_K' : useMoreBits(layer, nLayer) ? 'Q5_K' : 'Q4_K';
      return useMoreBits(layer, nLayer) ? 'Q6_K' : type;
    }
    if (layer < eighth && (ft === 'IQ4_NL' || ft === 'IQ4_XS') && !model.hasImatrix) return 'Q5_K';
    if (ft === 'Q5_K_M' && useMoreBits(layer, nLayer)) return 'Q6_K';
    if (ft === 'Q4_K_S' && !falcon && layer < eighth) return 'Q5_K';
    // Q4_0 / Q5_0 with an imatrix: the first ffn_down layers one step up (llama.cpp: they "go crazy")
    if ((ft === 'Q4_0' || ft === 'Q5_0') && model.hasImatrix && layer < eighth) return ft === 'Q4_0' ? 'Q4_1' : 'Q5_1';
    return type;
  }
  if (cat === 'attn_output') {
    if (falcon) return ft === 'Q3_K_L' ? 'Q4_K' : type;
    if (nExpert === 8) return EXPERT8_ATTN_OUTPUT_Q5_K.has(ft) ? 'Q5_K' : type;
    if (ft === 'Q2_K') return 'Q3_K';
    if (ft === 'IQ3_XXS') return 'IQ3_S';
    if (ft === 'Q3_K_M' || ft === 'IQ3_M') return 'Q4_K';
    if (ft === 'Q3_K_L') return 'Q5_K';
    return type;
  }
  if (cat === 'ffn_gate' || cat === 'ffn_up') {
    const counter = cat === 'ffn_gate' ? 'ffnGate' : 'ffnUp';
    const layer = layerOf(counters[counter], name, model);
    counters[counter]++;
    if (ft === 'IQ3_XS' && layer >= eighth && layer < Math.trunc((7 * nLayer) / 8)) return 'IQ3_XXS';
    return type;
  }
  // (attn_qkv is attn_v-like above: llama.cpp's own attn_qkv branch comes after and never fires)
  return type;
}

/**
 * llama.cpp's `tensor_type_fallback`: the type for a tensor whose rows (`ne0` elements) are not a
 * whole number of `type`'s blocks; F16 when even the fallback's block does not fit.
 */
export function fallbackType(type: GgmlTypeName, ne0: number): GgmlTypeName {
  const fits = (t: GgmlTypeName): boolean => ne0 % ggmlTypeInfo(t).blockSize === 0;
  if (fits(type)) return type;
  let t: GgmlTypeName;
  switch (type) {
    case 'IQ1_S': case 'IQ1_M': case 'IQ2_XXS': case 'IQ2_XS': case 'IQ2_S': case 'IQ3_XXS': case 'IQ3_S': case 'IQ4_XS':
      t = 'IQ4_NL';
      break;
    case 'Q2_K': case 'Q3_K': case 'TQ1_0': case 'TQ2_0':
      t = 'Q4_0';
      break;
    case 'Q4_K': t = 'Q5_0'; break;
    case 'Q5_K': t = 'Q5_1'; break;
    case 'Q6_K': t = 'Q8_0'; break;
    default:
      if (ggmlTypeInfo(type).blockSize <= 32) t = type;
      else throw new MoerunError('ERR_UNSUPPORTED', `quantize: no fallback is defined for ${type} (rows of ${ne0} are not whole blocks)`);
  }
  return fits(t) ? t : 'F16';
}

/** Tensor types llama.cpp only writes with an importance matrix (`tensor_requires_imatrix`). */
export function requiresImatrix(name: string, type: GgmlTypeName, ft: LlamaFileType | undefined): boolean {
  if (name === 'token_embd.weight' || name === 'per_layer_token_embd.weight' || name === 'output.weight') return false;
  switch (type) {
    case 'IQ3_XXS': case 'IQ2_XXS': case 'IQ2_XS': case 'IQ2_S': case 'IQ1_M': case 'IQ1_S':
      return true;
    case 'Q2_K':
      return ft === 'Q2_K_S'; // K-quants do without one, except Q2_K_S's Q2_K tensors
    default:
      return false;
  }
}
