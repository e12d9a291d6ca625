/**
 * One log method, called as pino and bunyan are: `log.warn('message')` or
 * `log.warn({ field: value }, 'message')`. So a pino logger can be passed wherever Postern takes a
 * Logger, as is, and keeps every field.
 */
export interface LogMethod {
  (message: string): void;
  (fields: Record<string, unknown>, message: string): void;
}

/** The logging surface library code uses; the CLI supplies a real one, libraries default to silence. */
export interface Logger {
  debug: LogMethod;
  info: LogMethod;
  warn: LogMethod;
  error: LogMethod;
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

export const LOG_FORMATS = ['auto', 'json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/**
 * One JSON object per line on `write` (stderr in the CLI), at `level` and above; with `pretty`,
 * one readable line instead: time, level, message, then the fields as key=value.
 */
export function createJsonLogger(
  level: LogLevel,
  write: (line: string) => void,
  base: Record<string, unknown> = {},
  pretty: false | 'plain' | 'colour' = false,
): Logger {
  const threshold = LOG_LEVELS.indexOf(level);
  const make = (fields: Record<string, unknown>): Logger => {
    const method = (at: LogLevel): LogMethod => {
      const enabled = LOG_LEVELS.indexOf(at) >= threshold;
      return (first: string | Record<string, unknown>, message?: string): void => {
        if (!enabled) return;
        const [extra, msg] = typeof first === 'string' ? [undefined, first] : [first, message ?? ''];
        const record = { time: new Date().toISOString(), level: at, msg, ...fields, ...extra };
        write(pretty === false ? `${JSON.stringify(record)}\n` : prettyLine(record, pretty === 'colour'));
      };
    };
    return {
      debug: method('debug'),
      info: method('info'),
      warn: method('warn'),
      error: method('error'),
      child: (more) => make({ ...fields, ...more }),
    };
  };
  return make(base);
}

const LEVEL_COLOURS: Record<string, string> = { debug: '90', info: '36', warn: '33', error: '31' };

/** `12:04:05.123 WARN  message  role=agent connection=1 reason="a b"`, the level coloured. */
function prettyLine(record: Record<string, unknown>, colour: boolean): string {
  const { time, level, msg, ...fields } = record;
  // Strings that need it are quoted (JSON escapes a peer's control characters); other values as JSON.
  const pairs = Object.entries(fields).map(
    ([key, value]) =>
      `${key}=${typeof value === 'string' && /^[^\s"=\\]+$/.test(value) ? value : JSON.stringify(value)}`,
  );
  const name = String(level).toUpperCase().padEnd(5);
  const shown = colour ? `\x1b[${LEVEL_COLOURS[String(level)] ?? '0'}m${name}\x1b[0m` : name;
  return `${String(time).slice(11, 23)} ${shown} ${String(msg)}${pairs.length > 0 ? `  ${pairs.join(' ')}` : ''}\n`;
}

/**
 * The CLI's logger: `auto` is pretty on a terminal, JSON otherwise (files, pipes, journald).
 * Colour only on a terminal, and not when NO_COLOR is set to anything (no-color.org).
 */
export function createCliLogger(
  level: LogLevel,
  format: LogFormat,
  stream: NodeJS.WriteStream,
  env: NodeJS.ProcessEnv = process.env,
): Logger {
  const tty = stream.isTTY === true;
  const pretty = format === 'pretty' || (format === 'auto' && tty);
  const colour = tty && (env.NO_COLOR ?? '') === '';
  return createJsonLogger(level, (line) => stream.write(line), {}, pretty && (colour ? 'colour' : 'plain'));
}
