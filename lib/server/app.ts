/**
 * The HTTP routes of `moerun serve` (hono): OpenAI's `/v1/chat/completions`, `/v1/completions`
 * and `/v1/models`, plus `/health` and `/metrics`. Requests are checked (requests.ts), wait for a
 * session (pool.ts), and stream as server-sent events or answer as one JSON object. A client that
 * disconnects aborts its generation: the request's AbortSignal goes into the session, which stops
 * at the next layer boundary.
 */
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import { Hono, type Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { toolCallSyntaxOf, type ToolCall } from '../chat/tool-calls.js';
import { MoerunError } from '../errors.js';
import { Grammar, type JsonSchema } from '../grammar/index.js';
import type { Model } from '../model.js';
import type { ChatOptions, ChatStream, GenerateStats, GenerationStream, Session } from '../session.js';
import { ApiError, badRequest, unsupported } from './api-error.js';
import { MetricsRecorder, prometheusText, type FinishKind } from './metrics.js';
import { SessionPool } from './pool.js';
import { parseChatRequest, parseCompletionRequest, parseJsonObject, type ChatRequest } from './requests.js';

/** What the routes need: the model, its sessions, the settings that shape answers. */
export interface AppContext {
  model: Model;
  /** The model id clients send and `/v1/models` lists. */
  modelId: string;
  pool: SessionPool;
  metrics: MetricsRecorder;
  /** When set, every route requires `Authorization: Bearer <apiKey>`. */
  apiKey: string | undefined;
  /** Largest request body accepted, bytes. */
  maxBodyBytes: number;
  /** The chat template to use instead of the model's (or, for a model without one, ChatML). */
  chatTemplate: string | undefined;
  /** The requests in flight; the server aborts them all when it shuts down past its grace period. */
  inflight: Set<AbortController>;
}

/**
 * ChatML, the fallback for a model whose GGUF has no chat template (as llama.cpp's server does).
 * Its end-of-turn marker is also a stop string, for vocabularies where it is not a token.
 */
export const chatmlTemplate =
  "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
const chatmlEndOfTurn = '<|im_end|>';

/** Routes counted in the metrics by name; anything else is counted as `other`. */
const knownRoutes = new Set(['/v1/chat/completions', '/v1/completions', '/v1/models', '/health', '/metrics']);

/** Status recorded for a request whose client went away before the answer (nginx's convention). */
const CLIENT_CLOSED = 499;

/** One generation's usage block, OpenAI's shape. */
interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

function usageOf(stats: GenerateStats | undefined): Usage {
  const prompt = stats ? stats.promptTokens + stats.reusedTokens : 0;
  const completion = stats?.generatedTokens ?? 0;
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

function finishReason(stats: GenerateStats | undefined): 'stop' | 'length' {
  return stats?.stopReason === 'maxTokens' || stats?.stopReason === 'contextFull' ? 'length' : 'stop';
}

/** Constant-time comparison of the sent key with the configured one (hashed: equal lengths). */
function keyMatches(sent: string, expected: string): boolean {
  const digest = (s: string): Buffer => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(sent), digest(expected));
}

function errorResponse(c: Context, err: ApiError): Response {
  return c.json(err.body, err.status);
}

/** Any error as the API error to answer with: ours as they are, a MoerunError by its code, the rest a 500. */
function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof MoerunError) {
    if (err.code === 'ERR_INVALID_ARGUMENT' || err.code === 'ERR_BAD_FORMAT') return badRequest(err.message, null, 'invalid_value');
    if (err.code === 'ERR_UNSUPPORTED') return badRequest(err.message, null, 'unsupported');
    if (err.code === 'ERR_CONTEXT_FULL') return badRequest(err.message, null, 'context_length_exceeded');
  }
  return new ApiError(500, `The server had an error while generating: ${(err as Error)?.message ?? String(err)}`, 'server_error', null, 'internal_error');
}

/**
 * What aborts one request's generation: its client disconnecting, or the server shutting down.
 * (Not `AbortSignal.any` with the server's long-lived signal: on Node 20 every such signal stays
 * referenced by the long-lived one, a leak per request.) `release()` when the request is over.
 */
class RequestAbort {
  readonly #controller = new AbortController();
  readonly #inflight: Set<AbortController>;
  readonly #client: AbortSignal;
  readonly #onClientAbort = (): void => this.#controller.abort(new MoerunError('ERR_ABORTED', 'the client disconnected'));

  constructor(ctx: AppContext, client: AbortSignal) {
    this.#inflight = ctx.inflight;
    this.#client = client;
    ctx.inflight.add(this.#controller);
    client.addEventListener('abort', this.#onClientAbort, { once: true });
    if (client.aborted) this.#onClientAbort();
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  release(): void {
    this.#inflight.delete(this.#controller);
    this.#client.removeEventListener('abort', this.#onClientAbort);
  }
}

/** A generation in progress on a leased session; ends exactly once, giving the session back. */
class Generation<C> {
  readonly #ctx: AppContext;
  readonly #session: Session<Model>;
  readonly #abort: RequestAbort;
  readonly stream: GenerationStream | ChatStream;
  #ended = false;

  constructor(ctx: AppContext, session: Session<Model>, stream: GenerationStream | ChatStream, abort: RequestAbort) {
    this.#ctx = ctx;
    this.#session = session;
    this.#abort = abort;
    this.stream = stream;
    ctx.metrics.started(ctx.pool.active);
  }

  next(): Promise<IteratorResult<C, undefined>> {
    return this.stream.next() as Promise<IteratorResult<C, undefined>>;
  }

  /** Records how it ended and gives the session back; stops the stream first if it still runs. */
  async end(kind: FinishKind | undefined): Promise<void> {
    if (this.#ended) return;
    this.#ended = true;
    await this.stream.return().catch(() => undefined);
    const stats = this.stream.stats;
    this.#ctx.metrics.finished(kind ?? finishReason(stats), stats);
    this.#ctx.pool.release(this.#session);
    this.#abort.release();
  }
}

function isAbort(err: unknown): boolean {
  return err instanceof MoerunError && err.code === 'ERR_ABORTED';
}

/**
 * Starts a generation on a session from the pool and waits for its first piece, so that errors a
 * session finds only once it runs (a prompt longer than the context) are still a clean 400 and not
 * a broken event stream.
 */
async function begin<C>(
  ctx: AppContext,
  abort: RequestAbort,
  start: (session: Session<Model>, signal: AbortSignal) => GenerationStream | ChatStream,
): Promise<{ gen: Generation<C>; first: IteratorResult<C, undefined> }> {
  let session: Session<Model>;
  let stream: GenerationStream | ChatStream;
  try {
    session = await ctx.pool.acquire(abort.signal);
    try {
      stream = start(session, abort.signal);
    } catch (err) {
      ctx.pool.release(session);
      throw err;
    }
  } catch (err) {
    abort.release();
    throw err;
  }
  const gen = new Generation<C>(ctx, session, stream, abort);
  let first: IteratorResult<C, undefined>;
  try {
    first = await gen.next();
  } catch (err) {
    await gen.end(isAbort(err) ? 'abort' : 'error');
    throw err;
  }
  const stats = stream.stats;
  if (first.done && stats?.stopReason === 'contextFull' && stats.generatedTokens === 0) {
    await gen.end('error');
    throw badRequest(
      `This model's maximum context length is ${session.contextSize} tokens, but the prompt has ${stats.promptTokens + stats.reusedTokens}; shorten it`,
      null,
      'context_length_exceeded',
    );
  }
  return { gen, first };
}

/** A piece of either stream: generate's chunks have text only, chat's may have reasoning and tool calls. */
interface Piece {
  text: string;
  reasoning?: string;
  toolCalls?: ToolCall[];
}

/** Tool calls as OpenAI's API writes them; streamed ones carry `index`, counting the answer's calls from 0. */
function toolCallsJson(calls: readonly ToolCall[], streamIndex?: number): object[] {
  return calls.map((c, k) => ({
    ...(streamIndex === undefined ? {} : { index: streamIndex + k }),
    id: c.id,
    type: 'function',
    function: { name: c.name, arguments: c.arguments },
  }));
}

/** Builds the hono app. */
export function createApp(ctx: AppContext): Hono {
  const app = new Hono();

  app.use('*', async (c, next) => {
    await next();
    const route = knownRoutes.has(c.req.path) ? c.req.path : 'other';
    ctx.metrics.request(route, c.req.raw.signal.aborted ? CLIENT_CLOSED : c.res.status);
  });

  app.use('*', async (c, next) => {
    if (ctx.apiKey === undefined) return next();
    const header = c.req.header('authorization') ?? '';
    const sent = header.startsWith('Bearer ') ? header.slice('Bearer '.length).trim() : '';
    if (!sent || !keyMatches(sent, ctx.apiKey)) {
      const message = sent ? 'Incorrect API key provided.' : "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'.";
      return errorResponse(c, new ApiError(401, message, 'invalid_request_error', null, 'invalid_api_key'));
    }
    return next();
  });

  const limit = bodyLimit({
    maxSize: ctx.maxBodyBytes,
    onError: (c) => errorResponse(c, badRequest(`The request body is larger than this server accepts (${ctx.maxBodyBytes} bytes)`, null, 'request_too_large')),
  });

  app.get('/health', (c) => c.json({ status: 'ok', model: ctx.modelId, activeGenerations: ctx.pool.active, queueLength: ctx.pool.queueLength }));

  app.get('/metrics', (c) => {
    const m = ctx.metrics.snapshot(ctx.pool);
    const wantsJson = c.req.query('format') === 'json' || (c.req.header('accept') ?? '').includes('application/json');
    if (wantsJson) return c.json(m);
    return c.text(prometheusText(m), 200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8' });
  });

  const modelCard = (): object => ({ id: ctx.modelId, object: 'model', created: 0, owned_by: 'moerun' });
  app.get('/v1/models', (c) => c.json({ object: 'list', data: [modelCard()] }));
  app.get('/v1/models/:id', (c) =>
    c.req.param('id') === ctx.modelId
      ? c.json(modelCard())
      : errorResponse(c, new ApiError(404, `The model '${c.req.param('id')}' does not exist; this server serves '${ctx.modelId}'`, 'invalid_request_error', 'model', 'model_not_found')),
  );

  /** The request's body as a checked object. */
  const readRequest = async <R extends { model: string }>(c: Context, parse: (body: Record<string, unknown>) => R): Promise<R> => {
    const req = parse(parseJsonObject(await c.req.text()));
    if (req.model !== ctx.modelId) {
      throw new ApiError(404, `The model '${req.model}' does not exist; this server serves '${ctx.modelId}'`, 'invalid_request_error', 'model', 'model_not_found');
    }
    return req;
  };

  app.post('/v1/chat/completions', limit, async (c) => {
    const req = await readRequest(c, parseChatRequest);
    const options = chatOptions(ctx, req);
    const abort = new RequestAbort(ctx, c.req.raw.signal);
    const { gen, first } = await begin<Piece>(ctx, abort, (s, signal) => s.chat(req.messages, { ...options, signal }));
    const id = `chatcmpl-${randomUUID()}`;
    const created = Math.floor(Date.now() / 1000);
    if (req.stream) {
      const frame = (choices: object[], extra: object = {}): object => ({ id, object: 'chat.completion.chunk', created, model: ctx.modelId, choices, ...extra });
      let calls = 0;
      return sse(gen, first, req.includeUsage, {
        head: [frame([{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }])],
        chunk: (p) => {
          const delta: Record<string, unknown> = p.reasoning ? { reasoning_content: p.reasoning } : p.text || !p.toolCalls?.length ? { content: p.text } : {};
          if (p.toolCalls?.length) {
            delta.tool_calls = toolCallsJson(p.toolCalls, calls);
            calls += p.toolCalls.length;
          }
          return frame([{ index: 0, delta, finish_reason: null }]);
        },
        tail: (stats) => frame([{ index: 0, delta: {}, finish_reason: calls > 0 ? 'tool_calls' : finishReason(stats) }]),
        usage: (stats) => frame([], { usage: usageOf(stats) }),
      });
    }
    const { text, reasoning, toolCalls } = await collect(gen, first);
    const stats = gen.stream.stats;
    // OpenAI's shape: content is null on an answer that is only tool calls.
    const message: Record<string, unknown> = { role: 'assistant', content: text === '' && toolCalls.length > 0 ? null : text };
    if (reasoning) message.reasoning_content = reasoning;
    if (toolCalls.length > 0) message.tool_calls = toolCallsJson(toolCalls);
    return c.json({
      id, object: 'chat.completion', created, model: ctx.modelId,
      choices: [{ index: 0, message, logprobs: null, finish_reason: toolCalls.length > 0 ? 'tool_calls' : finishReason(stats) }],
      usage: usageOf(stats),
    });
  });

  app.post('/v1/completions', limit, async (c) => {
    const req = await readRequest(c, parseCompletionRequest);
    const abort = new RequestAbort(ctx, c.req.raw.signal);
    const { gen, first } = await begin<Piece>(ctx, abort, (s, signal) => {
      // A completion is independent of what the session did before.
      s.reset();
      return s.generate(req.prompt, { ...req.sampling, signal });
    });
    const id = `cmpl-${randomUUID()}`;
    const created = Math.floor(Date.now() / 1000);
    const frame = (choices: object[], extra: object = {}): object => ({ id, object: 'text_completion', created, model: ctx.modelId, choices, ...extra });
    if (req.stream) {
      return sse(gen, first, req.includeUsage, {
        head: [],
        chunk: (p) => frame([{ index: 0, text: p.text, logprobs: null, finish_reason: null }]),
        tail: (stats) => frame([{ index: 0, text: '', logprobs: null, finish_reason: finishReason(stats) }]),
        usage: (stats) => frame([], { usage: usageOf(stats) }),
      });
    }
    const { text } = await collect(gen, first);
    const stats = gen.stream.stats;
    return c.json(frame([{ index: 0, text, logprobs: null, finish_reason: finishReason(stats) }], { usage: usageOf(stats) }));
  });

  app.notFound((c) => errorResponse(c, new ApiError(404, `Unknown route: ${c.req.method} ${c.req.path}`, 'invalid_request_error', null, 'unknown_url')));

  app.onError((err, c) => {
    const apiError = toApiError(err);
    if (apiError.status === 500 && !isAbort(err)) process.emitWarning(`moerun serve: ${(err as Error)?.stack ?? String(err)}`);
    return errorResponse(c, apiError);
  });

  return app;
}

/** Compiled `response_format` schemas by their JSON text: clients repeat the same schema. */
const schemaGrammars = new Map<string, Grammar>();
const SCHEMA_CACHE_SIZE = 32;

function grammarOfSchema(schema: JsonSchema): Grammar {
  const key = JSON.stringify(schema);
  let grammar = schemaGrammars.get(key);
  if (!grammar) {
    try {
      grammar = Grammar.fromJsonSchema(schema);
    } catch (err) {
      const apiError = toApiError(err);
      if (apiError.status !== 400) throw err;
      throw badRequest(`Invalid value for 'response_format': ${apiError.message}`, 'response_format', apiError.code);
    }
    if (schemaGrammars.size >= SCHEMA_CACHE_SIZE) schemaGrammars.delete(schemaGrammars.keys().next().value!);
  } else {
    schemaGrammars.delete(key);  // most recently used last
  }
  schemaGrammars.set(key, grammar);
  return grammar;
}

/**
 * A chat request's session options (all but the signal): sampling, the template and its variables,
 * tools, the schema. Throws a 400 for what the template cannot do (tools it has no call syntax for).
 */
function chatOptions(ctx: AppContext, req: ChatRequest): ChatOptions {
  const options: ChatOptions = { ...req.sampling };
  const ownTemplate = ctx.model.gguf.metadata['tokenizer.chat_template'];
  const override = ctx.chatTemplate ?? (typeof ownTemplate === 'string' && ownTemplate.length > 0 ? undefined : chatmlTemplate);
  const template = override ?? (ownTemplate as string);
  if (override !== undefined) options.chatTemplate = override;
  if (override === chatmlTemplate) options.stop = [...(options.stop ?? []), chatmlEndOfTurn];
  if (req.tools.length > 0) {
    if (toolCallSyntaxOf(template) === undefined) {
      throw unsupported('tools', `Tools with this model's chat template (it has no tool-call syntax moerun parses: Qwen3/QwQ/Ling <tool_call>, DeepSeek R1/V3, Llama 3.1)`);
    }
    options.tools = req.tools;
    options.toolChoice = req.toolChoice;
  }
  let enableThinking = req.enableThinking;
  if (req.jsonSchema !== undefined) {
    // The schema constrains the answer from its first token, so no thinking block comes first.
    if (enableThinking === true) throw badRequest("'response_format' cannot follow a thinking block: leave chat_template_kwargs.enable_thinking unset or false", 'response_format', 'invalid_value');
    enableThinking = false;
    options.grammar = grammarOfSchema(req.jsonSchema);
  }
  if (enableThinking !== undefined) options.enableThinking = enableThinking;
  if (Object.keys(req.templateVars).length > 0) options.templateVars = req.templateVars;
  return options;
}

/** Runs a non-streaming generation to its end. */
async function collect(gen: Generation<Piece>, first: IteratorResult<Piece, undefined>): Promise<{ text: string; reasoning: string; toolCalls: ToolCall[] }> {
  let text = '';
  let reasoning = '';
  const toolCalls: ToolCall[] = [];
  try {
    for (let r = first; !r.done; r = await gen.next()) {
      text += r.value.text;
      reasoning += r.value.reasoning ?? '';
      if (r.value.toolCalls) toolCalls.push(...r.value.toolCalls);
    }
  } catch (err) {
    await gen.end(isAbort(err) ? 'abort' : 'error');
    throw err;
  }
  await gen.end(undefined);
  return { text, reasoning, toolCalls };
}

/** How one endpoint frames its events. */
interface SseFrames<C> {
  /** Events before the first piece. */
  head: object[];
  chunk: (piece: C) => object;
  /** The event carrying finish_reason. */
  tail: (stats: GenerateStats | undefined) => object;
  /** The `stream_options.include_usage` event. */
  usage: (stats: GenerateStats | undefined) => object;
}

/**
 * Server-sent events, pulled: the next piece is generated when the connection has taken the
 * previous one (backpressure), and a disconnect cancels the stream, which ends the generation.
 */
function sse<C>(gen: Generation<C>, first: IteratorResult<C, undefined>, includeUsage: boolean, frames: SseFrames<C>): Response {
  const encoder = new TextEncoder();
  const event = (data: object | string): Uint8Array => encoder.encode(`data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`);
  let pending: IteratorResult<C, undefined> | undefined = first;
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      for (const h of frames.head) controller.enqueue(event(h));
    },
    async pull(controller) {
      try {
        const r = pending ?? (await gen.next());
        pending = undefined;
        if (!r.done) {
          controller.enqueue(event(frames.chunk(r.value)));
          return;
        }
        await gen.end(undefined);
        const stats = gen.stream.stats;
        controller.enqueue(event(frames.tail(stats)));
        if (includeUsage) controller.enqueue(event(frames.usage(stats)));
        controller.enqueue(event('[DONE]'));
        controller.close();
      } catch (err) {
        await gen.end(isAbort(err) ? 'abort' : 'error');
        if (isAbort(err)) {
          controller.close();
          return;
        }
        // Headers are sent: the error goes into the stream, as OpenAI's API does.
        controller.enqueue(event(toApiError(err).body));
        controller.close();
      }
    },
    async cancel() {
      await gen.end('abort');
    },
  }, { highWaterMark: 0 });
  return new Response(body, { headers: { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-cache', Connection: 'keep-alive' } });
}
