/**
 * Option validation with exact messages, run before anything reaches native code.
 * @internal
 */
import { MoerunError } from './errors.js';

/** `-1 (number)`, `"abc" (string)`, `null (object)`. */
export function describe(value: unknown): string {
  const shown = typeof value === 'string' ? JSON.stringify(value) : typeof value === 'bigint' ? `${value}n` : String(value);
  return `${shown} (${value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value})`;
}

export function invalid(message: string): MoerunError {
  return new MoerunError('ERR_INVALID_ARGUMENT', message);
}

function expected(what: string, name: string, value: unknown): MoerunError {
  return invalid(`Expected ${what} for ${name} but received ${describe(value)}`);
}

/** Rejects keys not in `allowed`, suggesting a close match ("did you mean 'topK'?"). */
export function checkKnownKeys(options: object, allowed: readonly string[], where: string): void {
  for (const key of Object.keys(options)) {
    if (allowed.includes(key)) continue;
    const lower = key.toLowerCase();
    const close = allowed.find((a) => a.toLowerCase() === lower || editDistance(a.toLowerCase(), lower) <= 2);
    throw invalid(`Unknown option '${key}' for ${where}${close ? `; did you mean '${close}'?` : ''}. Known options: ${allowed.join(', ')}`);
  }
}

/** Checks that `options` is undefined or a plain object, returning it (or {}). */
export function optionsObject<T extends object>(options: T | undefined, where: string): Partial<T> {
  if (options === undefined) return {};
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw invalid(`Expected an options object for ${where} but received ${describe(options)}`);
  }
  return options;
}

export function positiveInteger(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) throw expected('a positive integer', name, value);
  return value;
}

export function nonNegativeInteger(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) throw expected('a non-negative integer', name, value);
  return value;
}

export function finiteNumber(name: string, value: unknown, min = -Infinity, max = Infinity): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    const range = min === -Infinity && max === Infinity ? 'a finite number' : `a number in [${min}, ${max}]`;
    throw expected(range, name, value);
  }
  return value;
}

export function oneOf<T extends string>(name: string, value: unknown, allowed: readonly T[]): T {
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    throw expected(`one of ${allowed.map((a) => `'${a}'`).join(', ')}`, name, value);
  }
  return value as T;
}

export function booleanOption(name: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw expected('a boolean', name, value);
  return value;
}

export function functionOption<F>(name: string, value: unknown): F {
  if (typeof value !== 'function') throw expected('a function', name, value);
  return value as F;
}

export function abortSignal(name: string, value: unknown): AbortSignal {
  if (!(value instanceof AbortSignal)) throw expected('an AbortSignal', name, value);
  return value;
}

export function nonEmptyString(name: string, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0) throw expected('a non-empty string', name, value);
  return value;
}

/** Validates token ids and copies them into an Int32Array. @internal */
export function toTokenArray(tokens: ArrayLike<number>, vocabSize: number, name: string): Int32Array {
  if (tokens === null || typeof tokens !== 'object' || typeof (tokens as ArrayLike<number>).length !== 'number') {
    throw invalid(`Expected an array of token ids for ${name} but received ${describe(tokens)}`);
  }
  const out = new Int32Array(tokens.length);
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    if (typeof t !== 'number' || !Number.isInteger(t) || t < 0 || t >= vocabSize) {
      throw invalid(`Expected token ids in [0, ${vocabSize}) for ${name} but received ${describe(t)} at index ${i}`);
    }
    out[i] = t;
  }
  return out;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length]!;
}
