// ============================================================================
// BPE pre-tokenizers: split text into words before byte-level BPE.
//
// Each `tokenizer.ggml.pre` value maps to an ordered list of regexes (the
// patterns come from the models' tokenizer.json files, as adapted by
// llama.cpp). Every regex splits every current segment into matches and the
// gaps between them, and both are kept ("Isolated" behaviour), so the list is
// applied as a pipeline.
//
// To reproduce llama.cpp exactly we evaluate the regexes the way it does:
// - A regex that uses Unicode categories (\p{L}, \p{N}, ...) runs on a
//   "collapsed" copy of the text in which every non-ASCII codepoint is replaced
//   by one stand-in char for its category (non-ASCII whitespace by U+000B), and
//   each \p{X} becomes a class of that stand-in plus its ASCII members.
// - A regex without categories runs on the raw codepoints with non-ASCII
//   whitespace replaced by U+000B, and `\s` meaning ASCII whitespace only.
// ============================================================================

import {
  CAT_LETTER,
  CAT_MARK,
  CAT_NUMBER,
  CAT_PUNCT,
  CAT_SPACE,
  CAT_SYMBOL,
  collapsedCode,
  isWhitespace,
} from './unicode.js';

/** How one `tokenizer.ggml.pre` value behaves. */
export interface PreTokenizerSpec {
  /** Regexes in llama.cpp's (std::regex ECMAScript) syntax, applied in order. */
  readonly regexes: readonly string[];
  /** Whether detokenization applies clean_up_tokenization_spaces (BPE default true). */
  readonly cleanSpaces: boolean;
  /** A word that is itself a token is emitted whole, without running merges. */
  readonly ignoreMerges: boolean;
  /** Default add_bos before the GGUF's own `add_bos_token` key is read (BPE default false). */
  readonly addBos: boolean;
}

interface PreEntry {
  readonly family: Family;
  readonly cleanSpaces?: boolean;
  readonly ignoreMerges?: boolean;
  readonly addBos?: boolean;
}

// ----------------------------------------------------------------------------
// Pattern families (names follow llama.cpp's LLAMA_VOCAB_PRE_TYPE_*).
// ----------------------------------------------------------------------------

const CONTRACTIONS_CI = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])";
const GPT2_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
const LLAMA3_PATTERN =
  CONTRACTIONS_CI +
  '|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+';
const QWEN2_PATTERN =
  CONTRACTIONS_CI +
  '|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+';

const FAMILIES = {
  DEFAULT: {
    regexes: [
      '[\\p{P}\\$\\+<=>\\^~\\|]+',
      GPT2_PATTERN,
      '\\p{N}+',
      '[0-9][0-9][0-9]',
    ],
  },
  LLAMA3: { regexes: [LLAMA3_PATTERN] },
  JAIS2: {
    regexes: [
      CONTRACTIONS_CI +
        '|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s{512}(?!\\S)|\\s{256}(?!\\S)|\\s{128}(?!\\S)|\\s{64}(?!\\S)|\\s{32}(?!\\S)|\\s{16}(?!\\S)|\\s{8}(?!\\S)|\\s{4}(?!\\S)|\\s{1,2}(?!\\S)|\\s{1}',
    ],
  },
  DEEPSEEK_LLM: {
    regexes: [
      '[\r\n]',
      '\\s?[A-Za-z\u00B5\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u01BA\u01BC-\u01BF\u01C4-\u0293\u0295-\u02AF\u0370-\u0373\u0376\u0377\u037B-\u037D\u037F\u0386\u0388-\u038A\u038C\u038E-\u03A1\u03A3-\u03F5\u03F7-\u0481\u048A-\u052F\u0531-\u0556\u10A0-\u10C5\u13A0-\u13F5\u13F8-\u13FD\u1C90-\u1CBA\u1CBD-\u1CBF\u1D00-\u1D2B\u1D6B-\u1D77\u1D79-\u1D9A\u1E00-\u1F15\u1F18-\u1F1D\u1F20-\u1F45\u1F48-\u1F4D\u1F50-\u1F57\u1F59\u1F5B\u1F5D\u1F5F-\u1F7D\u1F80-\u1FB4\u1FB6-\u1FBC\u1FBE\u1FC2-\u1FC4\u1FC6-\u1FCC\u1FD0-\u1FD3\u1FD6-\u1FDB\u1FE0-\u1FEC\u1FF2-\u1FF4\u1FF6-\u1FFC\u2102\u2107\u210A-\u2113\u2115\u2119-\u211D\u2124\u2126\u2128\u212A-\u212D\u212F-\u2134\u2139\u213C-\u213F\u2145-\u2149\u214E\u2183\u2184\u2C00-\u2C7B\u2C7E-\u2CE4\u2CEB-\u2CEE\u2CF2\u2CF3\uA640-\uA66D\uA680-\uA69B\uA722-\uA76F\uA771-\uA787\uA78B-\uA78E\uAB70-\uABBF\uFB00-\uFB06\uFB13-\uFB17\uFF21-\uFF3A\uFF41-\uFF5A\u{10400}-\u{1044F}\u{104B0}-\u{104D3}\u{104D8}-\u{104FB}\u{10C80}-\u{10CB2}\u{10CC0}-\u{10CF2}\u{118A0}-\u{118DF}\u{1E900}-\u{1E943}]+',
      '\\s?[!-/:-~\uFF01-\uFF0F\uFF1A-\uFF5E\u2018-\u201F\u3000-\u3002]+',
      '\\s+$',
      '[\u4E00-\u9FA5\u0800-\u4E00\uAC00-\uD7FF]+',
      '\\p{N}+',
    ],
  },
  DEEPSEEK3_LLM: {
    regexes: [
      '\\p{N}{1,3}',
      '[\u4E00-\u9FA5\u3040-\u309F\u30A0-\u30FF]+',
      "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
    ],
  },
  YOUTU: {
    regexes: [
      '[\uAC00-\uD7A3\u3131-\u318E]+|[\uFF01\u2026\u201C\u201D\u2018\u2019\u2014\uFF1A\uFF1B\uFF0C\u3001-\u303F\uFE30-\uFE4F]+|[\u3105-\u312F]+|[\u4E00-\u9FA5\u3040-\u309F\u30A0-\u30FF]+',
      '[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+' +
        CONTRACTIONS_CI +
        '?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*' +
        CONTRACTIONS_CI +
        '?|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+',
    ],
  },
  DEEPSEEK_CODER: {
    regexes: ['[\r\n]', '\\s?\\p{L}+', '\\s?\\p{P}+', '[\u4E00-\u9FA5\u0800-\u4E00\uAC00-\uD7FF]+', '\\p{N}'],
  },
  FALCON: {
    regexes: ['[\\p{P}\\$\\+<=>\\^~\\|`]+', GPT2_PATTERN, '[0-9][0-9][0-9]'],
  },
  STARCODER: { regexes: ['\\p{N}', GPT2_PATTERN] },
  GPT2: { regexes: [GPT2_PATTERN] },
  QWEN2: { regexes: [QWEN2_PATTERN] },
  QWEN35: {
    regexes: [
      CONTRACTIONS_CI +
        '|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| ?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+',
    ],
  },
  PORO: { regexes: [' ?[^(\\s|.,!?\u2026\u3002\uFF0C\u3001\u0964\u06D4\u060C)]+'] },
  CHATGLM4: { regexes: [LLAMA3_PATTERN] },
  VIKING: { regexes: [' ?[^(\\s|.,!?\u2026\u3002\uFF0C\u3001\u0964\u06D4\u060C)]+', '\\p{N}'] },
  TEKKEN: {
    regexes: [
      '[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+',
    ],
  },
  CHAMELEON: {
    regexes: [
      '<sentinel:[0-9]+>',
      '(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z',
      '([\\t\\n]|    |  )',
      '\\p{N}',
      '[\\p{P}!-/:-@\\[-`{-~]',
      GPT2_PATTERN,
    ],
  },
  GPT4O: {
    regexes: [
      '[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+' +
        CONTRACTIONS_CI +
        '?|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*' +
        CONTRACTIONS_CI +
        '?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+',
    ],
  },
  BAILINGMOE: {
    regexes: [
      "'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+",
    ],
  },
  SEED_CODER: {
    regexes: [
      CONTRACTIONS_CI +
        '|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1}| ?[^\\s\\p{L}\\p{N}\\r\\n]+|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+',
    ],
  },
  LAGUNA: { regexes: ['[^\\n]+|[\\n]+', QWEN2_PATTERN] },
  EXAONE_MOE: {
    regexes: [
      CONTRACTIONS_CI +
        '|[^\\r\\n\\p{L}\\p{N}]?(?:\\p{L}\\p{M}*(?: \\p{L}\\p{M}*)*)+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]?|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+',
    ],
  },
  MINICPM5: {
    regexes: [
      '\\p{N}{1,3}',
      CONTRACTIONS_CI +
        '|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}+| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+',
    ],
  },
} satisfies Record<string, { regexes: readonly string[] }>;

type Family = keyof typeof FAMILIES;

/**
 * `tokenizer.ggml.pre` value -> pattern family and the flags llama.cpp sets for that name
 * (clean_spaces defaults to true for BPE; ignore_merges and add_bos to false).
 */
const PRE_NAMES: Record<string, PreEntry> = {
  default: { family: 'DEFAULT' },
  minicpm5: { family: 'MINICPM5', ignoreMerges: true },
  llama3: { family: 'LLAMA3', ignoreMerges: true, addBos: true },
  'llama-v3': { family: 'LLAMA3', ignoreMerges: true, addBos: true },
  'llama-bpe': { family: 'LLAMA3', ignoreMerges: true, addBos: true },
  falcon3: { family: 'LLAMA3', ignoreMerges: true, addBos: true },
  'falcon-h1': { family: 'LLAMA3', ignoreMerges: true, addBos: true },
  pixtral: { family: 'LLAMA3', ignoreMerges: true, addBos: true },
  'midm-2.0': { family: 'LLAMA3', ignoreMerges: true, addBos: true },
  lfm2: { family: 'LLAMA3', ignoreMerges: true, addBos: true },
  'jina-v5-nano': { family: 'LLAMA3', ignoreMerges: true, addBos: true },
  dbrx: { family: 'LLAMA3' },
  'smaug-bpe': { family: 'LLAMA3' },
  'jais-2': { family: 'JAIS2' },
  'deepseek-llm': { family: 'DEEPSEEK_LLM', cleanSpaces: false },
  'deepseek-coder': { family: 'DEEPSEEK_CODER', cleanSpaces: false },
  'deepseek-v3': { family: 'DEEPSEEK3_LLM', cleanSpaces: false },
  'hunyuan-dense': { family: 'DEEPSEEK3_LLM', cleanSpaces: false },
  'joyai-llm': { family: 'DEEPSEEK3_LLM', cleanSpaces: false },
  youtu: { family: 'YOUTU', cleanSpaces: false, ignoreMerges: true },
  falcon: { family: 'FALCON' },
  'gpt-2': { family: 'GPT2' },
  'phi-2': { family: 'GPT2' },
  'jina-es': { family: 'GPT2' },
  'jina-de': { family: 'GPT2' },
  gigachat: { family: 'GPT2' },
  'jina-v2-es': { family: 'GPT2' },
  'jina-v2-de': { family: 'GPT2' },
  'a.x-4.0': { family: 'GPT2' },
  mellum: { family: 'GPT2' },
  'modern-bert': { family: 'GPT2' },
  'jina-v1-en': { family: 'GPT2' },
  'jina-v2-code': { family: 'GPT2' },
  'roberta-bpe': { family: 'GPT2' },
  mpt: { family: 'GPT2' },
  olmo: { family: 'GPT2' },
  jais: { family: 'GPT2' },
  exaone4: { family: 'GPT2' },
  trillion: { family: 'GPT2', cleanSpaces: false },
  'granite-docling': { family: 'GPT2', cleanSpaces: false },
  starcoder: { family: 'STARCODER' },
  refact: { family: 'STARCODER' },
  codeshell: { family: 'STARCODER' },
  exaone: { family: 'STARCODER' },
  'minerva-7b': { family: 'STARCODER' },
  mellum2: { family: 'STARCODER' },
  'command-r': { family: 'STARCODER', cleanSpaces: false },
  smollm: { family: 'STARCODER', cleanSpaces: false },
  qwen2: { family: 'QWEN2', cleanSpaces: false },
  'deepseek-r1-qwen': { family: 'QWEN2', cleanSpaces: false },
  kormo: { family: 'QWEN2', cleanSpaces: false },
  f2llmv2: { family: 'QWEN2', cleanSpaces: false },
  hunyuan: { family: 'QWEN2', cleanSpaces: false },
  'solar-open': { family: 'QWEN2', cleanSpaces: false },
  stablelm2: { family: 'QWEN2' },
  megrez: { family: 'QWEN2' },
  qwen35: { family: 'QWEN35', cleanSpaces: false },
  'poro-chat': { family: 'PORO', cleanSpaces: false },
  bloom: { family: 'PORO' },
  'gpt3-finnish': { family: 'PORO' },
  glm4: { family: 'CHATGLM4' },
  'chatglm-bpe': { family: 'CHATGLM4' },
  viking: { family: 'VIKING', cleanSpaces: false },
  tekken: { family: 'TEKKEN', cleanSpaces: false, ignoreMerges: true, addBos: true },
  chameleon: { family: 'CHAMELEON', cleanSpaces: false, addBos: true },
  'gpt-4o': { family: 'GPT4O', cleanSpaces: false },
  llama4: { family: 'GPT4O', cleanSpaces: false },
  kanana2: { family: 'GPT4O', cleanSpaces: false },
  talkie: { family: 'GPT4O', cleanSpaces: false },
  'minimax-m2': { family: 'GPT4O', cleanSpaces: false },
  bailingmoe: { family: 'BAILINGMOE', cleanSpaces: false },
  bailingmoe2: { family: 'BAILINGMOE', cleanSpaces: false },
  'llada-moe': { family: 'BAILINGMOE', cleanSpaces: false },
  'seed-coder': { family: 'SEED_CODER', cleanSpaces: false },
  'grok-2': { family: 'QWEN2', cleanSpaces: false },
  laguna: { family: 'LAGUNA', cleanSpaces: false },
  'exaone-moe': { family: 'EXAONE_MOE' },
};

/** Every `tokenizer.ggml.pre` value this package can tokenize. */
export const SUPPORTED_PRE_TOKENIZERS: readonly string[] = Object.keys(PRE_NAMES).sort();

/**
 * The pre-tokenizer spec for a `tokenizer.ggml.pre` value, or undefined if unsupported.
 * A missing value means 'default' (llama.cpp warns that quality will degrade).
 */
export function preTokenizerSpec(pre: string | undefined): PreTokenizerSpec | undefined {
  const entry = PRE_NAMES[pre === undefined || pre === '' ? 'default' : pre];
  if (!entry) return undefined;
  return {
    regexes: FAMILIES[entry.family].regexes,
    cleanSpaces: entry.cleanSpaces ?? true,
    ignoreMerges: entry.ignoreMerges ?? false,
    addBos: entry.addBos ?? false,
  };
}

// ----------------------------------------------------------------------------
// Regex compilation
// ----------------------------------------------------------------------------

const CATEGORY_CLASS: Record<string, string> = {
  N: `\\x${CAT_NUMBER.toString(16)}0-9`,
  L: `\\x${CAT_LETTER.toString(16)}A-Za-z`,
  Lu: `\\x${CAT_LETTER.toString(16)}A-Za-z`,
  Ll: `\\x${CAT_LETTER.toString(16)}A-Za-z`,
  Lt: `\\x${CAT_LETTER.toString(16)}A-Za-z`,
  Lm: `\\x${CAT_LETTER.toString(16)}A-Za-z`,
  Lo: `\\x${CAT_LETTER.toString(16)}A-Za-z`,
  P: `\\x${CAT_PUNCT.toString(16)}\\x21-\\x23\\x25-\\x2A\\x2C-\\x2F\\x3A\\x3B\\x3F\\x40\\x5B-\\x5D\\x5F\\x7B\\x7D`,
  M: `\\x${CAT_MARK.toString(16)}`,
  S: `\\x${CAT_SYMBOL.toString(16)}\\x24\\x2B\\x3C-\\x3E\\x5E\\x60\\x7C\\x7E`,
};

const ASCII_SPACE_CLASS = '\\t\\n\\v\\f\\r ';

/** A regex ready to run, and which text representation it runs on. */
export interface CompiledSplitRegex {
  readonly re: RegExp;
  readonly collapsed: boolean;
}

/** Translates one llama.cpp pre-tokenizer regex into a JS RegExp (see the file header). */
export function compileSplitRegex(src: string): CompiledSplitRegex {
  const collapsed = /\\p\{(?:N|L|P|M|S|Lu|Ll|Lt|Lm|Lo)\}/.test(src);
  let out = '';
  let inClass = false;
  for (let i = 0; i < src.length; i++) {
    const c = src[i];
    if (c === '\\') {
      const n = src[i + 1];
      if (n === 'p' && src[i + 2] === '{') {
        const close = src.indexOf('}', i + 3);
        const name = src.slice(i + 3, close);
        const cls = CATEGORY_CLASS[name];
        if (close < 0 || cls === undefined) {
          throw new Error(`tokenizer: unsupported Unicode property \\p{${name}} in pre-tokenizer regex`);
        }
        out += inClass ? cls : `[${cls}]`;
        i = close;
        continue;
      }
      if (!collapsed && (n === 's' || n === 'S')) {
        // std::wregex \s is ASCII-only; non-ASCII whitespace was mapped to U+000B.
        if (inClass) {
          if (n === 'S') throw new Error('tokenizer: \\S inside a class is not supported');
          out += ASCII_SPACE_CLASS;
        } else {
          out += n === 's' ? `[${ASCII_SPACE_CLASS}]` : `[^${ASCII_SPACE_CLASS}]`;
        }
        i++;
        continue;
      }
      out += c + (n ?? '');
      i++;
      continue;
    }
    if (c === '[' && !inClass) inClass = true;
    else if (c === ']' && inClass) inClass = false;
    out += c;
  }
  return { re: new RegExp(out, collapsed ? 'g' : 'gu'), collapsed };
}

// ----------------------------------------------------------------------------
// Splitting
// ----------------------------------------------------------------------------

/**
 * Text prepared for splitting: the original string plus the two derived
 * representations the regexes run on, built on first use.
 */
class SplitText {
  private collapsedStr: string | undefined;
  private rawStr: string | undefined;
  /** unit offset of codepoint i (length nCp + 1); only when the text has astral chars. */
  private cpToUnit: Int32Array | undefined;
  /** codepoint index of the codepoint starting at unit u (length nUnits + 1); only with astral chars. */
  private unitToCp: Int32Array | undefined;

  constructor(readonly text: string) {}

  collapsed(): string {
    if (this.collapsedStr !== undefined) return this.collapsedStr;
    const t = this.text;
    const n = t.length;
    let astral = false;
    const codes = new Uint16Array(n);
    let k = 0;
    for (let i = 0; i < n; i++) {
      let cp = t.charCodeAt(i);
      if (cp >= 0xd800 && cp <= 0xdbff && i + 1 < n) {
        const lo = t.charCodeAt(i + 1);
        if (lo >= 0xdc00 && lo <= 0xdfff) {
          cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
          astral = true;
        }
      }
      codes[k++] = cp < 0x80 ? cp : collapsedCode(cp);
      if (cp > 0xffff) i++;
    }
    if (astral) {
      const cpToUnit = new Int32Array(k + 1);
      const unitToCp = new Int32Array(n + 1);
      let c = 0;
      for (let i = 0; i < n; i++) {
        cpToUnit[c] = i;
        unitToCp[i] = c;
        const hi = t.charCodeAt(i);
        if (hi >= 0xd800 && hi <= 0xdbff && i + 1 < n) {
          const lo = t.charCodeAt(i + 1);
          if (lo >= 0xdc00 && lo <= 0xdfff) {
            unitToCp[i + 1] = c;
            i++;
          }
        }
        c++;
      }
      cpToUnit[c] = n;
      unitToCp[n] = c;
      this.cpToUnit = cpToUnit;
      this.unitToCp = unitToCp;
    }
    let s = '';
    const CHUNK = 8192;
    for (let i = 0; i < k; i += CHUNK) {
      s += String.fromCharCode.apply(null, codes.subarray(i, Math.min(k, i + CHUNK)) as unknown as number[]);
    }
    this.collapsedStr = s;
    return s;
  }

  raw(): string {
    if (this.rawStr !== undefined) return this.rawStr;
    const t = this.text;
    let s = '';
    let last = 0;
    for (let i = 0; i < t.length; i++) {
      const c = t.charCodeAt(i);
      if (c >= 0x80 && isWhitespace(c)) {
        s += t.slice(last, i) + String.fromCharCode(CAT_SPACE);
        last = i + 1;
      }
    }
    this.rawStr = last === 0 ? t : s + t.slice(last);
    return this.rawStr;
  }

  /** Splits unit range [start, end) with `rx`, appending the resulting unit boundaries to `out`. */
  split(rx: CompiledSplitRegex, start: number, end: number, out: number[]): void {
    const re = rx.re;
    let sub: string;
    let base: number;
    let toUnit: Int32Array | undefined;
    if (rx.collapsed) {
      const col = this.collapsed();
      toUnit = this.cpToUnit;
      const map = this.unitToCp;
      base = map ? map[start] : start;
      sub = col.slice(base, map ? map[end] : end);
    } else {
      base = start;
      sub = this.raw().slice(start, end);
    }
    re.lastIndex = 0;
    let last = 0;
    for (let m = re.exec(sub); m !== null; m = re.exec(sub)) {
      const len = m[0].length;
      if (len === 0) {
        re.lastIndex++;
        continue;
      }
      const idx = m.index;
      if (idx > last) out.push(toUnit ? toUnit[base + idx] : base + idx);
      const e = idx + len;
      out.push(toUnit ? toUnit[base + e] : base + e);
      last = e;
    }
    if (last < sub.length) out.push(end);
  }
}

/**
 * Splits `text` into pre-tokenizer words: each regex of the pipeline splits
 * every segment left by the previous one. Returns the words in order.
 */
export function splitWords(text: string, regexes: readonly CompiledSplitRegex[]): string[] {
  if (text.length === 0) return [];
  const st = new SplitText(text);
  // bounds[i] is the end of segment i; segment 0 starts at 0.
  let bounds: number[] = [text.length];
  for (const rx of regexes) {
    const next: number[] = [];
    let s = 0;
    for (const e of bounds) {
      st.split(rx, s, e, next);
      s = e;
    }
    bounds = next;
  }
  const words = new Array<string>(bounds.length);
  let s = 0;
  for (let i = 0; i < bounds.length; i++) {
    words[i] = text.slice(s, bounds[i]);
    s = bounds[i];
  }
  return words;
}
