// ============================================================================
// Vocabulary: GGUF `tokenizer.*` metadata -> token table, attributes, special
// ids and flags, following llama.cpp's llama_vocab::load semantics.
// ============================================================================

import { preTokenizerSpec, SUPPORTED_PRE_TOKENIZERS, type PreTokenizerSpec } from './pretokenizer.js';
import { utf8Encoder } from './unicode.js';
import { SliceClock } from '../slices.js';
import { NumberSet, StringIndex } from './string-index.js';
import { StringTable, stringTableOf } from '../gguf/string-table.js';

/** Thrown for metadata the tokenizer cannot use. `code` says which problem it is. */
export class TokenizerError extends Error {
  override readonly name = 'TokenizerError';
  constructor(
    readonly code: 'unknown-model' | 'unknown-pre-tokenizer' | 'bad-metadata' | 'unsupported',
    message: string,
  ) {
    super(message);
  }
}

/** Token attribute bits (mirroring llama_token_attr). */
export const Attr = {
  Undefined: 0,
  Unknown: 1 << 0,
  Unused: 1 << 1,
  Normal: 1 << 2,
  Control: 1 << 3,
  UserDefined: 1 << 4,
  Byte: 1 << 5,
} as const;

/** `tokenizer.ggml.token_type` values -> attribute bits. */
function attrFromType(t: number): number {
  switch (t) {
    case 1:
      return Attr.Normal;
    case 2:
      return Attr.Unknown;
    case 3:
      return Attr.Control;
    case 4:
      return Attr.UserDefined;
    case 5:
      return Attr.Unused;
    case 6:
      return Attr.Byte;
    default:
      return Attr.Undefined;
  }
}

/** Which tokenization algorithm a vocabulary uses. */
export type VocabType = 'spm' | 'bpe' | 'wpm' | 'none';

/** Everything the tokenizers need, read once from the metadata. */
export interface Vocab {
  readonly type: VocabType;
  readonly model: string;
  readonly pre: string;
  readonly preSpec: PreTokenizerSpec | undefined;
  /** Token texts (a table: `tokens.at(id)`). */
  readonly tokens: StringTable;
  readonly scores: Float32Array;
  readonly attrs: Uint16Array;
  readonly tokenToId: StringIndex;
  /** BPE merge "left right" -> rank. */
  readonly mergeRanks: StringIndex;
  /** SPM: adjacent code point pairs (a * 0x110000 + b) that occur inside some token. */
  readonly spmPairs: NumberSet | undefined;
  readonly special: SpecialIds;
  readonly eog: ReadonlySet<number>;
  /** Control, user-defined and unknown tokens, longest (in UTF-8 bytes) first. */
  readonly specialTokens: readonly number[];
  /** specialTokens' texts, in the same order. */
  readonly specialTexts: readonly string[];
  readonly addBos: boolean;
  readonly addEos: boolean;
  readonly addSep: boolean;
  readonly addSpacePrefix: boolean;
  readonly cleanSpaces: boolean;
  readonly ignoreMerges: boolean;
}

/** Special token ids; -1 where the vocabulary has none. */
export interface SpecialIds {
  bos: number;
  eos: number;
  eot: number;
  eom: number;
  unk: number;
  sep: number;
  pad: number;
  mask: number;
  fimPre: number;
  fimSuf: number;
  fimMid: number;
  fimPad: number;
  fimRep: number;
  fimSep: number;
}

// ----------------------------------------------------------------------------
// Metadata accessors with exact messages
// ----------------------------------------------------------------------------

type Meta = Readonly<Record<string, unknown>>;

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return `array(${v.length})`;
  if (ArrayBuffer.isView(v)) return v.constructor.name;
  return typeof v;
}

function getString(meta: Meta, key: string): string | undefined {
  const v = meta[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') {
    throw new TokenizerError('bad-metadata', `tokenizer: expected a string for ${key} but received ${describe(v)}`);
  }
  return v;
}

function getBool(meta: Meta, key: string): boolean | undefined {
  const v = meta[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean') {
    throw new TokenizerError('bad-metadata', `tokenizer: expected a boolean for ${key} but received ${describe(v)}`);
  }
  return v;
}

function getInt(meta: Meta, key: string): number | undefined {
  const v = meta[key];
  if (v === undefined) return undefined;
  if (typeof v === 'bigint') return Number(v);
  if (typeof v !== 'number' || !Number.isInteger(v)) {
    throw new TokenizerError('bad-metadata', `tokenizer: expected an integer for ${key} but received ${describe(v)}`);
  }
  return v;
}

function getStringArray(meta: Meta, key: string): readonly string[] | undefined {
  const v = meta[key];
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || (v.length > 0 && typeof v[0] !== 'string')) {
    throw new TokenizerError('bad-metadata', `tokenizer: expected an array of strings for ${key} but received ${describe(v)}`);
  }
  return v as string[];
}

/** A string array of the metadata as a table: the native reader's, or one made from the array. */
function getStringTable(meta: Meta, key: string): StringTable | undefined {
  const table = stringTableOf(meta, key);
  if (table) return table.copy();  // its own overrides: the metadata's table stays the file's
  const strings = getStringArray(meta, key);
  return strings && StringTable.fromArray(strings);
}

function getNumberArray(meta: Meta, key: string): ArrayLike<number> | undefined {
  const v = meta[key];
  if (v === undefined) return undefined;
  if (ArrayBuffer.isView(v) && !(v instanceof DataView) && !(v instanceof BigInt64Array) && !(v instanceof BigUint64Array)) {
    return v as unknown as ArrayLike<number>;
  }
  if (Array.isArray(v) && v.every((x) => typeof x === 'number')) return v as number[];
  throw new TokenizerError('bad-metadata', `tokenizer: expected a numeric array for ${key} but received ${describe(v)}`);
}

// ----------------------------------------------------------------------------
// Loading
// ----------------------------------------------------------------------------

const EOT_CANDIDATES = [
  '<|eot_id|>', '<|im_end|>', '<|end|>', '<end_of_turn>', '<|endoftext|>', '<|end_of_text|>', '<EOT>',
  '_<EOT>', '[EOT]', '<｜end▁of▁sentence｜>', '<end_of_utterance>',
];
const FIM_CANDIDATES: Record<'fimPre' | 'fimSuf' | 'fimMid' | 'fimPad' | 'fimRep' | 'fimSep', string[]> = {
  fimPre: ['<|fim_prefix|>', '<fim-prefix>', '<fim_prefix>', '<｜fim▁begin｜>', '<PRE>', '▁<PRE>', '<|code_prefix|>', '<|prefix|>'],
  fimSuf: ['<|fim_suffix|>', '<fim-suffix>', '<fim_suffix>', '<｜fim▁hole｜>', '<SUF>', '▁<SUF>', '<|code_suffix|>', '<|suffix|>'],
  fimMid: ['<|fim_middle|>', '<fim-middle>', '<fim_middle>', '<｜fim▁end｜>', '<MID>', '▁<MID>', '<|code_middle|>', '<|middle|>'],
  fimPad: ['<|fim_pad|>', '<fim-pad>', '<fim_pad>', '<PAD>', '[PAD]'],
  fimRep: ['<|fim_repo|>', '<|repo_name|>', '<fim-repo>', '<REPO>', '<reponame>'],
  fimSep: ['<|file_sep|>'],
};
const EOG_TEXTS = new Set([
  '<|eot_id|>', '<|im_end|>', '<|end|>', '<|return|>', '<|call|>', '<|flush|>', '<|calls|>', '<end_of_turn>',
  '<|endoftext|>', '</s>', '<|eom_id|>', '<EOT>', '_<EOT>', '[EOT]', '[EOS]', '<|end_of_text|>',
  '<end_of_utterance>', '<eos>', '<turn|>', '<|tool_response>', '<｜end▁of▁sentence｜>', '[e~[',
]);
const EOG_MAX_LENGTH = Math.max(...[...EOG_TEXTS].map((t) => t.length));

const SPECIAL_KEYS: [keyof SpecialIds, string][] = [
  ['bos', 'bos_token_id'],
  ['eos', 'eos_token_id'],
  ['eot', 'eot_token_id'],
  ['eom', 'eom_token_id'],
  ['unk', 'unknown_token_id'],
  ['sep', 'seperator_token_id'],
  ['pad', 'padding_token_id'],
  ['mask', 'mask_token_id'],
  ['fimPre', 'fim_pre_token_id'],
  ['fimSuf', 'fim_suf_token_id'],
  ['fimMid', 'fim_mid_token_id'],
  ['fimPad', 'fim_pad_token_id'],
  ['fimRep', 'fim_rep_token_id'],
  ['fimSep', 'fim_sep_token_id'],
  ['fimPre', 'prefix_token_id'],
  ['fimSuf', 'suffix_token_id'],
  ['fimMid', 'middle_token_id'],
];

function nullSpecials(): SpecialIds {
  return {
    bos: -1, eos: -1, eot: -1, eom: -1, unk: -1, sep: -1, pad: -1, mask: -1,
    fimPre: -1, fimSuf: -1, fimMid: -1, fimPad: -1, fimRep: -1, fimSep: -1,
  };
}

/** Reads the `tokenizer.*` keys of GGUF metadata into a Vocab. */
export function loadVocab(meta: Meta): Vocab {
  const steps = vocabSteps(meta);
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

/**
 * loadVocab without holding the event loop: the work (maps over ~150k tokens and merges, about
 * 50-100 ms for a real BPE vocab) runs in slices of the clock's budget, with a macrotask turn
 * between them.
 */
export async function loadVocabAsync(meta: Meta, clock: SliceClock = new SliceClock()): Promise<Vocab> {
  return clock.run(vocabSteps(meta));
}

/** Entries between two chances to yield: a fraction of a millisecond of work. */
const STEP = 256;
const stepDone = (i: number): boolean => i % STEP === STEP - 1;

// loadVocab's body as a generator that yields between slices of its large loops.
function* vocabSteps(meta: Meta): Generator<void, Vocab, void> {
  const model = getString(meta, 'tokenizer.ggml.model');
  if (model === undefined) {
    throw new TokenizerError('bad-metadata', 'tokenizer: metadata has no tokenizer.ggml.model key');
  }
  const pre = getString(meta, 'tokenizer.ggml.pre') ?? '';
  const special = nullSpecials();
  let type: VocabType;
  let addBos = false;
  let addEos = false;
  let addSep = false;
  let addSpacePrefix = false;
  let cleanSpaces = false;
  let ignoreMerges = false;
  let preSpec: PreTokenizerSpec | undefined;

  switch (model) {
    case 'none':
    case 'no_vocab':
      type = 'none';
      break;
    case 'llama':
      type = 'spm';
      Object.assign(special, { bos: 1, eos: 2, unk: 0 });
      addSpacePrefix = true;
      addBos = true;
      break;
    case 'bert':
      type = 'wpm';
      Object.assign(special, { bos: 101, unk: 100, sep: 102, pad: 0, mask: 103 });
      addBos = true;
      addSep = true;
      cleanSpaces = true;
      break;
    case 'gpt2':
      type = 'bpe';
      Object.assign(special, { bos: 11, eos: 11 });
      preSpec = preTokenizerSpec(pre);
      if (!preSpec) {
        throw new TokenizerError(
          'unknown-pre-tokenizer',
          `tokenizer: unknown pre-tokenizer "${pre}" (tokenizer.ggml.pre); supported: ${SUPPORTED_PRE_TOKENIZERS.join(', ')}`,
        );
      }
      cleanSpaces = preSpec.cleanSpaces;
      ignoreMerges = preSpec.ignoreMerges;
      addBos = preSpec.addBos;
      break;
    default:
      throw new TokenizerError(
        'unknown-model',
        `tokenizer: unsupported tokenizer.ggml.model "${model}"; supported: llama (SPM), gpt2 (BPE), bert (WPM), none`,
      );
  }

  addSpacePrefix = getBool(meta, 'tokenizer.ggml.add_space_prefix') ?? addSpacePrefix;

  const tokenTable = type === 'none' ? undefined : getStringTable(meta, 'tokenizer.ggml.tokens');
  if (type !== 'none' && tokenTable === undefined) {
    throw new TokenizerError('bad-metadata', 'tokenizer: metadata has no tokenizer.ggml.tokens key');
  }
  const tokens = tokenTable ?? StringTable.fromArray(new Array<string>(getInt(meta, 'tokenizer.ggml.vocab_size') ?? 0).fill(''));
  const n = tokens.length;

  const scores = new Float32Array(n);
  const rawScores = getNumberArray(meta, 'tokenizer.ggml.scores');
  if (rawScores) {
    if (rawScores.length < n) {
      throw new TokenizerError('bad-metadata', `tokenizer: tokenizer.ggml.scores has ${rawScores.length} entries for ${n} tokens`);
    }
    for (let i = 0; i < n; i++) {
      scores[i] = rawScores[i];
      if (stepDone(i)) yield;
    }
  }

  const attrs = new Uint16Array(n).fill(Attr.Normal);
  const rawTypes = getNumberArray(meta, 'tokenizer.ggml.token_type');
  if (rawTypes) {
    if (rawTypes.length < n) {
      throw new TokenizerError('bad-metadata', `tokenizer: tokenizer.ggml.token_type has ${rawTypes.length} entries for ${n} tokens`);
    }
    for (let i = 0; i < n; i++) {
      attrs[i] = attrFromType(rawTypes[i]);
      if (stepDone(i)) yield;
    }
  }

  const tokenToId = new StringIndex(tokens, type === 'none' ? 0 : n);
  yield* tokenToId.touch();
  if (type !== 'none') {
    for (let i = 0; i < n; i++) {
      if (tokens.lengthOf(i) === 0) tokens.override(i, `[EMPTY_${i}]`);  // as llama.cpp does
      tokenToId.add(i, true);  // a repeated string maps to its last id, as in llama.cpp's map
      if (stepDone(i)) yield;
    }
  }

  let spmPairs: NumberSet | undefined;
  if (type === 'spm') {
    spmPairs = new NumberSet();
    for (let i = 0; i < n; i++) {
      const t = tokens.at(i);
      let prev = -1;
      for (let k = 0; k < t.length; ) {
        const cp = t.codePointAt(k)!;
        if (prev >= 0) spmPairs.add(prev * 0x110000 + cp);
        prev = cp;
        k += cp > 0xffff ? 2 : 1;
      }
      if (stepDone(i)) yield;
    }
  }

  let mergeRanks = new StringIndex(StringTable.fromArray([]), 0);
  if (type === 'bpe') {
    const merges = getStringTable(meta, 'tokenizer.ggml.merges');
    if (!merges) throw new TokenizerError('bad-metadata', 'tokenizer: BPE metadata has no tokenizer.ggml.merges key');
    mergeRanks = new StringIndex(merges);
    yield* mergeRanks.touch();
    for (let i = 0; i < merges.length; i++) {
      // llama.cpp splits at the first space after position 0; a merge without one maps to ("", "").
      if (merges.at(i).indexOf(' ', 1) < 0) merges.override(i, ' ');
      mergeRanks.add(i, false);  // a repeated merge keeps its first rank
      if (stepDone(i)) yield;
    }
  }

  // Special ids from metadata (out-of-range values are ignored, as llama.cpp does).
  for (const k of Object.keys(special) as (keyof SpecialIds)[]) {
    if (special[k] >= n) special[k] = -1;
  }
  for (const [field, key] of SPECIAL_KEYS) {
    const v = getInt(meta, `tokenizer.ggml.${key}`);
    if (v !== undefined && v >= 0 && v < n) special[field] = v;
  }

  addBos = getBool(meta, 'tokenizer.ggml.add_bos_token') ?? addBos;
  addEos = getBool(meta, 'tokenizer.ggml.add_eos_token') ?? addEos;
  addSep = getBool(meta, 'tokenizer.ggml.add_sep_token') ?? addSep;

  // Auto-detect EOT / EOM / FIM tokens by text where metadata leaves them unset,
  // and force the control attribute on them.
  const markControl = (id: number) => {
    attrs[id] |= Attr.Control;
  };
  const detect = (field: keyof SpecialIds, candidates: readonly string[]) => {
    if (special[field] !== -1) return;
    for (const text of candidates) {
      const id = tokenToId.get(text);
      if (id !== undefined) {
        special[field] = id;
        markControl(id);
        return;
      }
    }
  };
  if (type !== 'none') {
    detect('eot', EOT_CANDIDATES);
    detect('eom', ['<|eom_id|>']);
    for (const [field, cands] of Object.entries(FIM_CANDIDATES)) detect(field as keyof SpecialIds, cands);

    for (let i = 0; i < n; i++) {
      if ((attrs[i] & Attr.Control) !== 0 && tokens.at(i).includes('unused')) attrs[i] |= Attr.Unused;
      if (stepDone(i)) yield;
    }
  }

  // End-of-generation set.
  const eog = new Set<number>();
  for (const id of [special.fimPad, special.fimRep, special.fimSep]) if (id !== -1) eog.add(id);
  if (type !== 'none') {
    for (let i = 0; i < n; i++) {
      if (tokens.lengthOf(i) <= EOG_MAX_LENGTH && EOG_TEXTS.has(tokens.at(i))) {
        eog.add(i);
        markControl(i);
      }
      if (stepDone(i)) yield;
    }
  }
  for (const t of ['<|channel|>', '<|message|>', '<|start|>', '<|constrain|>']) {
    const id = tokenToId.get(t);
    if (id !== undefined) attrs[id] = Attr.UserDefined;
  }
  for (const id of [special.eos, special.eot, special.eom]) if (id !== -1) eog.add(id);
  {
    const texts = new Map<string, number>();
    for (const id of eog) if (id >= 0 && id < n) texts.set(tokens.at(id), id);
    const end = texts.get('<|end|>');
    if (end !== undefined) {
      const hasCall = texts.has('<|call|>') || texts.has('<|calls|>');
      if ((texts.has('<|return|>') && hasCall) || (hasCall && texts.has('<|flush|>'))) {
        eog.delete(end);
        attrs[end] = Attr.UserDefined;
      }
    }
    const s = texts.get('</s>');
    if (s !== undefined && texts.has('<|tool_response>')) {
      eog.delete(s);
      attrs[s] = Attr.Normal;
    }
  }

  // Special-token partition order: longest UTF-8 text first, ties by id.
  const specialTokens: number[] = [];
  const byteLen = new Map<number, number>();
  for (let i = 0; i < n; i++) {
    if (attrs[i] & (Attr.Control | Attr.UserDefined | Attr.Unknown)) {
      specialTokens.push(i);
      byteLen.set(i, utf8Encoder.encode(tokens.at(i)).length);
    }
    if (stepDone(i)) yield;
  }
  specialTokens.sort((a, b) => byteLen.get(b)! - byteLen.get(a)! || a - b);
  const specialTexts = specialTokens.map((id) => tokens.at(id));

  return {
    type, model, pre, preSpec, tokens, scores, attrs, tokenToId, mergeRanks, spmPairs, special, eog, specialTokens, specialTexts,
    addBos, addEos, addSep, addSpacePrefix, cleanSpaces, ignoreMerges,
  };
}
