import { OptionError } from '../errors.js';
/** Splits 'host:port' or '[v6]:port'; throws a message naming the value when it is neither. */
export function parseHostPort(value: string): { host: string; port: number } {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(value);
  const port = Number(match?.[3]);
  if (match === null || port > 65_535)
    throw new OptionError(`"${value}" is not host:port (e.g. 127.0.0.1:9090)`);
  return { host: (match[1] ?? match[2]) as string, port };
}
