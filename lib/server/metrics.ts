/**
 * `/metrics`: counters since the server started, the queue and the sessions now, and the
 * generation rate over the last ten seconds. Prometheus' text format (version 0.0.4) by default;
 * JSON with `?format=json` or `Accept: application/json`.
 */

/** How a generation ended, as `finish_reason` says it (plus `abort`: the client went away, and `error`). */
export type FinishKind = 'stop' | 'length' | 'abort' | 'error';

/** What `/metrics?format=json` returns. */
export interface ServerMetrics {
  /** Seconds since the server started. */
  uptimeSeconds: number;
  /** Requests answered, by route and HTTP status: `{ '/v1/completions': { '200': 3, '400': 1 } }`. */
  requests: Record<string, Record<string, number>>;
  /** Generations ended, by how. */
  generations: Record<FinishKind, number>;
  /** Prompt tokens evaluated (not counting those reused from a session's KV cache). */
  promptTokens: number;
  /** Prompt tokens found in a session's KV cache and not evaluated again. */
  reusedPromptTokens: number;
  /** Tokens generated. */
  generatedTokens: number;
  /** Time spent on prompts (to the first token) and on decoding the rest, seconds. */
  promptSeconds: number;
  decodeSeconds: number;
  /** Tokens of the generations that ended in the last 10 seconds, per second, all sessions together. */
  tokensPerSecond: number;
  /** Requests waiting for a session now. */
  queueLength: number;
  /** Generations running now, of `parallel`. */
  activeGenerations: number;
  parallel: number;
  /** The most generations that ran at once. */
  peakActiveGenerations: number;
  /** Requests refused with a 503 (queue full, wait too long, shutting down). */
  rejectedBusy: number;
}

/** Seconds the rate window covers. */
const RATE_WINDOW_S = 10;

/** The server's counters. */
export class MetricsRecorder {
  readonly #started = performance.now();
  readonly #requests = new Map<string, Map<number, number>>();
  readonly #generations: Record<FinishKind, number> = { stop: 0, length: 0, abort: 0, error: 0 };
  #promptTokens = 0;
  #reusedPromptTokens = 0;
  #generatedTokens = 0;
  #promptMs = 0;
  #decodeMs = 0;
  #peakActive = 0;
  #rejectedBusy = 0;
  /** Tokens generated in each of the last RATE_WINDOW_S whole seconds, by second number. */
  readonly #perSecond = new Map<number, number>();

  /** One answered request. */
  request(route: string, status: number): void {
    let byStatus = this.#requests.get(route);
    if (!byStatus) this.#requests.set(route, (byStatus = new Map()));
    byStatus.set(status, (byStatus.get(status) ?? 0) + 1);
    if (status === 503) this.#rejectedBusy++;
  }

  /** Called when a generation starts, with how many run now. */
  started(active: number): void {
    this.#peakActive = Math.max(this.#peakActive, active);
  }

  /**
   * A generation ended; the counts and times are its session's stats (an aborted generation
   * counts the tokens it made before the abort landed). Counters move when a generation ends.
   */
  finished(kind: FinishKind, stats: { promptTokens: number; reusedTokens: number; generatedTokens: number; promptMs: number; decodeMs: number } | undefined): void {
    this.#generations[kind]++;
    if (!stats) return;
    this.#generatedTokens += stats.generatedTokens;
    const second = Math.floor(performance.now() / 1000);
    this.#perSecond.set(second, (this.#perSecond.get(second) ?? 0) + stats.generatedTokens);
    for (const s of this.#perSecond.keys()) if (s <= second - RATE_WINDOW_S) this.#perSecond.delete(s);
    this.#promptTokens += stats.promptTokens;
    this.#reusedPromptTokens += stats.reusedTokens;
    this.#promptMs += stats.promptMs;
    this.#decodeMs += stats.decodeMs;
  }

  /** Everything, with the pool's state now. */
  snapshot(pool: { queueLength: number; active: number; parallel: number }): ServerMetrics {
    const now = performance.now();
    const second = Math.floor(now / 1000);
    let recent = 0;
    for (const [s, n] of this.#perSecond) if (s > second - RATE_WINDOW_S) recent += n;
    const requests: ServerMetrics['requests'] = {};
    for (const [route, byStatus] of this.#requests) requests[route] = Object.fromEntries([...byStatus].map(([s, n]) => [String(s), n]));
    return {
      uptimeSeconds: (now - this.#started) / 1000,
      requests,
      generations: { ...this.#generations },
      promptTokens: this.#promptTokens,
      reusedPromptTokens: this.#reusedPromptTokens,
      generatedTokens: this.#generatedTokens,
      promptSeconds: this.#promptMs / 1000,
      decodeSeconds: this.#decodeMs / 1000,
      // Over the window, or the uptime while it is shorter.
      tokensPerSecond: recent / Math.min(RATE_WINDOW_S, Math.max((now - this.#started) / 1000, 1)),
      queueLength: pool.queueLength,
      activeGenerations: pool.active,
      parallel: pool.parallel,
      peakActiveGenerations: this.#peakActive,
      rejectedBusy: this.#rejectedBusy,
    };
  }
}

/** The snapshot in Prometheus' text exposition format. */
export function prometheusText(m: ServerMetrics): string {
  const lines: string[] = [];
  const metric = (name: string, type: 'counter' | 'gauge', help: string, samples: [labels: string, value: number][]): void => {
    lines.push(`# HELP moerun_${name} ${help}`, `# TYPE moerun_${name} ${type}`);
    for (const [labels, value] of samples) lines.push(`moerun_${name}${labels} ${Number.isInteger(value) ? value : value.toFixed(6)}`);
  };
  const esc = (s: string): string => s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
  metric('requests_total', 'counter', 'HTTP requests answered, by route and status.',
    Object.entries(m.requests).flatMap(([route, byStatus]) => Object.entries(byStatus).map(([status, n]): [string, number] => [`{route="${esc(route)}",status="${status}"}`, n])));
  metric('generations_total', 'counter', 'Generations ended, by finish reason (abort: the client disconnected).',
    Object.entries(m.generations).map(([kind, n]): [string, number] => [`{finish_reason="${kind}"}`, n]));
  metric('prompt_tokens_total', 'counter', 'Prompt tokens evaluated.', [['', m.promptTokens]]);
  metric('reused_prompt_tokens_total', 'counter', 'Prompt tokens reused from a session KV cache.', [['', m.reusedPromptTokens]]);
  metric('generated_tokens_total', 'counter', 'Tokens generated.', [['', m.generatedTokens]]);
  metric('prompt_seconds_total', 'counter', 'Time evaluating prompts, seconds.', [['', m.promptSeconds]]);
  metric('decode_seconds_total', 'counter', 'Time decoding after the first token, seconds.', [['', m.decodeSeconds]]);
  metric('tokens_per_second', 'gauge', 'Tokens per second of the generations that ended in the last 10 s, all sessions.', [['', m.tokensPerSecond]]);
  metric('queue_length', 'gauge', 'Requests waiting for a session.', [['', m.queueLength]]);
  metric('active_generations', 'gauge', 'Generations running.', [['', m.activeGenerations]]);
  metric('parallel', 'gauge', 'Sessions that generate at once (--parallel).', [['', m.parallel]]);
  metric('peak_active_generations', 'gauge', 'The most generations that ran at once.', [['', m.peakActiveGenerations]]);
  metric('rejected_busy_total', 'counter', 'Requests refused with 503 (queue full, waited too long, shutting down).', [['', m.rejectedBusy]]);
  metric('uptime_seconds', 'gauge', 'Seconds since the server started.', [['', m.uptimeSeconds]]);
  return `${lines.join('\n')}\n`;
}
