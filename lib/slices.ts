/**
 * Long JS-thread work in slices. Converting a 150k-token vocabulary's strings and indexing it
 * take tens of milliseconds in one piece, more than a frame of an Electron renderer. Such work is
 * written as a generator that yields often (every few hundred entries); a {@link SliceClock}
 * resumes it until the current slice has used its time budget, then gives the event loop a
 * macrotask turn. The clock also records every slice, so the loader can report (and tests can
 * check) the longest stretch it held the thread: in wall time, and in the thread's own CPU time,
 * which a loaded machine cannot inflate by keeping the thread off a core.
 * @internal
 */
import { native } from './native.js';

/** How long a load held the JS thread: see {@link Model.loadStats}. */
export interface SliceStats {
  /** Synchronous slices the work ran in. */
  slices: number;
  /** The longest slice, wall clock, in milliseconds (includes time the OS kept the thread off a core). */
  longestMs: number;
  /** The longest slice in the JS thread's CPU time, milliseconds (NaN where the platform has no thread clock). */
  longestCpuMs: number;
  /** All slices together, wall clock, milliseconds. */
  totalMs: number;
}

/** Target length of one slice: a small part of a 16 ms frame, even on a slow core (a slice ends at the first step past it). */
export const SLICE_BUDGET_MS = 1;

// The addon's thread clock; NaN if the addon cannot load (the tokenizer also runs without it).
const threadCpuMs = (): number => {
  try {
    return native().threadCpuMs();
  } catch {
    return Number.NaN;
  }
};
const turn = (): Promise<void> => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Times the synchronous slices of one piece of work. A slice runs from {@link start} (or the
 * return of {@link yield}) to {@link stop} (or the next turn {@link yield} gives away).
 */
export class SliceClock {
  readonly #budgetMs: number;
  #wall0 = 0;
  #cpu0 = 0;
  #running = false;
  readonly #stats: SliceStats = { slices: 0, longestMs: 0, longestCpuMs: 0, totalMs: 0 };

  constructor(budgetMs = SLICE_BUDGET_MS) {
    this.#budgetMs = budgetMs;
  }

  /** A snapshot of the slices so far. */
  get stats(): SliceStats {
    return { ...this.#stats };
  }

  /** Begins a slice (at the start of the work, and after awaiting something else). */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#wall0 = performance.now();
    this.#cpu0 = threadCpuMs();
  }

  /** Ends the current slice (before awaiting something else). */
  stop(): void {
    if (!this.#running) return;
    this.#running = false;
    const wall = performance.now() - this.#wall0;
    const cpu = threadCpuMs() - this.#cpu0;
    const s = this.#stats;
    s.slices++;
    s.totalMs += wall;
    s.longestMs = Math.max(s.longestMs, wall);
    s.longestCpuMs = Number.isNaN(cpu) ? Number.NaN : Math.max(s.longestCpuMs, cpu);
  }

  /** True when the current slice has used its budget. */
  get due(): boolean {
    return this.#running && performance.now() - this.#wall0 >= this.#budgetMs;
  }

  /** Gives the event loop a turn if the current slice has used its budget. */
  async yield(): Promise<void> {
    if (!this.due) return;
    this.stop();
    await turn();
    this.start();
  }

  /** Runs a generator of small steps to its end, in slices; returns its result. */
  async run<T>(steps: Generator<void, T, void>): Promise<T> {
    this.start();
    for (;;) {
      const r = steps.next();
      if (r.done) return r.value;
      await this.yield();
    }
  }
}
