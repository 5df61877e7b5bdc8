/**
 * The caller side of the port protocol: a {@link TextModel} whose sessions stream `generate()` and
 * `chat()` from a host on the other end of a port (lib/electron/host.ts), with `signal` aborting
 * through an `abort` message. Usable in Electron's main process and in a renderer.
 */
import type { ChatMessage } from '../chat.js';
import { MoerunError } from '../errors.js';
import type { TextChatStream, TextGenerationStream, TextModel, TextSession } from '../remote/text-model.js';
import type { ChatChunk, ChatOptions, GenerateChunk, GenerateOptions, GenerateStats, SessionOptions } from '../session.js';
import type { Endpoint, HostReply, HostRequest, PortLoadOptions } from './protocol.js';

type Pending = (reply: HostReply) => void;
/** A request without its id (the connection assigns it); distributive over the union. */
type RequestBody = HostRequest extends infer R ? (R extends HostRequest ? Omit<R, 'id'> : never) : never;

/** One endpoint's calls in flight, by id. @internal */
export class Connection {
  readonly #endpoint: Endpoint;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;

  constructor(endpoint: Endpoint) {
    this.#endpoint = endpoint;
    endpoint.onMessage((m) => {
      const reply = m as HostReply;
      if (typeof reply?.id === 'number') this.#pending.get(reply.id)?.(reply);
    });
  }

  /** Sends a request; `onReply` sees every reply to it until `done` or `error` (then it is forgotten). */
  send(request: RequestBody, onReply: Pending): number {
    const id = this.#nextId++;
    this.#pending.set(id, (reply) => {
      if (reply.type === 'done' || reply.type === 'error') this.#pending.delete(id);
      onReply(reply);
    });
    this.#endpoint.post({ ...request, id } as HostRequest);
    return id;
  }

  /** A call with one answer: resolves with `done`'s value, rejects with the host's error as a MoerunError. */
  call(request: RequestBody, onProgress?: (fraction: number) => void): Promise<HostReply & { type: 'done' }> {
    return new Promise((resolve, reject) => {
      this.send(request, (reply) => {
        if (reply.type === 'done') resolve(reply);
        else if (reply.type === 'error') reject(new MoerunError(reply.code, reply.message));
        else if (reply.type === 'progress') onProgress?.(reply.fraction);
      });
    });
  }

  post(request: HostRequest): void {
    this.#endpoint.post(request);
  }

  close(): void {
    this.#endpoint.close();
  }
}

/** Loads a model in the host; the model's sessions run there. */
export async function loadModelOverPort(
  endpoint: Endpoint,
  path: string,
  options: PortLoadOptions & { onProgress?: (fraction: number) => void } = {},
): Promise<PortModel> {
  const connection = new Connection(endpoint);
  const { onProgress, ...portOptions } = options;
  const done = await connection.call({ op: 'load', path, options: portOptions }, onProgress);
  return new PortModel(connection, done.value as number);
}

/** A model loaded in a host process; meets {@link TextModel} as a local Model does. */
export class PortModel implements TextModel {
  readonly #connection: Connection;
  readonly #handle: number;
  #disposed = false;

  /** @internal */
  constructor(connection: Connection, handle: number) {
    this.#connection = connection;
    this.#handle = handle;
  }

  get disposed(): boolean {
    return this.#disposed;
  }

  /** A session in the host. Its first call waits for the host to create it. */
  createSession(options: SessionOptions = {}): PortSession {
    if (this.#disposed) throw new MoerunError('ERR_DISPOSED', 'createSession: the model is disposed');
    const handle = this.#connection.call({ op: 'createSession', model: this.#handle, options }).then((d) => d.value as number);
    handle.catch(() => {});  // reported by the session's first call
    return new PortSession(this.#connection, handle);
  }

  async dispose(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    await this.#connection.call({ op: 'disposeModel', model: this.#handle });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }
}

/** Chunks of one generate/chat call as they arrive, and its stats at the end. */
class PortStream<C extends GenerateChunk | ChatChunk> implements AsyncIterableIterator<C, undefined> {
  stats: GenerateStats | undefined;
  readonly #queue: C[] = [];
  #end: { error?: MoerunError } | undefined;
  #wake: (() => void) | undefined;
  #abort: (() => void) | undefined;
  /** Resolves when the host has ended the call (done or error), or it never started. */
  readonly #settled: Promise<void>;

  /** Sends `request(session)` once the session exists; `signal` aborts through an `abort` message. */
  constructor(connection: Connection, session: Promise<number>, request: (session: number) => RequestBody, signal: AbortSignal | undefined) {
    let settle!: () => void;
    this.#settled = new Promise((r) => (settle = r));
    const finish = (end: { error?: MoerunError }) => {
      this.#end ??= end;
      settle();
      this.#wake?.();
    };
    session.then(
      (handle) => {
        if (signal?.aborted) return finish({ error: new MoerunError('ERR_ABORTED', 'aborted before it started') });
        const id = connection.send(request(handle), (reply) => {
          if (reply.type === 'chunk') this.#queue.push(reply.chunk as C);
          else if (reply.type === 'done') {
            this.stats = reply.value as GenerateStats;
            finish({});
          } else if (reply.type === 'error') finish({ error: new MoerunError(reply.code, reply.message) });
          this.#wake?.();
        });
        this.#abort = () => connection.post({ op: 'abort', id });
        signal?.addEventListener('abort', this.#abort, { once: true });
      },
      (err: MoerunError) => finish({ error: err }),
    );
  }

  async next(): Promise<IteratorResult<C, undefined>> {
    while (this.#queue.length === 0 && !this.#end) await new Promise<void>((r) => (this.#wake = r));
    if (this.#queue.length) return { value: this.#queue.shift()!, done: false };
    if (this.#end!.error) throw this.#end!.error;
    return { value: undefined, done: true };
  }

  /** Leaving a for-await loop early stops the host's generation, and waits until it has stopped
   * (so the session takes the next call at once). */
  async return(): Promise<IteratorResult<C, undefined>> {
    if (!this.#end) {
      this.#abort?.();
      await this.#settled;
    }
    this.#end = {};
    this.#queue.length = 0;
    return { value: undefined, done: true };
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

class PortGenerationStream extends PortStream<GenerateChunk> implements TextGenerationStream {
  async text(): Promise<string> {
    let text = '';
    for await (const chunk of this) text += chunk.text;
    return text;
  }
}

class PortChatStream extends PortStream<ChatChunk> implements TextChatStream {
  async collect(): Promise<{ text: string; reasoning: string }> {
    let text = '';
    let reasoning = '';
    for await (const chunk of this) {
      text += chunk.text;
      reasoning += chunk.reasoning;
    }
    return { text, reasoning };
  }
}

/** Options as they cross the port: the signal stays here, a grammar goes as GBNF text. */
function portOptions<O extends GenerateOptions>(options: O): Omit<O, 'signal' | 'grammar'> & { grammar?: string } {
  const { signal: _signal, grammar, ...rest } = options;
  if (grammar !== undefined && typeof grammar !== 'string') {
    throw new MoerunError('ERR_INVALID_ARGUMENT', 'over a port, grammar must be GBNF text (a compiled Grammar cannot be sent)');
  }
  return grammar === undefined ? rest : { ...rest, grammar };
}

/** A session in the host; meets {@link TextSession} as a local Session does. */
export class PortSession implements TextSession {
  readonly #connection: Connection;
  readonly #handle: Promise<number>;
  #disposed = false;

  /** @internal */
  constructor(connection: Connection, handle: Promise<number>) {
    this.#connection = connection;
    this.#handle = handle;
  }

  generate(prompt: string | ArrayLike<number>, options: GenerateOptions = {}): PortGenerationStream {
    this.#checkLive('generate');
    const sent = typeof prompt === 'string' ? prompt : Array.from(prompt);
    const o = portOptions(options);
    return new PortGenerationStream(this.#connection, this.#handle, (session) => ({ op: 'generate', session, prompt: sent, options: o }), options.signal);
  }

  chat(messages: readonly ChatMessage[], options: ChatOptions = {}): PortChatStream {
    this.#checkLive('chat');
    const o = portOptions(options);
    return new PortChatStream(this.#connection, this.#handle, (session) => ({ op: 'chat', session, messages: [...messages], options: o }), options.signal);
  }

  /** Clears the sequence (in the host, in order with the calls before it). */
  reset(): void {
    this.#checkLive('reset');
    void this.#handle.then((session) => this.#connection.call({ op: 'reset', session })).catch(() => {});
  }

  async dispose(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    const session = await this.#handle.catch(() => undefined);
    if (session !== undefined) await this.#connection.call({ op: 'disposeSession', session });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }

  #checkLive(what: string): void {
    if (this.#disposed) throw new MoerunError('ERR_DISPOSED', `${what}: the session is disposed`);
  }
}
