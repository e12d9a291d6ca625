import {
  createCliLogger,
  LOG_FORMATS,
  LOG_LEVELS,
  type LogFormat,
  type Logger,
  type LogLevel,
} from '../log.js';
import { UsageError } from './args.js';

/** The logger `--log-level` and `--log-format` ask for, on stderr. */
export function loggerFromFlags(
  values: { 'log-level'?: string | undefined; 'log-format'?: string | undefined },
  defaultLevel: LogLevel,
): Logger {
  const level = (values['log-level'] ?? defaultLevel) as LogLevel;
  if (!LOG_LEVELS.includes(level))
    throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}`);
  const format = (values['log-format'] ?? 'auto') as LogFormat;
  if (!LOG_FORMATS.includes(format))
    throw new UsageError(`--log-format must be one of ${LOG_FORMATS.join(', ')}`);
  return createCliLogger(level, format, process.stderr);
}
