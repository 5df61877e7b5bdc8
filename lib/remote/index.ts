/**
 * `connect(baseUrl, { model, apiKey })`: a model served elsewhere over an OpenAI-compatible API
 * (`moerun serve`, vLLM, SGLang, llama.cpp's server), behind the same `createSession()` /
 * `generate()` / `chat()` streaming API as a local model ({@link TextModel}). What a chat or
 * completions endpoint cannot do (logits, KV state, tokenization, a template of the caller's)
 * throws `ERR_UNSUPPORTED`.
 */
import { checkMessages, checkTools, ThinkSplitter, type ChatMessage } from '../chat.js';
import type { ToolCall } from '../chat/tool-calls.js';
import { MoerunError, type MoerunErrorCode } from '../errors.js';
import { GenerationStream, type ChatChunk, type ChatOptions, type GenerateChunk, type GenerateOptions, type GenerateStats, type SessionOptions, type StopReason } from '../session.js';
import {
  abortSignal,
  booleanOption,
  checkKnownKeys,
  describe,
  finiteNumber,
  invalid,
  nonEmptyString,
  nonNegativeInteger,
  optionsObject,
  positiveInteger,
} from '../validate.js';
import { sseData } from './sse.js';
import type { TextChatStream, TextModel, TextSession } from './text-model.js';

export type { TextModel, TextSession, TextGenerationStream, TextChatStream } from './text-model.js';

/** Options of {@link connect}. */
export interface ConnectOptions {
  /** The model id to request. Default: the first model the server's `/models` lists. */
  model?: string;
  /** Sent as `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** Further HTTP headers on every request. */
  headers?: Record<string, string>;
  /** Aborts connecting (the `/models` request). */
  signal?: AbortSignal;
}

/** `chunk.token` of remote chunks: an OpenAI-compatible API streams text, not token ids. */
export const REMOTE_TOKEN = -1;

const connectOptionKeys = ['model', 'apiKey', 'headers', 'signal'] as const satisfies readonly (keyof ConnectOptions)[];
const generateOptionKeys = [
  'maxTokens', 'temperature', 'topK', 'topP', 'minP', 'repeatPenalty', 'repeatLastN', 'seed', 'stop', 'signal', 'grammar', 'jsonSchema',
] as const satisfies readonly (keyof GenerateOptions)[];
const chatOptionKeys = [...generateOptionKeys, 'chatTemplate', 'enableThinking', 'templateVars', 'tools', 'toolChoice'] as const satisfies readonly (keyof ChatOptions)[];

/** A transport or HTTP failure as a MoerunError; the server's own message is kept. */
async function httpError(response: Response, what: string): Promise<MoerunError> {
  let message = `${response.status} ${response.statusText}`;
  let apiCode: unknown;
  try {
    const body = (await response.json()) as { error?: { message?: unknown; code?: unknown } | string; message?: unknown };
    const detail = typeof body.error === 'object' ? body.error?.message : body.error ?? body.message;
    if (typeof detail === 'string') message += `: ${detail}`;
    apiCode = typeof body.error === 'object' ? body.error?.code : undefined;
  } catch {
    // Not JSON: the status line says it.
  }
  const s = response.status;
  const code: MoerunErrorCode =
    apiCode === 'context_length_exceeded' ? 'ERR_CONTEXT_FULL'
    : s === 400 || s === 404 || s === 413 || s === 422 ? 'ERR_INVALID_ARGUMENT'
    : s === 429 || s === 503 ? 'ERR_BUSY'
    : 'ERR_IO';
  return new MoerunError(code, `${what}: the server answered ${message}`);
}

function transportError(err: unknown, what: string, signal: AbortSignal | undefined): MoerunError {
  if (err instanceof MoerunError) return err;
  if (signal?.aborted) return new MoerunError('ERR_ABORTED', `${what}: aborted`, { cause: err });
  const cause = (err as { cause?: { code?: string; message?: string } })?.cause;
  return new MoerunError('ERR_IO', `${what}: ${(err as Error)?.message ?? String(err)}${cause?.code ? ` (${cause.code})` : ''}`, { cause: err });
}

/** The endpoint and credentials every request of a remote model uses. */
interface Endpoint {
  baseUrl: string;
  headers: Record<string, string>;
}

async function request(endpoint: Endpoint, path: string, body: object | undefined, signal: AbortSignal | undefined, what: string): Promise<Response> {
  let response: Response;
  try {
    response = await fetch(`${endpoint.baseUrl}${path}`, {
      method: body ? 'POST' : 'GET',
      headers: { ...endpoint.headers, ...(body ? { 'Content-Type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
      signal,
    });
  } catch (err) {
    throw transportError(err, what, signal);
  }
  if (!response.ok) throw await httpError(response, what);
  return response;
}

/**
 * Connects to an OpenAI-compatible server (`http://host:port/v1`) and checks it serves `model`.
 * @example
 * await using model = await connect('http://127.0.0.1:8080/v1', { model: 'Ling-1T', apiKey });
 * const session = model.createSession();
 * for await (const chunk of session.chat([{ role: 'user', content: 'hi' }])) process.stdout.write(chunk.text);
 */
export async function connect(baseUrl: string, options?: ConnectOptions): Promise<RemoteModel> {
  nonEmptyString('baseUrl', baseUrl);
  let url: URL;
  try {
    url = new URL(baseUrl);
  } catch {
    throw invalid(`Expected an http(s) URL for baseUrl but received ${describe(baseUrl)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw invalid(`Expected an http(s) URL for baseUrl but received ${describe(baseUrl)}`);
  const o = optionsObject(options, 'connect()');
  checkKnownKeys(o, connectOptionKeys, 'connect()');
  const headers: Record<string, string> = {};
  if (o.headers !== undefined) {
    if (o.headers === null || typeof o.headers !== 'object' || Object.values(o.headers).some((v) => typeof v !== 'string')) {
      throw invalid(`Expected an object of string header values for headers but received ${describe(o.headers)}`);
    }
    Object.assign(headers, o.headers);
  }
  if (o.apiKey !== undefined) headers.Authorization = `Bearer ${nonEmptyString('apiKey', o.apiKey)}`;
  const signal = o.signal === undefined ? undefined : abortSignal('signal', o.signal);
  const endpoint: Endpoint = { baseUrl: baseUrl.replace(/\/+$/, ''), headers };

  const response = await request(endpoint, '/models', undefined, signal, `connect(${endpoint.baseUrl})`);
  let ids: string[];
  try {
    const list = (await response.json()) as { data?: { id?: unknown }[] };
    ids = (list.data ?? []).map((m) => m.id).filter((id): id is string => typeof id === 'string');
  } catch (err) {
    throw new MoerunError('ERR_BAD_FORMAT', `connect(${endpoint.baseUrl}): /models did not answer with OpenAI's model list`, { cause: err });
  }
  const model = o.model === undefined ? ids[0] : nonEmptyString('model', o.model);
  if (model === undefined) throw new MoerunError('ERR_INVALID_ARGUMENT', `connect(${endpoint.baseUrl}): the server lists no models; pass options.model`);
  if (!ids.includes(model)) {
    throw new MoerunError('ERR_INVALID_ARGUMENT', `connect(${endpoint.baseUrl}): the server does not serve '${model}'; it lists ${ids.map((i) => `'${i}'`).join(', ') || 'no models'}`);
  }
  return new RemoteModel(endpoint, model);
}

/**
 * A model served over an OpenAI-compatible API. Its sessions stream like a local model's; token
 * ids, logits, KV state and tokenization stay on the server (`ERR_UNSUPPORTED`).
 */
export class RemoteModel implements TextModel {
  /** The base URL, e.g. `http://127.0.0.1:8080/v1`. */
  readonly baseUrl: string;
  /** The model id requests name. */
  readonly id: string;
  readonly #endpoint: Endpoint;
  readonly #sessions = new Set<RemoteSession>();
  #disposed = false;

  /** @internal Use {@link connect}. */
  constructor(endpoint: Endpoint, id: string) {
    this.#endpoint = endpoint;
    this.baseUrl = endpoint.baseUrl;
    this.id = id;
  }

  get disposed(): boolean {
    return this.#disposed;
  }

  /** A session: no options apply (the server owns context size and KV cache type). */
  createSession(options?: SessionOptions): RemoteSession {
    if (this.#disposed) throw new MoerunError('ERR_DISPOSED', 'model is disposed');
    const o = optionsObject(options, 'createSession()');
    for (const key of Object.keys(o)) {
      throw new MoerunError('ERR_UNSUPPORTED', `createSession(): '${key}' is the server's setting and cannot be chosen per session of a remote model`);
    }
    const session: RemoteSession = new RemoteSession(this.#endpoint, this.id, () => this.#sessions.delete(session));
    this.#sessions.add(session);
    return session;
  }

  /** A remote model has no local tokenizer: use `loadModel(path, { vocabOnly: true })` for one. */
  tokenize(): never {
    throw new MoerunError('ERR_UNSUPPORTED', 'tokenize(): a remote model has no tokenizer here; load the GGUF with loadModel(path, { vocabOnly: true }) for one');
  }

  /** See {@link tokenize}. */
  detokenize(): never {
    throw new MoerunError('ERR_UNSUPPORTED', 'detokenize(): a remote model has no tokenizer here; load the GGUF with loadModel(path, { vocabOnly: true }) for one');
  }

  /** Aborts every session's request in flight. Safe to call twice. */
  async dispose(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    await Promise.all([...this.#sessions].map((s) => s.dispose()));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }
}

/** What an OpenAI streaming chunk may carry (chat's `delta`, completions' `text`). */
interface StreamChunk {
  choices?: {
    text?: string;
    delta?: { content?: string | null; reasoning_content?: string | null; reasoning?: string | null; tool_calls?: ToolCallDelta[] | null };
    finish_reason?: string | null;
  }[];
  usage?: { prompt_tokens?: number; completion_tokens?: number } | null;
  error?: { message?: string; code?: string };
}

/** A streamed piece of a tool call: the first names it, later ones append to its arguments. */
interface ToolCallDelta {
  index?: number;
  id?: string;
  function?: { name?: string; arguments?: string };
}

/** One streamed piece of a remote answer. */
interface RemotePiece {
  text: string;
  reasoning: string;
  /** Tool calls completed by this piece. */
  toolCalls: ToolCall[];
}

/**
 * Assembles streamed tool calls: each is complete when the next one starts or the answer ends.
 */
class ToolCallAssembler {
  #current: (ToolCall & { index: number }) | undefined;

  /** Takes a chunk's deltas; returns the calls they completed. */
  push(deltas: readonly ToolCallDelta[] | null | undefined): ToolCall[] {
    const done: ToolCall[] = [];
    for (const d of deltas ?? []) {
      const index = d.index ?? this.#current?.index ?? 0;
      if (!this.#current || index !== this.#current.index) {
        const finished = this.flush();
        done.push(...finished);
        this.#current = { index, id: d.id ?? `call_${index}`, name: '', arguments: '' };
      }
      if (d.id) this.#current.id = d.id;
      this.#current.name += d.function?.name ?? '';
      this.#current.arguments += d.function?.arguments ?? '';
    }
    return done;
  }

  /** The call in progress, as complete (at the end of the answer). */
  flush(): ToolCall[] {
    const c = this.#current;
    this.#current = undefined;
    return c ? [{ id: c.id, name: c.name, arguments: c.arguments }] : [];
  }
}

/**
 * A session on a remote model. The server is stateless, so the session keeps the text so far:
 * a second `generate()` sends it again with the new prompt, as a local session continues its
 * KV cache. `chat()` sends the whole conversation each time, as a local session renders it.
 */
export class RemoteSession implements TextSession {
  readonly #endpoint: Endpoint;
  readonly #model: string;
  readonly #onDispose: () => void;
  /** Text of the sequence so far (prompts and generations); '' when reset. */
  #history = '';
  /** The sequence so far was given as token ids, which cannot be continued with text. */
  #tokenHistory = false;
  #busy = false;
  #disposed = false;
  /** Aborts the request in flight on dispose. */
  readonly #disposal = new AbortController();
  /** Statistics of the last finished generate() or chat(). */
  lastStats: GenerateStats | undefined;

  /** @internal Use {@link RemoteModel.createSession}. */
  constructor(endpoint: Endpoint, model: string, onDispose: () => void) {
    this.#endpoint = endpoint;
    this.#model = model;
    this.#onDispose = onDispose;
  }

  /** Logits stay on the server: always throws `ERR_UNSUPPORTED`. */
  evaluate(): never {
    throw new MoerunError('ERR_UNSUPPORTED', 'evaluate(): logits of a remote model are not available over an OpenAI-compatible API');
  }

  /**
   * Streams a continuation of the sequence (`/completions`). Chunks carry `token: -1` (the API
   * streams text); `stats` counts tokens as the server's `usage` reports them.
   */
  generate(prompt: string | ArrayLike<number>, options?: GenerateOptions): GenerationStream {
    this.#check();
    const o = optionsObject(options, 'generate()');
    checkKnownKeys(o, generateOptionKeys, 'generate()');
    if (o.grammar !== undefined || o.jsonSchema !== undefined) {
      throw new MoerunError('ERR_UNSUPPORTED', `generate(): ${o.grammar !== undefined ? 'grammar' : 'jsonSchema'} cannot be sent to a completions endpoint; use chat() with jsonSchema (response_format)`);
    }
    const body = samplingBody(o);
    let sentPrompt: string | number[];
    if (typeof prompt === 'string') {
      if (this.#tokenHistory) throw new MoerunError('ERR_UNSUPPORTED', 'generate(): this remote session was started from token ids and cannot be continued with text; reset() it first');
      sentPrompt = this.#history + prompt;
    } else {
      if (prompt === null || typeof prompt !== 'object' || typeof prompt.length !== 'number') throw invalid(`Expected a string or an array of token ids for prompt but received ${describe(prompt)}`);
      if (this.#history !== '' || this.#tokenHistory) throw new MoerunError('ERR_UNSUPPORTED', 'generate(): token ids can start a remote session but not continue it (the server returns text); reset() it first');
      sentPrompt = Array.from(prompt, (t, i) => nonNegativeInteger(`prompt[${i}]`, t));
    }
    if (sentPrompt.length === 0) throw invalid('generate(): the prompt is empty and the session has no pending token to continue from');
    const signal = o.signal === undefined ? undefined : abortSignal('signal', o.signal);
    this.#claim();
    const stats = emptyStats();
    const inner = this.#run('/completions', { ...body, prompt: sentPrompt }, signal, stats, (c) => ({ text: c.choices?.[0]?.text ?? '', reasoning: '', toolCalls: [] }), () => []);
    const history = this.#history;
    const session = this;
    async function* chunks(): AsyncGenerator<GenerateChunk, GenerateStats> {
      let text = '';
      try {
        for await (const piece of inner) {
          text += piece.text;
          yield { text: piece.text, token: REMOTE_TOKEN };
        }
        return stats;
      } finally {
        // What was generated (even if cut short) is part of the sequence now.
        if (typeof sentPrompt === 'string') session.#history = history + prompt + text;
        else session.#tokenHistory = true;
      }
    }
    return new GenerationStream(chunks(), stats);
  }

  /**
   * Streams the answer to a conversation (`/chat/completions`): `reasoning_content` (or `<think>`
   * blocks in the content) as `reasoning`, the rest as `text`. The server renders its own chat
   * template: `chatTemplate` is `ERR_UNSUPPORTED`; `enableThinking` and `templateVars` go as
   * `chat_template_kwargs` (vLLM's, SGLang's and moerun's name for them).
   */
  chat(messages: readonly ChatMessage[], options?: ChatOptions): TextChatStream {
    this.#check();
    const msgs = checkMessages(messages);
    const o = optionsObject(options, 'chat()');
    checkKnownKeys(o, chatOptionKeys, 'chat()');
    if (o.chatTemplate !== undefined) throw new MoerunError('ERR_UNSUPPORTED', 'chat(): a remote model renders its own chat template; chatTemplate cannot be sent over an OpenAI-compatible API');
    if (o.grammar !== undefined) throw new MoerunError('ERR_UNSUPPORTED', 'chat(): a grammar cannot be sent over an OpenAI-compatible API; jsonSchema can (as response_format)');
    const body: Record<string, unknown> = samplingBody(o);
    if (o.jsonSchema !== undefined) {
      if (o.jsonSchema === null || (typeof o.jsonSchema !== 'object' && typeof o.jsonSchema !== 'boolean')) {
        throw invalid(`Expected a JSON Schema (an object) for jsonSchema but received ${describe(o.jsonSchema)}`);
      }
      body.response_format = { type: 'json_schema', json_schema: { name: 'output', schema: o.jsonSchema } };
    }
    if (o.tools !== undefined) {
      const tools = checkTools(o.tools);
      if (tools.length > 0) body.tools = tools;
    }
    if (o.toolChoice !== undefined) {
      if (o.toolChoice !== 'auto' && o.toolChoice !== 'required') throw invalid(`Expected 'auto' or 'required' for toolChoice but received ${describe(o.toolChoice)}`);
      body.tool_choice = o.toolChoice;
    }
    const kwargs: Record<string, unknown> = {};
    if (o.templateVars !== undefined) {
      if (o.templateVars === null || typeof o.templateVars !== 'object' || Array.isArray(o.templateVars)) throw invalid(`Expected an object for templateVars but received ${describe(o.templateVars)}`);
      Object.assign(kwargs, o.templateVars);
    }
    if (o.enableThinking !== undefined) kwargs.enable_thinking = booleanOption('enableThinking', o.enableThinking);
    if (Object.keys(kwargs).length > 0) body.chat_template_kwargs = kwargs;
    body.messages = msgs.map((m) => {
      const message: Record<string, unknown> = { role: m.role, content: m.content };
      if (m.reasoning !== undefined && m.role === 'assistant') message.reasoning_content = m.reasoning;
      if (m.tool_calls !== undefined) message.tool_calls = m.tool_calls;
      if (m.tool_call_id !== undefined) message.tool_call_id = m.tool_call_id;
      if (m.name !== undefined) message.name = m.name;
      return message;
    });
    const signal = o.signal === undefined ? undefined : abortSignal('signal', o.signal);
    this.#claim();
    const stats = emptyStats();
    const calls = new ToolCallAssembler();
    const inner = this.#run(
      '/chat/completions', body, signal, stats,
      (c) => {
        const delta = c.choices?.[0]?.delta;
        return { text: delta?.content ?? '', reasoning: delta?.reasoning_content ?? delta?.reasoning ?? '', toolCalls: calls.push(delta?.tool_calls) };
      },
      () => calls.flush(),
    );
    return new RemoteChatStream(inner, stats);
  }

  /** Clears the sequence kept for generate(). */
  reset(): void {
    this.#check();
    if (this.#busy) throw new MoerunError('ERR_BUSY', 'session is busy: another generate() or chat() is running');
    this.#history = '';
    this.#tokenHistory = false;
  }

  /** Aborts the request in flight. Safe to call twice. */
  async dispose(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#disposal.abort();
    this.#onDispose();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }

  #check(): void {
    if (this.#disposed) throw new MoerunError('ERR_DISPOSED', 'session is disposed');
  }

  #claim(): void {
    if (this.#busy) throw new MoerunError('ERR_BUSY', 'session is busy: another generate() or chat() is running');
    this.#busy = true;
  }

  /** One streaming request: yields text and reasoning pieces, fills `stats`, frees the session at the end. */
  async *#run(
    path: string,
    body: Record<string, unknown>,
    signal: AbortSignal | undefined,
    stats: GenerateStats,
    pieceOf: (c: StreamChunk) => RemotePiece,
    /** Tool calls still open when the answer ends. */
    finalCalls: () => ToolCall[],
  ): AsyncGenerator<RemotePiece, void> {
    const what = `${path.slice(1)} (${this.#endpoint.baseUrl})`;
    const t0 = performance.now();
    let tFirst: number | undefined;
    const abort = signal ? AbortSignal.any([signal, this.#disposal.signal]) : this.#disposal.signal;
    try {
      if (signal?.aborted) throw new MoerunError('ERR_ABORTED', 'aborted');
      const response = await request(this.#endpoint, path, { ...body, model: this.#model, stream: true, stream_options: { include_usage: true } }, abort, what);
      if (!response.body) throw new MoerunError('ERR_IO', `${what}: the response has no body`);
      let finish: string | null | undefined;
      try {
        for await (const data of sseData(response.body)) {
          // Events already received are dropped once aborted, as a local session stops at its next step.
          if (abort.aborted) throw new MoerunError('ERR_ABORTED', `${what}: aborted`);
          if (data === '[DONE]') break;
          let chunk: StreamChunk;
          try {
            chunk = JSON.parse(data) as StreamChunk;
          } catch (err) {
            throw new MoerunError('ERR_BAD_FORMAT', `${what}: an event is not JSON: ${data.slice(0, 80)}`, { cause: err });
          }
          if (chunk.error) throw new MoerunError(chunk.error.code === 'context_length_exceeded' ? 'ERR_CONTEXT_FULL' : 'ERR_IO', `${what}: the server reported: ${chunk.error.message ?? JSON.stringify(chunk.error)}`);
          if (chunk.usage) {
            stats.promptTokens = chunk.usage.prompt_tokens ?? stats.promptTokens;
            stats.generatedTokens = chunk.usage.completion_tokens ?? stats.generatedTokens;
          }
          finish = chunk.choices?.[0]?.finish_reason ?? finish;
          const piece = pieceOf(chunk);
          if (piece.text || piece.reasoning || piece.toolCalls.length > 0) {
            tFirst ??= performance.now();
            yield piece;
          }
        }
      } catch (err) {
        throw transportError(err, what, abort);
      }
      const open = finalCalls();
      if (open.length > 0) yield { text: '', reasoning: '', toolCalls: open };
      stats.stopReason = stopReasonOf(finish);
    } catch (err) {
      if (err instanceof MoerunError && err.code === 'ERR_ABORTED') stats.stopReason = 'abort';
      throw err;
    } finally {
      const tEnd = performance.now();
      stats.promptMs = (tFirst ?? tEnd) - t0;
      stats.decodeMs = tEnd - (tFirst ?? tEnd);
      this.lastStats = stats;
      this.#busy = false;
    }
  }
}

/** OpenAI's finish_reason as a {@link StopReason}: `stop` (end of generation or a stop string) is `'eog'`. */
function stopReasonOf(finish: string | null | undefined): StopReason {
  return finish === 'length' ? 'maxTokens' : 'eog';
}

function emptyStats(): GenerateStats {
  return { promptTokens: 0, generatedTokens: 0, promptMs: 0, decodeMs: 0, stopReason: 'maxTokens', reusedTokens: 0 };
}

/** Generate options as OpenAI request fields (`top_k`, `min_p`, `repetition_penalty` as vLLM names them). */
function samplingBody(o: Partial<GenerateOptions>): Record<string, unknown> {
  if (o.repeatLastN !== undefined) throw new MoerunError('ERR_UNSUPPORTED', 'repeatLastN: the repetition window is the server\'s setting; an OpenAI-compatible API does not take it');
  const body: Record<string, unknown> = {};
  if (o.maxTokens !== undefined) body.max_tokens = positiveInteger('maxTokens', o.maxTokens);
  if (o.temperature !== undefined) body.temperature = finiteNumber('temperature', o.temperature, 0);
  if (o.topK !== undefined) body.top_k = nonNegativeInteger('topK', o.topK);
  if (o.topP !== undefined) body.top_p = finiteNumber('topP', o.topP, 0, 1);
  if (o.minP !== undefined) body.min_p = finiteNumber('minP', o.minP, 0, 1);
  if (o.repeatPenalty !== undefined) {
    body.repetition_penalty = finiteNumber('repeatPenalty', o.repeatPenalty, 0);
    if (body.repetition_penalty === 0) throw invalid('Expected a positive number for repeatPenalty but received 0 (number)');
  }
  if (o.seed !== undefined) body.seed = nonNegativeInteger('seed', o.seed);
  if (o.stop !== undefined) {
    const stops = typeof o.stop === 'string' ? [o.stop] : o.stop;
    if (!Array.isArray(stops) || stops.some((x) => typeof x !== 'string' || x.length === 0)) {
      throw invalid(`Expected a non-empty string or an array of non-empty strings for stop but received ${describe(o.stop)}`);
    }
    body.stop = stops;
  }
  return body;
}

/** {@link TextChatStream} over a remote chat: content through a `<think>` splitter, reasoning and tool calls as sent. */
class RemoteChatStream implements TextChatStream {
  readonly #inner: AsyncGenerator<RemotePiece, void>;
  readonly #stats: GenerateStats;
  readonly #think = new ThinkSplitter(false);
  readonly #queue: ChatChunk[] = [];
  #done = false;
  #finished = false;

  constructor(inner: AsyncGenerator<RemotePiece, void>, stats: GenerateStats) {
    this.#inner = inner;
    this.#stats = stats;
  }

  get stats(): GenerateStats | undefined {
    return this.#finished ? this.#stats : undefined;
  }

  async next(): Promise<IteratorResult<ChatChunk, undefined>> {
    while (this.#queue.length === 0) {
      if (this.#done) {
        this.#finished = true;
        return { done: true, value: undefined };
      }
      let r: IteratorResult<RemotePiece, void>;
      try {
        r = await this.#inner.next();
      } catch (err) {
        this.#done = this.#finished = true;
        throw err;
      }
      if (r.done) {
        this.#done = true;
        for (const p of this.#think.flush()) this.#queue.push({ ...p, token: REMOTE_TOKEN });
        continue;
      }
      if (r.value.reasoning) this.#queue.push({ text: '', reasoning: r.value.reasoning, token: REMOTE_TOKEN });
      for (const p of this.#think.push(r.value.text)) this.#queue.push({ ...p, token: REMOTE_TOKEN });
      if (r.value.toolCalls.length > 0) this.#queue.push({ text: '', reasoning: '', token: REMOTE_TOKEN, toolCalls: r.value.toolCalls });
    }
    return { done: false, value: this.#queue.shift()! };
  }

  async return(): Promise<IteratorResult<ChatChunk, undefined>> {
    this.#done = true;
    this.#queue.length = 0;
    await this.#inner.return();
    this.#finished = true;
    return { done: true, value: undefined };
  }

  async throw(err?: unknown): Promise<IteratorResult<ChatChunk, undefined>> {
    this.#done = this.#finished = true;
    this.#queue.length = 0;
    await this.#inner.throw(err);
    return { done: true, value: undefined };
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  async collect(): Promise<{ text: string; reasoning: string }> {
    let text = '';
    let reasoning = '';
    for await (const c of this) {
      text += c.text;
      reasoning += c.reasoning;
    }
    return { text, reasoning };
  }
}
