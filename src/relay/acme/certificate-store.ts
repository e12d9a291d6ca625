import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** A certificate the relay ordered: its private key and chain, PEM. */
export interface StoredCertificate {
  key: string;
  cert: string;
}

/**
 * Where the ACME account key and the certificates live between runs: a directory of files here,
 * Redis in cluster mode (cluster-certificate-store.ts). `id` is a name, or `*.<domain>` for the
 * wildcard; every CA (directory URL) has its own account and certificates.
 */
export interface CertificateStore {
  loadAccountKey(): Promise<string | undefined>;
  /** Keeps `pem` unless a key is there already (then the caller loads that one). */
  saveAccountKey(pem: string): Promise<void>;
  load(id: string): Promise<StoredCertificate | undefined>;
  save(id: string, certificate: StoredCertificate): Promise<void>;
  /**
   * Takes the right to order `id` for `leaseMs` (one node of a cluster orders at a time): a release
   * function, or undefined while another holder has it.
   */
  lock(id: string, leaseMs: number): Promise<(() => Promise<void>) | undefined>;
  /**
   * Challenge answers every node must give while an order is open (`http-01:<token>`,
   * `tls-alpn-01:<name>` → key authorization): the CA's check may reach any node of a cluster.
   * One process on its own keeps them in memory only, so these do nothing there.
   */
  putChallenge(key: string, value: string, ttlMs: number): Promise<void>;
  getChallenge(key: string): Promise<string | undefined>;
  deleteChallenge(key: string): Promise<void>;
  close(): void;
}

/** A file name for a CA's directory URL: `acme-v02.api.letsencrypt.org-directory`. */
export function directoryFolder(directoryUrl: string): string {
  const url = new URL(directoryUrl);
  return `${url.host}${url.pathname}`.replace(/[^A-Za-z0-9.-]+/g, '-').replace(/-+$/, '');
}

/**
 * `<stateDir>/acme/<CA>/account.key` and `…/certificates/<name>.pem` (key then chain), written
 * whole (a temporary file renamed over the old one), folders 0700 and files 0600: these are
 * private keys.
 */
export class FileCertificateStore implements CertificateStore {
  readonly #folder: string;

  constructor(stateDir: string, directoryUrl: string) {
    this.#folder = join(stateDir, 'acme', directoryFolder(directoryUrl));
  }

  async loadAccountKey(): Promise<string | undefined> {
    return readIfThere(join(this.#folder, 'account.key'));
  }

  async saveAccountKey(pem: string): Promise<void> {
    await this.#write(this.#folder, 'account.key', pem);
  }

  async load(id: string): Promise<StoredCertificate | undefined> {
    const text = await readIfThere(join(this.#folder, 'certificates', fileName(id)));
    return text === undefined ? undefined : splitKeyAndChain(text);
  }

  async save(id: string, certificate: StoredCertificate): Promise<void> {
    await this.#write(join(this.#folder, 'certificates'), fileName(id), certificate.key + certificate.cert);
  }

  /** One process per state directory: nothing to share. */
  async lock(): Promise<() => Promise<void>> {
    return async () => {};
  }

  async putChallenge(): Promise<void> {}

  async getChallenge(): Promise<undefined> {
    return undefined;
  }

  async deleteChallenge(): Promise<void> {}

  close(): void {}

  async #write(folder: string, name: string, text: string): Promise<void> {
    await mkdir(folder, { recursive: true, mode: 0o700 });
    await chmod(folder, 0o700);
    const temporary = join(folder, `.${name}.${randomBytes(6).toString('hex')}`);
    await writeFile(temporary, text, { mode: 0o600 });
    await rename(temporary, join(folder, name));
  }
}

/** `*.example.com` → `_wildcard.example.com.pem`: no `*` in file names. */
function fileName(id: string): string {
  return `${id.replace(/^\*\./, '_wildcard.')}.pem`;
}

/** The private key block and the certificate blocks of one PEM text. */
export function splitKeyAndChain(text: string): StoredCertificate | undefined {
  const key = /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]+?-----END [A-Z ]*PRIVATE KEY-----\n?/.exec(text)?.[0];
  const cert = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g)?.join('');
  return key === undefined || cert === undefined ? undefined : { key, cert };
}

async function readIfThere(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}
