/**
 * `moerun serve`: loads a model and serves it with OpenAI's API ({@link serve} in lib/server/)
 * until SIGINT or SIGTERM, then shuts down gracefully: no new requests, running generations
 * finish (or are aborted after the grace period), the model is freed.
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { MoerunError } from '../errors.js';
import { loadModel } from '../model.js';
import { serve, type ServeOptions } from '../server/index.js';
import type { KvCacheType } from '../session.js';
import { bundledModelPath } from '../system.js';

/** Usage of `moerun serve`. */
export const serveUsage = `  moerun serve [--model PATH] [--port 8080] [--host 127.0.0.1] [--parallel N] [--api-key K]
               [--model-name ID] [--context-size N] [--kv-cache-type f16] [--threads N]
               [--max-queue 64] [--queue-timeout-ms 60000] [--chat-template FILE]
      An OpenAI-compatible HTTP server: /v1/chat/completions, /v1/completions (streaming or not),
      /v1/models, /health, /metrics (Prometheus text; JSON with ?format=json). Binds to loopback
      unless --host says otherwise. --parallel sessions share the model; up to --max-queue more
      requests wait (fairly, in order) up to --queue-timeout-ms, then get 503. --api-key (or the
      MOERUN_API_KEY environment variable) is required on every route. Ctrl-C or SIGTERM stops it.
`;

function integerArg(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isInteger(n)) throw new MoerunError('ERR_INVALID_ARGUMENT', `--${name} expects an integer, got '${value}'`);
  return n;
}

/** Runs `moerun serve` (arguments without the command word) until a signal; returns the exit code. */
export async function serveCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    allowPositionals: false,
    options: {
      model: { type: 'string', short: 'm' },
      port: { type: 'string', short: 'p' },
      host: { type: 'string' },
      parallel: { type: 'string', short: 'P' },
      'api-key': { type: 'string' },
      'model-name': { type: 'string' },
      'context-size': { type: 'string', short: 'c' },
      'kv-cache-type': { type: 'string' },
      threads: { type: 'string' },
      'max-queue': { type: 'string' },
      'queue-timeout-ms': { type: 'string' },
      'chat-template': { type: 'string' },
    },
  });
  const options: ServeOptions = {
    port: integerArg('port', values.port) ?? 8080,
    host: values.host ?? '127.0.0.1',
    parallel: integerArg('parallel', values.parallel),
    apiKey: values['api-key'] ?? (process.env.MOERUN_API_KEY || undefined),
    modelName: values['model-name'],
    contextSize: integerArg('context-size', values['context-size']),
    kvCacheType: values['kv-cache-type'] as KvCacheType | undefined,
    maxQueue: integerArg('max-queue', values['max-queue']),
    queueTimeoutMs: integerArg('queue-timeout-ms', values['queue-timeout-ms']),
    chatTemplate: values['chat-template'] === undefined ? undefined : await readFile(values['chat-template'], 'utf8'),
  };
  const defined = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as ServeOptions;
  const threads = integerArg('threads', values.threads);

  // A signal during loading aborts the load; afterwards it shuts the server down.
  const stop = new AbortController();
  const onSignal = (): void => stop.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    await using model = await loadModel(values.model ?? bundledModelPath, { signal: stop.signal, ...(threads === undefined ? {} : { threads }) });
    await using server = await serve(model, defined);
    process.stderr.write(`moerun serve: ${server.modelId} at ${server.url} (parallel ${defined.parallel ?? 1}${defined.apiKey ? ', API key required' : ''})\n`);
    if (!stop.signal.aborted) await new Promise((resolve) => stop.signal.addEventListener('abort', resolve, { once: true }));
    process.stderr.write('moerun serve: shutting down\n');
    return 0;
  } catch (err) {
    if (err instanceof MoerunError && err.code === 'ERR_ABORTED' && stop.signal.aborted) return 130;
    throw err;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
