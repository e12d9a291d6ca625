import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { OptionError } from '../errors.js';
import { watchFilesFor } from '../file-watch.js';

/** How often the certificate and key files are checked for changes. */
export const DEFAULT_TLS_RELOAD_INTERVAL_MS = 2_000;

export interface TlsFiles {
  cert: string;
  key: string;
}

export interface TlsPair {
  cert: Buffer;
  key: Buffer;
}

/** Reads a certificate/key pair and checks that they load and match; throws an OptionError naming the files. */
export function loadTlsFiles(files: TlsFiles): TlsPair {
  const read = (path: string, what: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (error) {
      throw new OptionError(`cannot read TLS ${what} ${path}: ${(error as NodeJS.ErrnoException).code}`);
    }
  };
  const cert = read(files.cert, 'certificate');
  const key = read(files.key, 'key');
  try {
    createSecureContext({ cert, key });
    return { cert, key };
  } catch (error) {
    throw new OptionError(`TLS certificate ${files.cert} with key ${files.key}: ${(error as Error).message}`);
  }
}

/**
 * Calls `onChange` with the new pair whenever the certificate or key file changes on
 * disk (renewal by certbot, a Kubernetes secret's symlink swap: both are polled by path, so a
 * replaced file is seen too). A pair that does not load (the key not yet written, a mismatch) goes
 * to `onError` and the old pair stays in use until a later change loads. Returns the stop function.
 */
export function watchTlsFiles(
  files: TlsFiles,
  intervalMs: number,
  onChange: (pair: TlsPair) => void,
  onError: (error: Error) => void,
): () => void {
  return watchFilesFor([files.cert, files.key], intervalMs, () => loadTlsFiles(files), onChange, onError);
}
