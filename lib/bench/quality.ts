/**
 * Quality arithmetic: log-softmax, KL divergence, top-1 agreement and perplexity of next-token
 * distributions. Pure functions; {@link measureQuality} (measure.ts) feeds them a model's logits.
 */
import type { QualityResult } from './report.js';

/** log-softmax of one row of logits, in float64. */
export function logSoftmax(logits: ArrayLike<number>): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i]! > max) max = logits[i]!;
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i]! - max);
  const lse = max + Math.log(sum);
  const out = new Float64Array(logits.length);
  for (let i = 0; i < logits.length; i++) out[i] = logits[i]! - lse;
  return out;
}

/** KL(P ‖ Q) in nats, from the log-probabilities of P and Q. */
export function klDivergence(logP: ArrayLike<number>, logQ: ArrayLike<number>): number {
  let kl = 0;
  for (let i = 0; i < logP.length; i++) {
    const p = Math.exp(logP[i]!);
    if (p > 0) kl += p * (logP[i]! - logQ[i]!);
  }
  return Math.max(0, kl);
}

function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i]! > x[best]!) best = i;
  return best;
}

/**
 * Running sums for the quality of one file against a reference: add rows of next-token
 * log-probabilities (reference and file) with the token that came next, then read the result.
 */
export class QualityAccumulator {
  #kl = 0;
  #nll = 0;
  #agree = 0;
  #n = 0;

  /** One position: the reference's and this file's log-probabilities, and the actual next token. */
  add(refLogProbs: ArrayLike<number>, logProbs: ArrayLike<number>, nextToken: number): void {
    this.#kl += klDivergence(refLogProbs, logProbs);
    this.#nll -= logProbs[nextToken]!;
    if (argmax(refLogProbs) === argmax(logProbs)) this.#agree++;
    this.#n++;
  }

  result(): QualityResult {
    const n = this.#n;
    if (n === 0) return { meanKl: Number.NaN, top1: Number.NaN, perplexity: Number.NaN, positions: 0 };
    return { meanKl: this.#kl / n, top1: this.#agree / n, perplexity: Math.exp(this.#nll / n), positions: n };
  }
}
