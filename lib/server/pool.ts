/**
 * The server's sessions: up to `parallel` sessions on one loaded model, leased one request at a
 * time, and a fair first-in first-out queue of the requests waiting for one. The queue is bounded
 * in length and in waiting time; past either bound a request gets a 503.
 */
import type { Model } from '../model.js';
import type { Session, SessionOptions } from '../session.js';
import { MoerunError } from '../errors.js';
import { ApiError } from './api-error.js';

/** Options of {@link SessionPool}. */
export interface SessionPoolOptions {
  /** Sessions generating at once. */
  parallel: number;
  /** Requests that may wait for a session; one more is a 503. */
  maxQueue: number;
  /** How long a request may wait for a session before it gets a 503, ms. */
  queueTimeoutMs: number;
  /** Options of every session (context size, KV cache type). */
  session: SessionOptions;
}

interface Waiter {
  grant: (session: Session<Model>) => void;
  fail: (err: unknown) => void;
}

/** Sessions leased to requests in arrival order. */
export class SessionPool {
  readonly #model: Model;
  readonly #options: SessionPoolOptions;
  /** Sessions made so far (made lazily, at most `parallel`). */
  readonly #all: Session<Model>[] = [];
  /** Made and not leased; the most recently returned last (its KV cache is the warmest). */
  readonly #idle: Session<Model>[] = [];
  readonly #queue: Waiter[] = [];
  #closed = false;

  constructor(model: Model, options: SessionPoolOptions) {
    this.#model = model;
    this.#options = options;
  }

  /** Requests waiting for a session. */
  get queueLength(): number {
    return this.#queue.length;
  }

  /** Sessions leased now. */
  get active(): number {
    return this.#all.length - this.#idle.length;
  }

  /** The most sessions this pool leases at once. */
  get parallel(): number {
    return this.#options.parallel;
  }

  /**
   * A session for one request: at once if one is free, else after the requests queued before
   * this one. Rejects with a 503 when the queue is full or the wait passes `queueTimeoutMs`, and
   * with `ERR_ABORTED` when the signal aborts (the client went away) while waiting. Give it back with
   * {@link release}.
   */
  acquire(signal: AbortSignal): Promise<Session<Model>> {
    if (this.#closed) return Promise.reject(new ApiError(503, 'The server is shutting down', 'overloaded_error', null, 'shutting_down'));
    const free = this.#idle.pop();
    if (free) return Promise.resolve(free);
    if (this.#all.length < this.#options.parallel) {
      const session = this.#model.createSession(this.#options.session);
      this.#all.push(session);
      return Promise.resolve(session);
    }
    if (this.#queue.length >= this.#options.maxQueue) {
      return Promise.reject(new ApiError(503, `The server is busy: ${this.#options.parallel} requests are generating and ${this.#queue.length} are waiting (the most it queues); retry later`, 'overloaded_error', null, 'queue_full'));
    }
    return new Promise<Session<Model>>((resolve, reject) => {
      const finish = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        const i = this.#queue.indexOf(waiter);
        if (i >= 0) this.#queue.splice(i, 1);
      };
      const waiter: Waiter = {
        grant: (session) => {
          finish();
          resolve(session);
        },
        fail: (err) => {
          finish();
          reject(err);
        },
      };
      const timer = setTimeout(
        () => waiter.fail(new ApiError(503, `The server is busy: no session became free within ${this.#options.queueTimeoutMs} ms; retry later`, 'overloaded_error', null, 'queue_timeout')),
        this.#options.queueTimeoutMs,
      );
      const onAbort = (): void => waiter.fail(new MoerunError('ERR_ABORTED', 'the request was aborted while it waited for a session'));
      signal.addEventListener('abort', onAbort, { once: true });
      this.#queue.push(waiter);
      if (signal.aborted) onAbort();
    });
  }

  /** Gives a leased session back: to the first waiting request, or to the idle list. */
  release(session: Session<Model>): void {
    const next = this.#queue.shift();
    if (next) next.grant(session);
    else this.#idle.push(session);
  }

  /** Refuses new requests and fails the waiting ones with a 503; leased sessions finish their work. */
  close(): void {
    this.#closed = true;
    for (const w of [...this.#queue]) w.fail(new ApiError(503, 'The server is shutting down', 'overloaded_error', null, 'shutting_down'));
  }

  /** Frees every session (after the leases ended, or aborting what still runs). */
  async dispose(): Promise<void> {
    this.close();
    await Promise.all(this.#all.map((s) => s.dispose()));
  }
}
