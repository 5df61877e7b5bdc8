// ============================================================================
// Tokenizer: text <-> token ids for GGUF vocabularies, matching llama.cpp.
//
//   const tok = Tokenizer.fromGgufMetadata(info.metadata);
//   const ids = tok.tokenize('Hello world');          // Int32Array
//   const text = tok.detokenize(ids);                  // 'Hello world'
//
// Supported: SPM (`tokenizer.ggml.model = llama`) and byte-level BPE (`gpt2`)
// with the pre-tokenizers listed in SUPPORTED_PRE_TOKENIZERS. The conformance
// suite is llama.cpp's own (`../shared/vocab/*.gguf` with .inp/.out files).
// ============================================================================

import { PieceTable, SpaceCleaner } from './detokenize.js';
import { BpeEncoder, SpmEncoder } from './encoders.js';
import { compileSplitRegex, splitWords, type CompiledSplitRegex } from './pretokenizer.js';
import type { SliceClock } from '../slices.js';
import { Attr, loadVocab, loadVocabAsync, TokenizerError, type Vocab, type VocabType } from './vocab.js';

export { SUPPORTED_PRE_TOKENIZERS } from './pretokenizer.js';
export { TokenizerError, type VocabType } from './vocab.js';

/** Options for {@link Tokenizer.tokenize}. */
export interface TokenizeOptions {
  /** Prepend BOS. Defaults to the GGUF's `tokenizer.ggml.add_bos_token` (SPM: true, BPE: false unless set). */
  addBos?: boolean;
  /** Append EOS. Defaults to the GGUF's `tokenizer.ggml.add_eos_token` (usually false). */
  addEos?: boolean;
  /**
   * Parse control tokens written in the text (e.g. `<|im_start|>`) as single tokens.
   * User-defined tokens are always parsed, as in llama.cpp. Defaults to false.
   */
  special?: boolean;
}

/** Options for {@link Tokenizer.detokenize} and {@link Tokenizer.tokenToPiece}. */
export interface DetokenizeOptions {
  /** Render control and unknown tokens as their text instead of nothing. Defaults to false. */
  special?: boolean;
}

/** Options for {@link StreamingDetokenizer}. */
export type StreamingDetokenizerOptions = DetokenizeOptions;

const TOKENIZE_KEYS = new Set(['addBos', 'addEos', 'special']);
const DETOKENIZE_KEYS = new Set(['special']);

function describe(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;
}

function checkOptions(name: string, options: unknown, keys: ReadonlySet<string>): void {
  if (options === undefined) return;
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new TypeError(`Expected an object for ${name} options but received ${String(options)} (${describe(options)})`);
  }
  for (const [k, v] of Object.entries(options)) {
    if (!keys.has(k)) {
      throw new TypeError(`Unknown ${name} option "${k}"; expected one of: ${[...keys].join(', ')}`);
    }
    if (v !== undefined && typeof v !== 'boolean') {
      throw new TypeError(`Expected a boolean for ${k} but received ${String(v)} (${describe(v)})`);
    }
  }
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
const decoder = new TextDecoder('utf-8', { ignoreBOM: true });
const ABSENT = (id: number): number | undefined => (id >= 0 ? id : undefined);

/** A fragment of the input after special-token partitioning: raw text or a token id. */
type Fragment = string | number;

/** Converts between text and token ids for one GGUF vocabulary, like llama.cpp does. */
export class Tokenizer {
  /** @internal */ readonly vocab: Vocab;
  /** @internal */ readonly pieces: PieceTable;
  private readonly spm: SpmEncoder | undefined;
  private readonly bpe: BpeEncoder | undefined;
  private readonly splitRegexes: readonly CompiledSplitRegex[];

  /** Which algorithm the vocabulary uses: 'spm', 'bpe', 'wpm' or 'none'. */
  readonly type: VocabType;
  /** Number of tokens in the vocabulary. */
  readonly vocabSize: number;
  /** Beginning-of-sequence token, if any. */
  readonly bos: number | undefined;
  /** End-of-sequence token, if any. */
  readonly eos: number | undefined;
  /** End-of-turn token (given or detected by text, e.g. `<|im_end|>`), if any. */
  readonly eot: number | undefined;
  /** End-of-message token (`<|eom_id|>`), if any. */
  readonly eom: number | undefined;
  /** Unknown token, if any. */
  readonly unk: number | undefined;
  /** Separator token, if any. */
  readonly sep: number | undefined;
  /** Padding token, if any. */
  readonly pad: number | undefined;
  /** Fill-in-the-middle tokens, if any. */
  readonly fim: {
    readonly pre: number | undefined;
    readonly suf: number | undefined;
    readonly mid: number | undefined;
    readonly pad: number | undefined;
    readonly rep: number | undefined;
    readonly sep: number | undefined;
  };
  /** Every token that ends generation (EOS, EOT, EOM and the ones llama.cpp detects by text), ascending. */
  readonly eogTokens: readonly number[];
  /** The GGUF's default for prepending BOS. */
  readonly addBosDefault: boolean;
  /** The GGUF's default for appending EOS. */
  readonly addEosDefault: boolean;

  private constructor(vocab: Vocab) {
    this.vocab = vocab;
    this.pieces = new PieceTable(vocab);
    this.type = vocab.type;
    this.vocabSize = vocab.tokens.length;
    const s = vocab.special;
    this.bos = ABSENT(s.bos);
    this.eos = ABSENT(s.eos);
    this.eot = ABSENT(s.eot);
    this.eom = ABSENT(s.eom);
    this.unk = ABSENT(s.unk);
    this.sep = ABSENT(s.sep);
    this.pad = ABSENT(s.pad);
    this.fim = Object.freeze({
      pre: ABSENT(s.fimPre),
      suf: ABSENT(s.fimSuf),
      mid: ABSENT(s.fimMid),
      pad: ABSENT(s.fimPad),
      rep: ABSENT(s.fimRep),
      sep: ABSENT(s.fimSep),
    });
    this.eogTokens = Object.freeze([...vocab.eog].sort((a, b) => a - b));
    this.addBosDefault = vocab.addBos;
    this.addEosDefault = vocab.addEos;
    this.spm = vocab.type === 'spm' ? new SpmEncoder(vocab) : undefined;
    this.bpe = vocab.type === 'bpe' ? new BpeEncoder(vocab) : undefined;
    this.splitRegexes = vocab.preSpec ? vocab.preSpec.regexes.map(compileSplitRegex) : [];
  }

  /**
   * Builds a tokenizer from GGUF metadata (`readGgufInfo(path).metadata`).
   * @throws TokenizerError for an unsupported `tokenizer.ggml.model` or `tokenizer.ggml.pre`,
   *   or missing/mistyped tokenizer keys.
   */
  static fromGgufMetadata(metadata: Readonly<Record<string, unknown>>): Tokenizer {
    if (typeof metadata !== 'object' || metadata === null) {
      throw new TypeError(`Expected an object for metadata but received ${String(metadata)} (${describe(metadata)})`);
    }
    return new Tokenizer(loadVocab(metadata));
  }

  /**
   * fromGgufMetadata without holding the event loop: a real BPE vocab takes 50-100 ms to index,
   * done here in slices of a few milliseconds (what loadModel uses). `clock` (internal) times
   * the slices as part of a larger piece of work.
   */
  static async fromGgufMetadataAsync(metadata: Readonly<Record<string, unknown>>, clock?: SliceClock): Promise<Tokenizer> {
    if (typeof metadata !== 'object' || metadata === null) {
      throw new TypeError(`Expected an object for metadata but received ${String(metadata)} (${describe(metadata)})`);
    }
    return new Tokenizer(await loadVocabAsync(metadata, clock));
  }

  /** Frees the word/chunk → ids cache (it refills as text is tokenized; capped at 65536 entries). */
  clearCache(): void {
    this.bpe?.clearCache();
    this.spm?.clearCache();
  }

  /** True if `token` ends generation. */
  isEog(token: number): boolean {
    return this.vocab.eog.has(token);
  }

  /** True for control tokens (rendered only with `special: true`). */
  isControl(token: number): boolean {
    return (this.vocab.attrs[token] & Attr.Control) !== 0;
  }

  /** The token's raw vocabulary string (e.g. `▁Hello`, `Ġworld`, `<0x0A>`). */
  tokenText(token: number): string {
    this.checkToken(token, 0);
    return this.vocab.tokens.at(token);
  }

  /** The token's id for an exact vocabulary string, if there is one. */
  textToToken(text: string): number | undefined {
    return this.vocab.tokenToId.get(text);
  }

  /**
   * Text → token ids, like llama.cpp's `llama_tokenize(text, add_special, parse_special)`.
   * @throws TokenizerError for a vocabulary type that cannot tokenize ('wpm', 'none').
   */
  tokenize(text: string, options?: TokenizeOptions): Int32Array {
    if (typeof text !== 'string') {
      throw new TypeError(`Expected a string for text but received ${describe(text)}`);
    }
    checkOptions('tokenize', options, TOKENIZE_KEYS);
    const { vocab } = this;
    const addBos = options?.addBos ?? vocab.addBos;
    const addEos = options?.addEos ?? vocab.addEos;
    if (addBos && vocab.special.bos < 0) throw new TokenizerError('bad-metadata', 'tokenizer: addBos is set but the vocabulary has no BOS token');
    if (addEos && vocab.special.eos < 0) throw new TokenizerError('bad-metadata', 'tokenizer: addEos is set but the vocabulary has no EOS token');

    // llama.cpp receives UTF-8: a lone surrogate arrives as U+FFFD.
    text = text.replace(LONE_SURROGATE, '\uFFFD');
    const out: number[] = [];
    const fragments = this.partition(text, options?.special ?? false);
    if (addBos) out.push(vocab.special.bos);

    if (this.spm) {
      let prevSpecial = true; // a space prefix goes on the first text and after each special token
      for (const f of fragments) {
        if (typeof f === 'number') {
          out.push(f);
          prevSpecial = true;
          continue;
        }
        const t = vocab.addSpacePrefix && prevSpecial ? ' ' + f : f;
        this.spm.encode(t.replaceAll(' ', '\u2581'), out);
        prevSpecial = false;
      }
    } else if (this.bpe) {
      for (const f of fragments) {
        if (typeof f === 'number') {
          out.push(f);
          continue;
        }
        for (const word of splitWords(f, this.splitRegexes)) this.bpe.encodeWord(word, out);
      }
    } else {
      throw new TokenizerError('unsupported', `tokenizer: tokenizing with a "${vocab.model}" vocabulary is not supported`);
    }

    if (addEos) out.push(vocab.special.eos);
    return Int32Array.from(out);
  }

  /**
   * Splits the text on special-token strings, longest first (llama.cpp's
   * tokenizer_st_partition). Control and unknown tokens only with `parseSpecial`.
   */
  private partition(text: string, parseSpecial: boolean): Fragment[] {
    if (text.length === 0) return [];
    let frags: Fragment[] = [text];
    const { specialTokens, specialTexts, attrs } = this.vocab;
    for (let s = 0; s < specialTokens.length; s++) {
      const id = specialTokens[s]!;
      if (!parseSpecial && (attrs[id] & (Attr.Control | Attr.Unknown)) !== 0) continue;
      const tok = specialTexts[s]!;
      if (!text.includes(tok)) continue;
      const next: Fragment[] = [];
      for (const f of frags) {
        if (typeof f === 'number') {
          next.push(f);
          continue;
        }
        let pos = 0;
        for (let m = f.indexOf(tok); m >= 0; m = f.indexOf(tok, pos)) {
          if (m > pos) next.push(f.slice(pos, m));
          next.push(id);
          pos = m + tok.length;
        }
        if (pos < f.length) next.push(pos === 0 ? f : f.slice(pos));
      }
      frags = next;
    }
    return frags;
  }

  private checkToken(t: number, i: number): void {
    if (!Number.isInteger(t) || t < 0 || t >= this.vocab.tokens.length) {
      throw new RangeError(
        `Expected a token id in [0, ${this.vocab.tokens.length}) but received ${String(t)} (${describe(t)}) at index ${i}`,
      );
    }
  }

  /** @internal Pieces of `tokens` concatenated, before space cleanup. */
  rawBytes(tokens: ArrayLike<number>, special: boolean, stripFirstSpace: boolean): number[] {
    const out: number[] = [];
    for (let i = 0; i < tokens.length; i++) {
      const t = tokens[i];
      this.checkToken(t, i);
      const p = this.pieces.bytes(t, special);
      let k = 0;
      if (i === 0 && stripFirstSpace && p.length > 0 && p[0] === 0x20) k = 1;
      for (; k < p.length; k++) out.push(p[k]);
    }
    return out;
  }

  /**
   * Token ids → text, like llama.cpp's `llama_detokenize(remove_special=false, unparse_special=special)`:
   * SPM drops the leading space of the first token, BPE applies clean_up_tokenization_spaces
   * where the vocabulary asks for it. Invalid UTF-8 becomes U+FFFD.
   */
  detokenize(tokens: ArrayLike<number>, options?: DetokenizeOptions): string {
    checkOptions('detokenize', options, DETOKENIZE_KEYS);
    const special = options?.special ?? false;
    let bytes = this.rawBytes(tokens, special, this.vocab.addSpacePrefix);
    if (this.vocab.cleanSpaces) bytes = new SpaceCleaner().push(bytes, true);
    return decoder.decode(Uint8Array.from(bytes));
  }

  /** One token's text (`llama_token_to_piece`), without any cleanup; partial UTF-8 becomes U+FFFD. */
  tokenToPiece(token: number, options?: DetokenizeOptions): string {
    checkOptions('tokenToPiece', options, DETOKENIZE_KEYS);
    this.checkToken(token, 0);
    return decoder.decode(this.pieces.bytes(token, options?.special ?? false));
  }

  /** One token's bytes (`llama_token_to_piece`). The array is shared: do not modify it. */
  tokenToBytes(token: number, options?: DetokenizeOptions): Uint8Array {
    checkOptions('tokenToBytes', options, DETOKENIZE_KEYS);
    this.checkToken(token, 0);
    return this.pieces.bytes(token, options?.special ?? false);
  }
}

/**
 * Turns a stream of generated tokens into text chunks. It holds back incomplete
 * UTF-8 sequences and the bytes that space cleanup may still change, so the
 * concatenation of every `push` result and the final `flush` equals
 * `tokenizer.detokenize(allTokens, options)` exactly.
 */
export class StreamingDetokenizer {
  private readonly tokenizer: Tokenizer;
  private readonly special: boolean;
  private cleaner: SpaceCleaner | undefined;
  private decoder = new TextDecoder('utf-8', { ignoreBOM: true });
  private first = true;

  constructor(tokenizer: Tokenizer, options?: StreamingDetokenizerOptions) {
    if (!(tokenizer instanceof Tokenizer)) {
      throw new TypeError(`Expected a Tokenizer but received ${describe(tokenizer)}`);
    }
    checkOptions('StreamingDetokenizer', options, DETOKENIZE_KEYS);
    this.tokenizer = tokenizer;
    this.special = options?.special ?? false;
    this.cleaner = tokenizer.vocab.cleanSpaces ? new SpaceCleaner() : undefined;
  }

  /** Adds one or more tokens; returns the text that is now final (possibly ''). */
  push(tokens: number | ArrayLike<number>): string {
    const list = typeof tokens === 'number' ? [tokens] : tokens;
    if (list.length === 0) return '';
    let bytes: ArrayLike<number> = this.tokenizer.rawBytes(
      list,
      this.special,
      this.first && this.tokenizer.vocab.addSpacePrefix,
    );
    this.first = false;
    if (this.cleaner) bytes = this.cleaner.push(bytes, false);
    return this.decoder.decode(Uint8Array.from(bytes), { stream: true });
  }

  /** Ends the stream: returns whatever was held back (incomplete UTF-8 becomes U+FFFD) and resets. */
  flush(): string {
    const bytes = this.cleaner ? this.cleaner.push([], true) : [];
    const text = this.decoder.decode(Uint8Array.from(bytes));
    this.reset();
    return text;
  }

  /** Forgets all state, as if newly constructed. */
  reset(): void {
    this.decoder = new TextDecoder('utf-8', { ignoreBOM: true });
    this.cleaner = this.tokenizer.vocab.cleanSpaces ? new SpaceCleaner() : undefined;
    this.first = true;
  }
}
