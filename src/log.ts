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
    const emit = (at: LogLevel, message: string, extra?: Record<string, unknown>): void => {
      if (LOG_LEVELS.indexOf(at) < threshold) return;
      const record = { time: new Date().toISOString(), level: at, msg: message, ...fields, ...extra };
      write(pretty === false ? `${JSON.stringify(record)}\n` : prettyLine(record, pretty === 'colour'));
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

/** The CLI's logger: `auto` is pretty on a terminal, JSON otherwise (files, pipes, journald). */
export function createCliLogger(level: LogLevel, format: LogFormat, stream: NodeJS.WriteStream): Logger {
  const tty = stream.isTTY === true;
  const pretty = format === 'pretty' || (format === 'auto' && tty);
  return createJsonLogger(level, (line) => stream.write(line), {}, pretty && (tty ? 'colour' : 'plain'));
}
