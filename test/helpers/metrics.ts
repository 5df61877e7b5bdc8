// Logit comparison metrics for oracle tests (DESIGN.md, "How correctness is established").
// `ref` is always the reference (llama.cpp, or the F32 twin); rows are row-major, nVocab wide.
// Any NaN or infinity in either side makes nmse and maxAbsDiff NaN or infinite, so a bound fails.

/** Normalized mean squared error Σ(a−ref)² / Σref² (0 when equal; NaN if ref is all zero). */
export function nmse(a: ArrayLike<number>, ref: ArrayLike<number>): number {
  sameLength(a, ref);
  let err = 0;
  let norm = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = a[i] - ref[i];
    err += d * d;
    norm += ref[i] * ref[i];
  }
  return err / norm;
}

/** max |a − ref| (NaN if any element of either is NaN). */
export function maxAbsDiff(a: ArrayLike<number>, ref: ArrayLike<number>): number {
  sameLength(a, ref);
  let max = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = Math.abs(a[i] - ref[i]);
    if (Number.isNaN(d)) return NaN;
    if (d > max) max = d;
  }
  return max;
}

/** Index of the largest value of each row (ties: the lowest index; NaN is never the max). */
export function argmaxRows(x: ArrayLike<number>, nVocab: number): Int32Array {
  const nRows = rowCount(x, nVocab);
  const out = new Int32Array(nRows);
  for (let r = 0; r < nRows; r++) {
    let best = -1;
    let bestValue = -Infinity;
    for (let j = 0; j < nVocab; j++) {
      const v = x[r * nVocab + j];
      if (v > bestValue || (best < 0 && v === -Infinity)) {
        best = j;
        bestValue = v;
      }
    }
    out[r] = best;
  }
  return out;
}

/**
 * Rows where the reference's top-1 leads its runner-up by at least `margin` × the row's RMS
 * (default 5%): the positions where a top-1 flip is an error rather than a near-tie.
 */
export function decisivePositions(ref: ArrayLike<number>, nVocab: number, margin = 0.05): number[] {
  const nRows = rowCount(ref, nVocab);
  const out: number[] = [];
  for (let r = 0; r < nRows; r++) {
    let first = -Infinity;
    let second = -Infinity;
    let sumSq = 0;
    for (let j = 0; j < nVocab; j++) {
      const v = ref[r * nVocab + j];
      sumSq += v * v;
      if (v > first) {
        second = first;
        first = v;
      } else if (v > second) {
        second = v;
      }
    }
    const rms = Math.sqrt(sumSq / nVocab);
    if (first - second >= margin * rms) out.push(r);
  }
  return out;
}

/** How many rows (of `rows`, default all) have the same top-1 in `a` and `ref`. */
export interface Top1Agreement {
  agree: number;
  total: number;
  /** agree / total (1 when total is 0). */
  fraction: number;
  /** Row indices where the top-1 differs. */
  mismatches: number[];
}

/** Top-1 agreement per row, over `rows` (default: every row). */
export function top1Agreement(a: ArrayLike<number>, ref: ArrayLike<number>, nVocab: number, rows?: readonly number[]): Top1Agreement {
  sameLength(a, ref);
  const ta = argmaxRows(a, nVocab);
  const tr = argmaxRows(ref, nVocab);
  const which = rows ?? Array.from(tr.keys());
  const mismatches = which.filter((r) => ta[r] !== tr[r]);
  const agree = which.length - mismatches.length;
  return { agree, total: which.length, fraction: which.length === 0 ? 1 : agree / which.length, mismatches };
}

/** Everything an oracle test reports about `a` against `ref`. */
export interface LogitComparison {
  nmse: number;
  maxAbsDiff: number;
  /** Top-1 agreement on every row. */
  top1: Top1Agreement;
  /** Top-1 agreement on the reference's decisive rows only. */
  top1Decisive: Top1Agreement;
}

/** nmse, maxAbsDiff and top-1 agreement (all rows and decisive rows) in one call. */
export function compareLogits(a: ArrayLike<number>, ref: ArrayLike<number>, nVocab: number, margin = 0.05): LogitComparison {
  return {
    nmse: nmse(a, ref),
    maxAbsDiff: maxAbsDiff(a, ref),
    top1: top1Agreement(a, ref, nVocab),
    top1Decisive: top1Agreement(a, ref, nVocab, decisivePositions(ref, nVocab, margin)),
  };
}

function sameLength(a: ArrayLike<number>, ref: ArrayLike<number>): void {
  if (a.length !== ref.length) throw new RangeError(`Expected arrays of equal length but got ${a.length} and ${ref.length}`);
}

function rowCount(x: ArrayLike<number>, nVocab: number): number {
  if (!Number.isSafeInteger(nVocab) || nVocab <= 0 || x.length % nVocab !== 0) {
    throw new RangeError(`Expected a length that is a multiple of nVocab ${nVocab} but got ${x.length}`);
  }
  return x.length / nVocab;
}

/** The worst per-row NMSE of rows of nVocab logits, so one bad position cannot hide in the average (NaN sticks). */
export function worstRowNmse(a: Float32Array, ref: Float32Array, nVocab: number): number {
  let worst = 0;
  for (let r = 0; r < ref.length / nVocab; r++) {
    const e = nmse(a.subarray(r * nVocab, (r + 1) * nVocab), ref.subarray(r * nVocab, (r + 1) * nVocab));
    if (!(e <= worst)) worst = e;
  }
  return worst;
}

/**
 * Positions where `a` and `ref` differ bit for bit (float32 bit patterns: -0 ≠ +0, NaN payloads
 * count). For claims of "bit for bit": assert `bitDifferences(a, ref)` equals `{ count: 0, first: -1 }`,
 * so a failure names how many values and the first index that differ.
 */
export function bitDifferences(a: Float32Array, ref: Float32Array): { count: number; first: number } {
  sameLength(a, ref);
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(ref.buffer, ref.byteOffset, ref.length);
  let count = 0;
  let first = -1;
  for (let i = 0; i < x.length; i++) {
    if (x[i] !== y[i]) {
      if (count === 0) first = i;
      count++;
    }
  }
  return { count, first };
}

/** `bitDifferences` that found none. */
export const BIT_IDENTICAL = Object.freeze({ count: 0, first: -1 });
