/**
 * Sessions: one sequence's KV cache over a model, teacher-forced evaluation, and streaming
 * generation as an async iterator.
 */
import { AnswerSplitter, checkMessages, checkTools, promptOpensThink, renderChatTemplate, templateStopTokens, ThinkSplitter, toolCallSyntaxOf, type ChatMessage, type ChatTool, type ToolCall } from './chat.js';
import { requiredToolCallGrammar } from './chat/tool-calls.js';
import { callNative, callNativeSync, MoerunError } from './errors.js';
import type { GgufInfo } from './gguf/reader.js';
import { grammarOption, type Grammar, type JsonSchema } from './grammar/index.js';
import { TokenMatcher, vocabIndexOfAsync } from './grammar/token-mask.js';
import type { ModelInfo } from './model-info.js';
import type { NativeModel, NativeSamplerParams, NativeSession, NativeWorkCounters, NativeExpertStats } from './native.js';
import { native } from './native.js';
import { SliceClock } from './slices.js';
import { StopMatcher } from './stop.js';
import { StreamingDetokenizer, type Tokenizer } from './tokenizer/index.js';
import {
  abortSignal,
  booleanOption,
  checkKnownKeys,
  finiteNumber,
  invalid,
  nonNegativeInteger,
  oneOf,
  optionsObject,
  positiveInteger,
  describe,
  toTokenArray,
} from './validate.js';

/** Every KV cache element type a session accepts. */
export const kvCacheTypes = ['f32', 'f16', 'bf16', 'q8_0'] as const;

/** The largest {@link SessionOptions.contextSize}: positions are 32-bit signed integers in the engine. */
export const MAX_CONTEXT_SIZE = 2 ** 31 - 1;

/** KV cache element types. `f32` is exact; `f16` (default, like llama.cpp) halves the memory. */
export type KvCacheType = (typeof kvCacheTypes)[number];

/** What `logits` of {@link EvaluateOptions} accepts. */
const logitsModes = ['all', 'last'] as const;

/**
 * What a session uses of its model; {@link Model} is one. Sessions know the model through this
 * alone, so model.ts imports session.ts and never the other way round.
 */
export interface SessionModel {
  /** The file it was loaded from. */
  readonly path: string;
  /** The parts of {@link ModelInfo} a session reads. */
  readonly info: Readonly<Pick<ModelInfo, 'name' | 'vocabSize' | 'contextLength' | 'placement'>>;
  /** The file's header and metadata (the chat template). */
  readonly gguf: GgufInfo;
  /** The model's tokenizer. */
  readonly tokenizer: Tokenizer;
  /** True once the model is disposed. */
  readonly disposed: boolean;
  /** Text to token ids. */
  tokenize(text: string, options?: { addBos?: boolean }): Int32Array;
}

/** Options of {@link Model.createSession}. */
export interface SessionOptions {
  /** Tokens the KV cache holds. Default: min(model's training context, 4096). */
  contextSize?: number;
  /** KV cache element type. Default `'f16'`. */
  kvCacheType?: KvCacheType;
}

/** Options of {@link Session.evaluate}. */
export interface EvaluateOptions {
  /** `'all'`: one row of vocabSize logits per token; `'last'` (default): the last token's row. */
  logits?: (typeof logitsModes)[number];
  /** Aborts the evaluation at the next layer boundary (rejects with `ERR_ABORTED`). */
  signal?: AbortSignal;
}

/** Options of {@link Session.generate}. */
export interface GenerateOptions {
  /** Most tokens to generate. Default 256. */
  maxTokens?: number;
  /** Sampling temperature; 0 = greedy. Default 0.8. */
  temperature?: number;
  /** Keep the k most likely tokens; 0 = off. Default 40. */
  topK?: number;
  /** Keep the smallest set with this much probability; 1 = off. Default 0.95. */
  topP?: number;
  /** Drop tokens below minP × the best token's probability; 0 = off. Default 0.05. */
  minP?: number;
  /** Penalty for recently seen tokens; 1 = off. Default 1. */
  repeatPenalty?: number;
  /** How many recent tokens the repeat penalty looks at. Default 64. */
  repeatLastN?: number;
  /** Random seed, for reproducible sampling. Default: random. */
  seed?: number;
  /** Stop when the text contains one of these (never emitted). */
  stop?: string | string[];
  /** Aborts generation at the next layer boundary; the iterator throws `ERR_ABORTED`. */
  signal?: AbortSignal;
  /**
   * Constrains the output to a grammar: a {@link Grammar} (compile once, reuse) or GBNF text.
   * End of generation is allowed only where the grammar is complete, and generation stops
   * (`stopReason: 'eog'`) once it is complete and nothing more may follow.
   */
  grammar?: Grammar | string;
  /** Constrains the output to JSON that validates against this schema (see `compileJsonSchema`). */
  jsonSchema?: JsonSchema;
}

/** One piece of generated text. */
export interface GenerateChunk {
  /** Text of this token (complete UTF-8 characters only; may be empty while a character is incomplete) */
  text: string;
  /** The token id */
  token: number;
}

/** Why generation ended. */
export type StopReason = 'maxTokens' | 'eog' | 'stop' | 'abort' | 'contextFull';

/** Measurements of one {@link Session.generate} call. */
export interface GenerateStats {
  /** Prompt tokens evaluated */
  promptTokens: number;
  /** Tokens generated */
  generatedTokens: number;
  /** Time to evaluate the prompt and sample the first token, ms */
  promptMs: number;
  /** Time for the remaining tokens, ms */
  decodeMs: number;
  stopReason: StopReason;
  /** Tokens of the prompt already in the KV cache and not evaluated again (chat's common prefix). */
  reusedTokens: number;
  /** With a grammar: JS-thread time spent checking tokens and computing masks, ms (part of promptMs + decodeMs). */
  grammarMs?: number;
  /**
   * Where routed experts are split between the GPU and the CPU (`info.placement`): the GPU's
   * expert cache during this generation. `hits`: selected experts found in a device slot; `misses`:
   * computed by the CPU (each then loaded into a slot for the next tokens: `loads`); per token of
   * the prompt and of the generated text, over every MoE layer.
   */
  expertCache?: { hits: number; misses: number; loads: number; hitRate: number };
}

/** Options of {@link Session.chat}: those of {@link GenerateOptions} plus the template's. */
export interface ChatOptions extends GenerateOptions {
  /** A Jinja chat template to use instead of the GGUF's `tokenizer.chat_template`. */
  chatTemplate?: string;
  /** Template variable `enable_thinking` (Qwen3, DeepSeek R1, QwQ). Default true, like llama.cpp. */
  enableThinking?: boolean;
  /** Further template variables, e.g. `{ date_string: '1 Jan 2025' }`. */
  templateVars?: Record<string, unknown>;
  /**
   * Tools the model may call (OpenAI's shape), rendered by the template; the answer's tool calls
   * (Qwen3/QwQ/Ling 2.0 `<tool_call>`, DeepSeek R1/V3, Llama 3.1 syntaxes) arrive as `chunk.toolCalls`.
   */
  tools?: ChatTool[];
  /**
   * `'auto'` (default): the model chooses. `'required'`: the answer is one tool call, its name and
   * arguments constrained by the tools' JSON schemas (a grammar; no reasoning block first).
   */
  toolChoice?: 'auto' | 'required';
}

/** One piece of a chat answer; it carries `text` or `reasoning` (the other is ''). */
export interface ChatChunk {
  /** Answer text */
  text: string;
  /** Reasoning text (inside `<think>…</think>`) */
  reasoning: string;
  /** The token id that completed this piece */
  token: number;
  /** Tool calls completed with this piece (only with `tools`); their markup never appears in `text`. */
  toolCalls?: ToolCall[];
}

/** The names of {@link GenerateOptions}, each checked against the interface. */
const generateOptionKeys = [
  'maxTokens', 'temperature', 'topK', 'topP', 'minP', 'repeatPenalty', 'repeatLastN', 'seed', 'stop', 'signal', 'grammar', 'jsonSchema',
] as const satisfies readonly (keyof GenerateOptions)[];

/** The names of {@link ChatOptions} beyond {@link GenerateOptions}'. */
const chatOptionKeys = ['chatTemplate', 'enableThinking', 'templateVars', 'tools', 'toolChoice'] as const satisfies readonly Exclude<keyof ChatOptions, keyof GenerateOptions>[];

/**
 * A sequence's state on a model: its KV cache and sampler. Create with {@link Model.createSession}
 * (which gives a `Session<Model>`: `session.model` is the {@link Model}).
 */
export class Session<M extends SessionModel = SessionModel> {
  /** The model this session runs on. */
  readonly model: M;
  /** KV cache capacity in tokens. */
  readonly contextSize: number;
  /** KV cache element type. */
  readonly kvCacheType: KvCacheType;
  /** Statistics of the last finished generate(). */
  lastStats: GenerateStats | undefined;

  #native: NativeSession | undefined;
  /** Set while an evaluate() or a generate() stream is active (a stream may be paused at a yield). */
  #busy: Promise<unknown> | undefined;
  /** The native call in flight, if any; dispose() waits only for this. */
  #inflight: Promise<unknown> | undefined;
  /** Tokens whose keys/values are in the cache, in order. */
  #cached: number[] = [];
  /** Tokens accepted into the sequence but not yet evaluated (the last sampled token). */
  #pending: number[] = [];
  /** Native evaluation calls started (for backpressure tests). */
  #nativeCalls = 0;
  /** Tells the model this session is gone. */
  readonly #onDispose: () => void;

  /** @internal Use {@link Model.createSession}. */
  constructor(model: M, nativeModel: NativeModel, onDispose: () => void, options?: SessionOptions) {
    this.model = model;
    this.#onDispose = onDispose;
    const o = optionsObject(options, 'createSession()');
    checkKnownKeys(o, ['contextSize', 'kvCacheType'] satisfies (keyof SessionOptions)[], 'createSession()');
    this.contextSize = o.contextSize === undefined ? Math.min(model.info.contextLength || 4096, 4096) : positiveInteger('contextSize', o.contextSize);
    // Positions are 32-bit in the engine: a larger size would wrap, not fail.
    if (this.contextSize > MAX_CONTEXT_SIZE) throw invalid(`contextSize ${this.contextSize} is larger than the largest supported, ${MAX_CONTEXT_SIZE}`);
    this.kvCacheType = o.kvCacheType === undefined ? 'f16' : oneOf('kvCacheType', o.kvCacheType, kvCacheTypes);
    this.#native = callNativeSync(() => native().createSession(nativeModel, this.contextSize, this.kvCacheType));
  }

  /** Tokens in the sequence so far (evaluated or about to be). */
  get tokens(): readonly number[] {
    return [...this.#cached, ...this.#pending];
  }

  /** @internal Native evaluation calls started so far (a stream starts one per consumed chunk). */
  get nativeCalls(): number {
    return this.#nativeCalls;
  }

  /** @internal What the native compute loop has done: layer steps, and where the last abort landed. */
  get workCounters(): NativeWorkCounters {
    return this.#check().workCounters();
  }

  /** @internal Later evaluations count expert selections (and simulate a cache of these slots): Model.routingStats. */
  startExpertStats(slotsPerLayer: Int32Array | null): void {
    const s = this.#check();
    this.#assertIdle();
    callNativeSync(() => s.expertStatsStart(slotsPerLayer));
  }

  /** @internal What was counted since startExpertStats; stops counting. */
  takeExpertStats(): NativeExpertStats {
    const s = this.#check();
    this.#assertIdle();
    return callNativeSync(() => s.expertStatsTake());
  }

  /** Bytes held by the KV cache. */
  get kvCacheBytes(): number {
    return this.#check().kvBytes();
  }

  /**
   * Appends tokens to the sequence (teacher forcing) and returns their logits: `'all'` gives
   * tokens.length × vocabSize floats (row i = distribution after token i), `'last'` one row.
   */
  async evaluate(tokens: ArrayLike<number>, options?: EvaluateOptions): Promise<Float32Array> {
    const s = this.#check();
    const ids = toTokenArray(tokens, this.model.info.vocabSize, 'tokens');
    if (ids.length === 0) throw invalid('Expected at least one token for tokens but received an empty array');
    const o = optionsObject(options, 'evaluate()');
    checkKnownKeys(o, ['logits', 'signal'] satisfies (keyof EvaluateOptions)[], 'evaluate()');
    const mode = o.logits === undefined ? 'last' : oneOf('logits', o.logits, logitsModes);
    const signal = o.signal === undefined ? undefined : abortSignal('signal', o.signal);
    return this.#exclusive(async () => {
      await this.#flushPending(s, signal);
      return this.#run(s, ids, signal, () => s.evaluate(ids, mode === 'all' ? 2 : 1));
    });
  }

  /**
   * Generates text as an async iterator of chunks. A string prompt is tokenized (with BOS when
   * the session is empty and the model asks for it); an array is taken as token ids. The stream
   * computes a token only when the consumer asks for the next chunk, so a slow consumer never
   * makes work pile up. Breaking out of the loop leaves the session usable; `stats` is set when
   * the loop ends.
   */
  generate(prompt: string | ArrayLike<number>, options?: GenerateOptions): GenerationStream {
    const s = this.#check();
    const o = optionsObject(options, 'generate()');
    checkKnownKeys(o, generateOptionKeys, 'generate()');
    const promptTokens = this.#promptTokens(prompt);
    return this.#start(s, o, promptTokens, [], 0);
  }

  /**
   * Chats: renders `messages` with the model's chat template (or `options.chatTemplate`),
   * reuses the KV cache for the tokens the conversation shares with what the session already
   * holds (so a follow-up turn evaluates only the new messages), and streams the answer as
   * chunks that carry either answer `text` or `reasoning` (inside `<think>…</think>`).
   * Generation stops at the model's end-of-generation tokens and the template's end-of-turn token.
   */
  chat(messages: readonly ChatMessage[], options?: ChatOptions): ChatStream {
    const s = this.#check();
    const msgs = checkMessages(messages);
    const o = optionsObject(options, 'chat()');
    checkKnownKeys(o, [...generateOptionKeys, ...chatOptionKeys], 'chat()');
    let template: string;
    if (o.chatTemplate !== undefined) {
      if (typeof o.chatTemplate !== 'string' || o.chatTemplate.length === 0) {
        throw invalid(`Expected a non-empty string for chatTemplate but received ${describe(o.chatTemplate)}`);
      }
      template = o.chatTemplate;
    } else {
      const t = this.model.gguf.metadata['tokenizer.chat_template'];
      if (typeof t !== 'string' || t.length === 0) {
        throw new MoerunError(
          'ERR_UNSUPPORTED',
          `chat(): the model ${this.model.info.name ?? this.model.path} has no chat template (GGUF key tokenizer.chat_template); pass one as options.chatTemplate, or use generate() for plain continuation`,
        );
      }
      template = t;
    }
    const enableThinking = o.enableThinking === undefined ? true : booleanOption('enableThinking', o.enableThinking);
    if (o.templateVars !== undefined && (o.templateVars === null || typeof o.templateVars !== 'object' || Array.isArray(o.templateVars))) {
      throw invalid(`Expected an object for templateVars but received ${describe(o.templateVars)}`);
    }
    const tools = o.tools === undefined ? [] : checkTools(o.tools);
    const syntax = tools.length > 0 ? toolCallSyntaxOf(template) : undefined;
    if (o.toolChoice !== undefined && o.toolChoice !== 'auto' && o.toolChoice !== 'required') {
      throw invalid(`Expected 'auto' or 'required' for toolChoice but received ${describe(o.toolChoice)}`);
    }
    const toolGrammar = o.toolChoice === 'required' ? requiredToolCallGrammar(syntax, tools, o.grammar ?? o.jsonSchema) : undefined;
    const tok = this.model.tokenizer;
    const bosToken = tok.bos === undefined ? '' : tok.tokenText(tok.bos);
    const eosToken = tok.eos === undefined ? '' : tok.tokenText(tok.eos);
    let text = renderChatTemplate(template, msgs, {
      bosToken, eosToken, tools, enableThinking, vars: o.templateVars,
    });
    // Like llama.cpp: a template that writes BOS itself does not get a second one from the tokenizer.
    if (tok.addBosDefault && bosToken && text.startsWith(bosToken)) text = text.slice(bosToken.length);
    const full = tok.tokenize(text, { special: true });
    const extraEog = templateStopTokens(template, tok, bosToken, eosToken).filter((t) => !tok.isEog(t));
    this.#assertIdle();

    // Reuse the cached common prefix; at least one token must be evaluated to get logits.
    let common = 0;
    const limit = Math.min(this.#cached.length, full.length - 1);
    while (common < limit && this.#cached[common] === full[common]) common++;
    if (common < this.#cached.length) {
      callNativeSync(() => s.truncate(common));
      this.#cached.length = common;
    }
    this.#pending = [];
    const gen = { ...o };
    delete gen.chatTemplate;
    delete gen.enableThinking;
    delete gen.templateVars;
    delete gen.tools;
    delete gen.toolChoice;
    if (toolGrammar) gen.grammar = toolGrammar;
    const stream = this.#start(s, gen, full.subarray(common), extraEog, common);
    const think = new ThinkSplitter(!toolGrammar && promptOpensThink(text));
    return new ChatStream(stream, new AnswerSplitter(think, syntax, AnswerSplitter.markerTokens(syntax, tok)));
  }

  #promptTokens(prompt: string | ArrayLike<number>): Int32Array {
    if (typeof prompt === 'string') {
      const addBos = this.#cached.length + this.#pending.length === 0 ? undefined : false;
      return this.model.tokenize(prompt, addBos === undefined ? {} : { addBos });
    }
    return toTokenArray(prompt, this.model.info.vocabSize, 'prompt');
  }

  #start(s: NativeSession, o: Partial<GenerateOptions>, promptTokens: Int32Array, extraEog: number[], reused: number): GenerationStream {
    const maxTokens = o.maxTokens === undefined ? 256 : positiveInteger('maxTokens', o.maxTokens);
    const params: NativeSamplerParams = {
      temperature: o.temperature === undefined ? 0.8 : finiteNumber('temperature', o.temperature, 0),
      topK: o.topK === undefined ? 40 : nonNegativeInteger('topK', o.topK),
      topP: o.topP === undefined ? 0.95 : finiteNumber('topP', o.topP, 0, 1),
      minP: o.minP === undefined ? 0.05 : finiteNumber('minP', o.minP, 0, 1),
      repeatPenalty: o.repeatPenalty === undefined ? 1 : finiteNumber('repeatPenalty', o.repeatPenalty, 0),
      repeatLastN: o.repeatLastN === undefined ? 64 : nonNegativeInteger('repeatLastN', o.repeatLastN),
      seed: o.seed === undefined ? Math.floor(Math.random() * 2 ** 32) : nonNegativeInteger('seed', o.seed),
    };
    if (params.repeatPenalty === 0) throw invalid('Expected a positive number for repeatPenalty but received 0 (number)');
    let stops: string[] = [];
    if (o.stop !== undefined) {
      stops = typeof o.stop === 'string' ? [o.stop] : Array.isArray(o.stop) ? o.stop : [];
      if (!(typeof o.stop === 'string' || Array.isArray(o.stop)) || stops.some((x) => typeof x !== 'string' || x.length === 0)) {
        throw invalid(`Expected a non-empty string or an array of non-empty strings for stop but received ${describe(o.stop)}`);
      }
    }
    const signal = o.signal === undefined ? undefined : abortSignal('signal', o.signal);
    const grammar = grammarOption(o.grammar, o.jsonSchema);
    if (promptTokens.length === 0 && this.#pending.length === 0) {
      throw invalid('generate(): the prompt is empty and the session has no pending token to continue from');
    }
    this.#assertIdle();
    const stats: GenerateStats = { promptTokens: 0, generatedTokens: 0, promptMs: 0, decodeMs: 0, stopReason: 'maxTokens', reusedTokens: reused };
    if (grammar) stats.grammarMs = 0;
    return new GenerationStream(this.#stream(s, promptTokens, params, maxTokens, stops, signal, stats, extraEog, grammar), stats);
  }

  /** Clears the sequence (the KV cache is reused). */
  reset(): void {
    const s = this.#check();
    this.#assertIdle();
    callNativeSync(() => s.truncate(0));
    this.#cached = [];
    this.#pending = [];
  }

  /** Cancels in-flight work, waits for it, and frees the KV cache. Safe to call twice. */
  async dispose(): Promise<void> {
    const s = this.#native;
    if (!s) return;
    this.#native = undefined;
    s.abort();
    await this.#inflight?.catch(() => undefined);
    s.dispose();
    this.#onDispose();
  }

  /** `await using session = model.createSession()` */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }

  // ---- internals ----

  #assertIdle(): void {
    if (this.#busy) throw new MoerunError('ERR_BUSY', 'session is busy: another generate() or evaluate() is running');
  }

  #check(): NativeSession {
    if (!this.#native || this.model.disposed) throw new MoerunError('ERR_DISPOSED', 'session is disposed');
    return this.#native;
  }

  async #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    this.#assertIdle();
    const p = fn();
    this.#busy = p;
    try {
      return await p;
    } finally {
      this.#busy = undefined;
    }
  }

  /** Runs one native evaluation of `tokens`, keeping #cached in step with the cache even on abort. */
  async #run<T>(s: NativeSession, tokens: Int32Array, signal: AbortSignal | undefined, start: () => Promise<T>): Promise<T> {
    if (signal?.aborted) throw new MoerunError('ERR_ABORTED', 'aborted');
    const onAbort = (): void => s.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    const before = s.nPast();
    this.#nativeCalls++;
    const call = callNative(start);
    this.#inflight = call;
    try {
      return await call;
    } finally {
      this.#inflight = undefined;
      signal?.removeEventListener('abort', onAbort);
      if (this.#native) {
        const done = s.nPast() - before;  // on abort, the batches that completed stay cached
        for (let i = 0; i < done; i++) this.#cached.push(tokens[i]!);
      }
    }
  }

  /**
   * The sampled token if the grammar allows it, else a new pick among the tokens it allows (the
   * mask is computed in ~1 ms slices; stats.grammarMs counts the JS-thread time it took).
   */
  async #constrain(s: NativeSession, matcher: TokenMatcher, token: number, stats: GenerateStats, signal: AbortSignal | undefined): Promise<number> {
    const t0 = performance.now();
    const allowed = token >= 0 && matcher.allows(token);
    stats.grammarMs! += performance.now() - t0;
    if (allowed) return token;
    const clock = new SliceClock();
    const mask = await matcher.maskAsync(clock);
    stats.grammarMs! += clock.stats.totalMs;
    if (signal?.aborted) throw new MoerunError('ERR_ABORTED', 'aborted');
    const picked = callNativeSync(() => s.resample(mask));
    if (picked < 0) {
      throw new MoerunError('ERR_UNSUPPORTED', 'grammar: no token of this vocabulary can continue the output here (the grammar needs text the vocabulary cannot spell)');
    }
    return picked;
  }

  async #flushPending(s: NativeSession, signal: AbortSignal | undefined): Promise<void> {
    if (this.#pending.length === 0) return;
    const ids = Int32Array.from(this.#pending);
    await this.#run(s, ids, signal, () => s.evaluate(ids, 0));
    this.#pending = [];
  }

  async *#stream(
    s: NativeSession,
    prompt: Int32Array,
    params: NativeSamplerParams,
    maxTokens: number,
    stops: string[],
    signal: AbortSignal | undefined,
    stats: GenerateStats,
    extraEog: readonly number[] = [],
    grammar?: Grammar,
  ): AsyncGenerator<GenerateChunk, GenerateStats> {
    this.#assertIdle();
    let release!: () => void;
    this.#busy = new Promise<void>((r) => (release = r));
    const t0 = performance.now();
    const split = this.model.info.placement !== undefined && this.model.info.placement.host.expertCount > 0 && this.model.info.placement.device.expertCount > 0;
    const before = split ? callNativeSync(() => s.workCounters()) : undefined;
    let tFirst: number | undefined;
    const detok = new StreamingDetokenizer(this.model.tokenizer);
    const stop = new StopMatcher(stops);
    let matcher: TokenMatcher | undefined;
    try {
      // The vocabulary's index is built once per model, in slices (~0.7 s in all at 150k tokens).
      if (grammar) matcher = new TokenMatcher(grammar.program, await vocabIndexOfAsync(this.model.tokenizer));
      callNativeSync(() => s.setSampler(params));
      callNativeSync(() => s.acceptTokens(Int32Array.from(this.#cached)));
      let input = Int32Array.from([...this.#pending, ...prompt]);
      // The first generated token continues text, so its SPM leading space is kept (as llama.cpp's
      // token_to_piece does); only a generation that starts the text strips it. BOS primes the
      // detokenizer without producing text.
      const tok = this.model.tokenizer;
      if (tok.bos !== undefined && (this.#cached.some((t) => !tok.isControl(t)) || input.some((t) => !tok.isControl(t)))) detok.push(tok.bos);
      this.#pending = Array.from(input);
      stats.promptTokens = input.length;
      let lastToken = -1;
      for (let n = 0; n < maxTokens; n++) {
        this.#check();  // the model or session may have been disposed while we were paused
        if (this.#cached.length + input.length > this.contextSize) {
          stats.stopReason = 'contextFull';
          break;
        }
        let token: number;
        const cachedBefore = this.#cached.length;
        try {
          const step = input;
          // A grammar state seen before has its mask at hand; otherwise the sampler picks freely
          // and the mask is computed only if the grammar rejects its pick.
          const mask = matcher?.cachedMask();
          token = await this.#run(s, step, signal, () => s.step(step, mask));
          if (matcher) token = await this.#constrain(s, matcher, token, stats, signal);
        } catch (err) {
          // What the cache did not take stays pending, so the sequence remains consistent.
          this.#pending = Array.from(input.subarray(this.#cached.length - cachedBefore));
          if (err instanceof MoerunError && err.code === 'ERR_ABORTED') stats.stopReason = 'abort';
          throw err;
        }
        tFirst ??= performance.now();
        stats.generatedTokens++;
        // The sampled token is part of the sequence; it is evaluated by the next step (or the
        // next call, if generation ends here).
        input = Int32Array.of(token);
        this.#pending = [token];
        if (matcher) {
          const t = performance.now();
          matcher.accept(token);
          stats.grammarMs! += performance.now() - t;
        }
        if (this.model.tokenizer.isEog(token) || extraEog.includes(token)) {
          stats.stopReason = 'eog';
          break;
        }
        const text = stop.push(detok.push(token));
        if (text || !stop.stopped) yield { text, token };
        if (stop.stopped) {
          stats.stopReason = 'stop';
          break;
        }
        lastToken = token;
        if (matcher?.finished) {
          stats.stopReason = 'eog';  // the grammar is complete and allows nothing more
          break;
        }
      }
      if (stats.stopReason !== 'stop') {
        const tail = stop.flush(detok.flush());
        if (tail) yield { text: tail, token: lastToken };
      }
      return stats;
    } finally {
      const tEnd = performance.now();
      stats.promptMs = (tFirst ?? tEnd) - t0;
      stats.decodeMs = tEnd - (tFirst ?? tEnd);
      if (before) {
        const after = callNativeSync(() => s.workCounters());
        const hits = after.expertHits - before.expertHits, misses = after.expertMisses - before.expertMisses;
        if (hits + misses > 0) stats.expertCache = { hits, misses, loads: after.expertLoads - before.expertLoads, hitRate: hits / (hits + misses) };
      }
      this.lastStats = stats;
      this.#busy = undefined;
      release();
    }
  }
}

/**
 * The async iterator {@link Session.generate} returns. Iterate it with `for await`; after the loop,
 * {@link GenerationStream.stats} holds the measurements.
 */
export class GenerationStream implements AsyncIterableIterator<GenerateChunk, undefined> {
  readonly #inner: AsyncGenerator<GenerateChunk, GenerateStats>;
  readonly #stats: GenerateStats;
  #finished = false;

  /** @internal */
  constructor(inner: AsyncGenerator<GenerateChunk, GenerateStats>, stats: GenerateStats) {
    this.#inner = inner;
    this.#stats = stats;
  }

  /** Set once iteration has finished (normally, by break, or by an error or abort). */
  get stats(): GenerateStats | undefined {
    return this.#finished ? this.#stats : undefined;
  }

  async next(): Promise<IteratorResult<GenerateChunk, undefined>> {
    try {
      const r = await this.#inner.next();
      if (!r.done) return r;
    } catch (err) {
      this.#finished = true;
      throw err;
    }
    this.#finished = true;
    return { done: true, value: undefined };
  }

  async return(): Promise<IteratorResult<GenerateChunk, undefined>> {
    await this.#inner.return(this.#stats);
    this.#finished = true;
    return { done: true, value: undefined };
  }

  async throw(err?: unknown): Promise<IteratorResult<GenerateChunk, undefined>> {
    this.#finished = true;
    await this.#inner.throw(err);
    return { done: true, value: undefined };
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  /** Collects the whole generation as one string. */
  async text(): Promise<string> {
    let out = '';
    for await (const chunk of this) out += chunk.text;
    return out;
  }
}

/**
 * The async iterator {@link Session.chat} returns: chunks of answer text or reasoning. After the
 * loop, {@link ChatStream.stats} holds the measurements.
 */
export class ChatStream implements AsyncIterableIterator<ChatChunk, undefined> {
  readonly #inner: GenerationStream;
  readonly #answer: AnswerSplitter;
  readonly #queue: ChatChunk[] = [];
  #done = false;
  #lastToken = -1;

  /** @internal */
  constructor(inner: GenerationStream, answer: AnswerSplitter) {
    this.#inner = inner;
    this.#answer = answer;
  }

  /** Set once iteration has finished. */
  get stats(): GenerateStats | undefined {
    return this.#inner.stats;
  }

  async next(): Promise<IteratorResult<ChatChunk, undefined>> {
    while (this.#queue.length === 0) {
      if (this.#done) return { done: true, value: undefined };
      const r = await this.#inner.next();
      if (r.done) {
        this.#done = true;
        for (const p of this.#answer.flush()) this.#queue.push({ ...p, token: this.#lastToken });
      } else {
        this.#lastToken = r.value.token;
        for (const p of this.#answer.push(r.value.text, r.value.token)) this.#queue.push({ ...p, token: r.value.token });
      }
    }
    return { done: false, value: this.#queue.shift()! };
  }

  async return(): Promise<IteratorResult<ChatChunk, undefined>> {
    this.#done = true;
    this.#queue.length = 0;
    await this.#inner.return();
    return { done: true, value: undefined };
  }

  async throw(err?: unknown): Promise<IteratorResult<ChatChunk, undefined>> {
    this.#done = true;
    this.#queue.length = 0;
    await this.#inner.throw(err);
    return { done: true, value: undefined };
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  /** Collects the whole answer: `{ text, reasoning, toolCalls }`. */
  async collect(): Promise<{ text: string; reasoning: string; toolCalls: ToolCall[] }> {
    let text = '';
    let reasoning = '';
    const toolCalls: ToolCall[] = [];
    for await (const c of this) {
      text += c.text;
      reasoning += c.reasoning;
      if (c.toolCalls) toolCalls.push(...c.toolCalls);
    }
    return { text, reasoning, toolCalls };
  }
}
