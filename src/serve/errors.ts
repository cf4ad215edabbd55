/**
 * Errors in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}` with its status codes,
 * so OpenAI clients raise their usual exception classes (BadRequestError, NotFoundError, ...).
 */

export type ServeErrorType = 'invalid_request_error' | 'not_found_error' | 'server_error';

export class ServeError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: ServeErrorType = 'invalid_request_error',
    readonly param: string | null = null,
    readonly code: string | null = null,
  ) {
    super(message);
    this.name = 'ServeError';
  }

  body(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export const badRequest = (message: string, param: string | null = null, code: string | null = null) =>
  new ServeError(400, message, 'invalid_request_error', param, code);

export const modelNotFound = (model: string, available: readonly string[]) =>
  new ServeError(
    404,
    `The model '${model}' does not exist; this server serves ${available.map((m) => `'${m}'`).join(', ')} (GET /v1/models)`,
    'invalid_request_error',
    'model',
    'model_not_found',
  );

export const contextOverflow = (promptTokens: number, maxTokens: number, contextLength: number) =>
  badRequest(
    `This model's maximum context length is ${contextLength} tokens. However, you requested ` +
      `${promptTokens + maxTokens} tokens (${promptTokens} in the messages, ${maxTokens} in the completion). ` +
      'Please reduce the length of the messages or completion.',
    'messages',
    'context_length_exceeded',
  );
