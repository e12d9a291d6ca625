import { ERROR_CATALOGUE, type PosternErrorCode } from './error-codes.js';

export {
  ERROR_CATALOGUE,
  isErrorCode,
  type PosternErrorCode,
  statusOf,
  type WireErrorCode,
} from './error-codes.js';

/**
 * Every error Postern raises is a PosternError with a stable `code` from the catalogue
 * (src/error-codes.ts, docs/errors.md) that scripts and callers can branch on. `retryable` says
 * whether trying the same thing again later may succeed; by default, what the catalogue says.
 */
export class PosternError extends Error {
  readonly code: PosternErrorCode;
  readonly retryable: boolean;

  constructor(
    code: PosternErrorCode,
    message: string,
    options: { cause?: unknown; retryable?: boolean } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'PosternError';
    this.code = code;
    this.retryable = options.retryable ?? ERROR_CATALOGUE[code].retryable;
  }
}

/** The catalogue code of any thrown value: its own for a PosternError, `POSTERN_ERROR` otherwise. */
export function errorCodeOf(error: unknown): PosternErrorCode {
  return error instanceof PosternError ? error.code : 'POSTERN_ERROR';
}

/** A connection string that cannot be parsed; the message says what is wrong and where. */
export class ConnectionStringError extends PosternError {
  readonly input: string;
  readonly position: number;

  constructor(input: string, position: number, reason: string) {
    super(
      'POSTERN_BAD_CONNECTION_STRING',
      `bad connection string "${printable(redactSecrets(input))}": ${reason}`,
    );
    this.name = 'ConnectionStringError';
    this.input = input;
    this.position = position;
  }
}

/**
 * A connection string as it may appear in messages and logs: passwords in user info, plain or
 * percent-encoded inside `proxy=`, are replaced by `***`.
 */
export function redactSecrets(text: string): string {
  return text
    .replace(/(\/\/[^:@/?#\s]*:)[^@/?#\s]*@/g, '$1***@')
    .replace(/(proxy=http(?:%3A|:)(?:%2F|\/){2}[^%:@&]*(?:%3A|:))[^&@]*?(%40|@)/gi, '$1***$2');
}

/** The relay refused an agent's registration; `status` is the HTTP status it answered with. */
export class RegistrationRejectedError extends PosternError {
  readonly status: number;

  /**
   * `permanent`: the relay itself said the registration can never succeed (not admitted, malformed);
   * anything else — clock skew, replay, rate limits, and refusals by a proxy in front of the relay,
   * which may be fixed without restarting the agent — is worth retrying.
   */
  constructor(
    status: number,
    reason: string,
    permanent = false,
    message = `relay refused registration: ${status} ${reason}`,
  ) {
    super('POSTERN_REGISTRATION_REJECTED', message, { retryable: !permanent });
    this.name = 'RegistrationRejectedError';
    this.status = status;
  }
}

/** A key file that is missing, unreadable, malformed or readable by other users. */
export class KeyFileError extends PosternError {
  constructor(message: string, cause?: unknown) {
    super('POSTERN_BAD_KEY_FILE', message, cause === undefined ? {} : { cause });
    this.name = 'KeyFileError';
  }
}

/** Wraps a low-level network failure with what Postern was doing when it happened. */
export class ConnectError extends PosternError {
  constructor(message: string, cause?: unknown) {
    super(
      'POSTERN_CONNECT_FAILED',
      message,
      cause === undefined ? { retryable: true } : { cause, retryable: true },
    );
    this.name = 'ConnectError';
  }
}

/** Invalid options passed to the library or the CLI. */
export class OptionError extends PosternError {
  constructor(message: string) {
    super('POSTERN_BAD_OPTION', message);
    this.name = 'OptionError';
  }
}

/**
 * `text` with control characters written as escapes (`\r`, `\n`, `\x00`), so a message that quotes
 * input stays one line and cannot forge log lines or headers.
 */
export function printable(text: string): string {
  return text.replace(/[\x00-\x1f\x7f]/g, (c) => {
    if (c === '\r') return '\\r';
    if (c === '\n') return '\\n';
    if (c === '\t') return '\\t';
    return `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`;
  });
}
