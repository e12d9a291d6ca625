import { parseConnectionString, type Transport } from '../connection-string/index.js';
import { parseHostPort } from '../http/host-port.js';
import { LOG_FORMATS, LOG_LEVELS } from '../log.js';
import type { OptionDef } from './option-table.js';

/**
 * Checks of option values shared by the commands' option tables, so a value is refused the same way
 * on a command line, in a variable and in a config file (and by `postern config check`).
 */

/** A connection string, of one of `transports` when given. */
export function connectionString(...transports: Transport[]): (value: string) => string | undefined {
  return (value) => {
    try {
      const cs = parseConnectionString(value);
      if (transports.length > 0 && !transports.includes(cs.transport))
        return `use ${transports.map((t) => `${t}://`).join(', ')} (got ${cs.transport}://)`;
      return undefined;
    } catch (error) {
      return (error as Error).message;
    }
  };
}

/** `host:port` or `[v6]:port`, port 0–65535. */
export function hostPort(value: string): string | undefined {
  try {
    parseHostPort(value);
    return undefined;
  } catch {
    return `"${value}" is not host:port with a port of 0 to 65535 (e.g. 127.0.0.1:9090)`;
  }
}

/** An absolute http:// or https:// URL. */
export function httpUrl(value: string): string | undefined {
  return /^https?:\/\//i.test(value) && URL.canParse(value)
    ? undefined
    : `"${value}" is not an http:// or https:// URL`;
}

/** A rate: whole requests per second, or `<n>/s`, `<n>/min`. */
export const RATE = /^\d+(\/(s|min))?$/;

export function rate(value: string): string | undefined {
  return RATE.test(value) ? undefined : `"${value}" is not requests per second, <n>/s or <n>/min`;
}

/** `--rate-limit 10`, `10/s` or `600/min` as requests per second. */
export function perSecond(value: string): number {
  const [count, unit] = value.split('/');
  return Number(count) / (unit === 'min' ? 60 : 1);
}

/** `--config <file>`: the YAML file the other options may also come from (docs/config.md). */
export const CONFIG_OPTION = {
  config: {
    value: '<file>',
    commandLineOnly: true,
    help: 'read options from this YAML file too (flags and POSTERN_* variables win)',
    doc: 'read options from the `relay:` or `expose:` section of this YAML file ([config.md](config.md)); flags win over `POSTERN_*` variables, which win over the file. Also `POSTERN_CONFIG`',
    default: 'none',
  },
} as const satisfies Record<string, OptionDef>;

/** Options every long-running command has, defined once. */
export const LOGGING_OPTIONS = {
  'log-level': {
    value: '<level>',
    choices: LOG_LEVELS,
    help: 'log lines on stderr at this level and above: debug, info, warn, error, silent',
  },
  'log-format': {
    value: '<format>',
    choices: LOG_FORMATS,
    default: '`auto`',
    help: 'auto, json or pretty',
    doc: '`json`: one JSON object a line (`time`, `level`, `msg`, then the fields of the logger that wrote it: `role`, `connection`, …); `pretty`: `12:04:05.123 WARN  message  key=value …`; `auto`: pretty when stderr is a terminal, JSON otherwise. Levels are coloured on a terminal unless `NO_COLOR` is set',
  },
} as const satisfies Record<string, OptionDef>;
