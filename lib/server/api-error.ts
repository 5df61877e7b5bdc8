/**
 * Errors as OpenAI's API returns them: an HTTP status and `{ error: { message, type, param, code } }`,
 * so every OpenAI client reports them as it reports OpenAI's own.
 */

/** The `type` values the server uses (OpenAI's names). */
export type ApiErrorType = 'invalid_request_error' | 'authentication_error' | 'not_found_error' | 'server_error' | 'overloaded_error';

/** The body of an error response. */
export interface ApiErrorBody {
  error: { message: string; type: ApiErrorType; param: string | null; code: string | null };
}

/** An error the server answers with `status` and an OpenAI-shaped body. */
export class ApiError extends Error {
  constructor(
    readonly status: 400 | 401 | 404 | 500 | 503,
    message: string,
    readonly type: ApiErrorType = 'invalid_request_error',
    readonly param: string | null = null,
    readonly code: string | null = null,
  ) {
    super(message);
    this.name = 'ApiError';
  }

  get body(): ApiErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** A 400 for a request field: `param` names it as the request spells it (`messages[1].content`). */
export function badRequest(message: string, param: string | null = null, code: string | null = null): ApiError {
  return new ApiError(400, message, 'invalid_request_error', param, code);
}

/** A 400 for a field the server knows but cannot honour. */
export function unsupported(param: string, what: string): ApiError {
  return badRequest(`${what} is not supported by this server (moerun)`, param, 'unsupported_parameter');
}
