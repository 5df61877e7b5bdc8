/**
 * Errors. Every failure moerun reports is a {@link MoerunError} with a stable {@link MoerunErrorCode}.
 * Errors from native code carry the JavaScript stack of the call that started the work.
 */

/** Stable error codes. */
export type MoerunErrorCode =
  | 'ERR_IO'
  | 'ERR_BAD_FORMAT'
  | 'ERR_UNSUPPORTED'
  | 'ERR_INVALID_ARGUMENT'
  | 'ERR_ABORTED'
  | 'ERR_CONTEXT_FULL'
  | 'ERR_OUT_OF_MEMORY'
  | 'ERR_NO_GPU'
  | 'ERR_DISPOSED'
  | 'ERR_BUSY'
  | 'ERR_INVALID_STATE'
  | 'ERR_NATIVE_LOAD'
  | 'ERR_INTERNAL';

/** The error type of every failure moerun reports. */
export class MoerunError extends Error {
  /** A stable, machine-readable code. */
  readonly code: MoerunErrorCode;

  constructor(code: MoerunErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MoerunError';
    this.code = code;
  }
}

const knownCodes = new Set<string>([
  'ERR_IO', 'ERR_BAD_FORMAT', 'ERR_UNSUPPORTED', 'ERR_INVALID_ARGUMENT', 'ERR_ABORTED', 'ERR_CONTEXT_FULL',
  'ERR_OUT_OF_MEMORY', 'ERR_NO_GPU', 'ERR_DISPOSED', 'ERR_BUSY', 'ERR_INVALID_STATE', 'ERR_NATIVE_LOAD', 'ERR_INTERNAL',
]);

/**
 * Turns an error thrown or rejected by the native addon into a MoerunError whose stack is the one
 * captured (by `new Error()`) before the native call, so users see where they called from.
 * @internal
 */
export function fromNative(err: unknown, callerStack?: string): MoerunError {
  if (err instanceof MoerunError) return err;
  const e = err as { code?: unknown; message?: unknown };
  const code = typeof e?.code === 'string' && knownCodes.has(e.code) ? (e.code as MoerunErrorCode) : 'ERR_INTERNAL';
  const message = typeof e?.message === 'string' ? e.message : String(err);
  const out = new MoerunError(code, message, { cause: err });
  if (callerStack) out.stack = `MoerunError: ${message}\n${callerStack.split('\n').slice(1).join('\n')}`;
  return out;
}

/** Awaits a native promise, converting its rejection with the caller's stack. @internal */
export async function callNative<T>(start: () => Promise<T>): Promise<T> {
  const stack = new Error().stack;
  try {
    return await start();
  } catch (err) {
    throw fromNative(err, stack);
  }
}

/** Calls a synchronous native function, converting its exception. @internal */
export function callNativeSync<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw fromNative(err, new Error().stack);
  }
}
