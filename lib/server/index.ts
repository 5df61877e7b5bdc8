/**
 * `serve(model, options)`: an OpenAI-compatible HTTP server over a loaded model, in-process (what
 * `moerun serve` runs). Routes in app.ts, request checks in requests.ts, the session pool in
 * pool.ts, `/metrics` in metrics.ts.
 */
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import path from 'node:path';
import { MoerunError } from '../errors.js';
import type { Model } from '../model.js';
import { kvCacheTypes, type KvCacheType, type SessionOptions } from '../session.js';
import { checkKnownKeys, describe, invalid, nonEmptyString, nonNegativeInteger, oneOf, optionsObject, positiveInteger } from '../validate.js';
import { createApp } from './app.js';
import { MetricsRecorder, type ServerMetrics } from './metrics.js';
import { SessionPool } from './pool.js';

export type { ServerMetrics, FinishKind } from './metrics.js';
export type { ApiErrorBody, ApiErrorType } from './api-error.js';

/** Options of {@link serve}. */
export interface ServeOptions {
  /** TCP port; 0 picks a free one (see {@link MoerunServer.port}). Default 8080. */
  port?: number;
  /** Address to bind. Default `'127.0.0.1'` (loopback only); `'0.0.0.0'` opens it to the network. */
  host?: string;
  /** Sessions that generate at once, sharing the one loaded model. Default 1. */
  parallel?: number;
  /** Requires `Authorization: Bearer <apiKey>` on every route. Default: none. */
  apiKey?: string;
  /** The model id clients send and `/v1/models` lists. Default: the file name without `.gguf`. */
  modelName?: string;
  /** Each session's KV cache size in tokens. Default: as {@link Model.createSession}. */
  contextSize?: number;
  /** Each session's KV cache element type. Default `'f16'`. */
  kvCacheType?: KvCacheType;
  /** Requests that may wait for a session beyond the `parallel` running; more get a 503. Default 64. */
  maxQueue?: number;
  /** How long a request may wait for a session before a 503, ms. Default 60000. */
  queueTimeoutMs?: number;
  /** Largest request body, bytes; larger ones get a 400. Default 4 MiB. */
  maxBodyBytes?: number;
  /** A Jinja chat template to use instead of the model's. A model without one gets ChatML. */
  chatTemplate?: string;
  /** On {@link MoerunServer.close}: how long running generations may go on before they are aborted, ms. Default 10000. */
  shutdownGraceMs?: number;
}

/** A running server. */
export interface MoerunServer {
  /** The bound address (as given, e.g. `127.0.0.1`). */
  readonly host: string;
  /** The bound port (the one picked when `port` was 0). */
  readonly port: number;
  /** The OpenAI base URL, `http://host:port/v1`. */
  readonly url: string;
  /** The model id it serves. */
  readonly modelId: string;
  /** What `/metrics` reports, now. */
  metrics(): ServerMetrics;
  /**
   * Stops accepting connections, fails queued requests with 503, lets running generations finish
   * for up to `shutdownGraceMs` (then aborts them), and frees the sessions. The model stays loaded
   * (it is the caller's). Safe to call twice.
   */
  close(): Promise<void>;
  /** `await using server = await serve(model)` */
  [Symbol.asyncDispose](): Promise<void>;
}

const serveOptionKeys = [
  'port', 'host', 'parallel', 'apiKey', 'modelName', 'contextSize', 'kvCacheType', 'maxQueue', 'queueTimeoutMs', 'maxBodyBytes', 'chatTemplate', 'shutdownGraceMs',
] as const satisfies readonly (keyof ServeOptions)[];

/**
 * Serves `model` over HTTP with OpenAI's API: `POST /v1/chat/completions` and `/v1/completions`
 * (streaming or not), `GET /v1/models`, `/health`, `/metrics`. Resolves once it listens.
 * @example
 * await using model = await loadModel('model.gguf');
 * await using server = await serve(model, { port: 0, parallel: 2 });
 * const client = new OpenAI({ baseURL: server.url, apiKey: 'unused' });
 */
export async function serve(model: Model, options?: ServeOptions): Promise<MoerunServer> {
  if (model === null || typeof model !== 'object' || typeof (model as Model).createSession !== 'function') {
    throw invalid(`Expected a Model for model but received ${describe(model)}`);
  }
  if (model.disposed) throw new MoerunError('ERR_DISPOSED', 'serve(): the model is disposed');
  if (model.vocabOnly) throw new MoerunError('ERR_UNSUPPORTED', 'serve(): the model was loaded with vocabOnly: true and cannot generate');
  const o = optionsObject(options, 'serve()');
  checkKnownKeys(o, serveOptionKeys, 'serve()');
  const port = o.port === undefined ? 8080 : nonNegativeInteger('port', o.port);
  if (port > 65535) throw invalid(`Expected a port in [0, 65535] for port but received ${describe(port)}`);
  const host = o.host === undefined ? '127.0.0.1' : nonEmptyString('host', o.host);
  const parallel = o.parallel === undefined ? 1 : positiveInteger('parallel', o.parallel);
  const apiKey = o.apiKey === undefined ? undefined : nonEmptyString('apiKey', o.apiKey);
  const modelId = o.modelName === undefined ? path.basename(model.path).replace(/\.gguf$/i, '') : nonEmptyString('modelName', o.modelName);
  const session: SessionOptions = {};
  if (o.contextSize !== undefined) session.contextSize = positiveInteger('contextSize', o.contextSize);
  if (o.kvCacheType !== undefined) session.kvCacheType = oneOf('kvCacheType', o.kvCacheType, kvCacheTypes);
  const maxQueue = o.maxQueue === undefined ? 64 : nonNegativeInteger('maxQueue', o.maxQueue);
  const queueTimeoutMs = o.queueTimeoutMs === undefined ? 60_000 : positiveInteger('queueTimeoutMs', o.queueTimeoutMs);
  const maxBodyBytes = o.maxBodyBytes === undefined ? 4 * 2 ** 20 : positiveInteger('maxBodyBytes', o.maxBodyBytes);
  const chatTemplate = o.chatTemplate === undefined ? undefined : nonEmptyString('chatTemplate', o.chatTemplate);
  const shutdownGraceMs = o.shutdownGraceMs === undefined ? 10_000 : nonNegativeInteger('shutdownGraceMs', o.shutdownGraceMs);

  // A session is made now so a bad contextSize or kvCacheType fails here, not in the first request.
  await model.createSession(session).dispose();

  const pool = new SessionPool(model, { parallel, maxQueue, queueTimeoutMs, session });
  const metrics = new MetricsRecorder();
  const inflight = new Set<AbortController>();
  const app = createApp({ model, modelId, pool, metrics, apiKey, maxBodyBytes, chatTemplate, inflight });

  // Imported here, not at the top: @hono/node-server sets up undici, whose WebAssembly parser
  // reserves 10 GiB of address space, and `import 'moerun'` must work under a ulimit -v.
  const { serve: serveNode } = await import('@hono/node-server');
  const server = await new Promise<Server>((resolve, reject) => {
    const s = serveNode({ fetch: app.fetch, port, hostname: host }) as Server;
    const onError = (err: NodeJS.ErrnoException): void => {
      s.close();
      reject(new MoerunError('ERR_IO', `serve(): cannot listen on ${host}:${port}: ${err.code ?? err.message}`, { cause: err }));
    };
    s.once('error', onError);
    s.once('listening', () => {
      s.off('error', onError);
      resolve(s);
    });
  });
  const bound = (server.address() as AddressInfo).port;
  const urlHost = host.includes(':') ? `[${host}]` : host;

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      pool.close();
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      // Generations running now may finish within the grace period; then they are aborted.
      const deadline = Date.now() + shutdownGraceMs;
      while (pool.active > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      for (const request of inflight) request.abort(new MoerunError('ERR_ABORTED', 'the server is shutting down'));
      // Closing the connections cancels streams paused on a slow reader, which ends their generations.
      server.closeAllConnections();
      while (pool.active > 0) await new Promise((r) => setTimeout(r, 5));
      await stopped;
      await pool.dispose();
    })());

  return {
    host,
    port: bound,
    url: `http://${urlHost}:${bound}/v1`,
    modelId,
    metrics: () => metrics.snapshot(pool),
    close,
    [Symbol.asyncDispose]: close,
  };
}
