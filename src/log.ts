/** The logging surface library code uses; the CLI supplies a real one, libraries default to silence. */
export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
  /** A logger whose every line also carries `fields` (e.g. the tunnel's label). */
  child(fields: Record<string, unknown>): Logger;
}

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child() {
    return silentLogger;
  },
};

/** One JSON object per line on `write` (stderr in the CLI), at `level` and above. */
export function createJsonLogger(
  level: LogLevel,
  write: (line: string) => void,
  base: Record<string, unknown> = {},
): Logger {
  const threshold = LOG_LEVELS.indexOf(level);
  const make = (fields: Record<string, unknown>): Logger => {
    const emit = (at: LogLevel, message: string, extra?: Record<string, unknown>): void => {
      if (LOG_LEVELS.indexOf(at) < threshold) return;
      write(
        `${JSON.stringify({ time: new Date().toISOString(), level: at, msg: message, ...fields, ...extra })}\n`,
      );
    };
    return {
      debug: (m, f) => emit('debug', m, f),
      info: (m, f) => emit('info', m, f),
      warn: (m, f) => emit('warn', m, f),
      error: (m, f) => emit('error', m, f),
      child: (more) => make({ ...fields, ...more }),
    };
  };
  return make(base);
}
