import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { KeyFileError } from '../errors.js';

export interface AgentKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
}

/** Where `postern expose` keeps its key when `--key` is not given. */
export function defaultKeyPath(env: NodeJS.ProcessEnv = process.env): string {
  const base =
    env.XDG_CONFIG_HOME && env.XDG_CONFIG_HOME !== '' ? env.XDG_CONFIG_HOME : join(homedir(), '.config');
  return join(base, 'postern', 'agent.key');
}

export function generateAgentKey(): AgentKey {
  return generateKeyPairSync('ed25519');
}

/** Writes the private key as PKCS#8 PEM, mode 0600, refusing to overwrite an existing file. */
export function writeKeyFile(path: string, key: AgentKey): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const pem = String(key.privateKey.export({ format: 'pem', type: 'pkcs8' }));
  let fd: number;
  try {
    fd = openSync(path, 'wx', 0o600);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const reason =
      code === 'EEXIST' ? 'it already exists (remove it first, or choose another --out)' : String(code);
    throw new KeyFileError(`cannot write key file ${path}: ${reason}`, error);
  }
  try {
    writeSync(fd, pem);
  } finally {
    closeSync(fd);
  }
}

/** Loads an ed25519 private key, refusing files that other users can read or write. */
export function loadKeyFile(path: string): AgentKey {
  let mode: number;
  try {
    mode = statSync(path).mode;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT')
      throw new KeyFileError(`no key file at ${path}; make one with: postern keygen --out ${path}`, error);
    throw new KeyFileError(`cannot read key file ${path}: ${code}`, error);
  }
  if ((mode & 0o077) !== 0) {
    const octal = (mode & 0o777).toString(8).padStart(4, '0');
    throw new KeyFileError(
      `key file ${path} is accessible by other users (mode ${octal}); run: chmod 600 ${path}`,
    );
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(readFileSync(path));
  } catch (error) {
    throw new KeyFileError(`key file ${path} is not a PEM private key`, error);
  }
  if (privateKey.asymmetricKeyType !== 'ed25519') {
    throw new KeyFileError(
      `key file ${path} holds a ${privateKey.asymmetricKeyType} key; Postern needs ed25519 (postern keygen)`,
    );
  }
  return { privateKey, publicKey: createPublicKey(privateKey) };
}

/** Loads the key at `path`, creating it first when it does not exist. Says whether it was created. */
export function loadOrCreateKeyFile(path: string): { key: AgentKey; created: boolean } {
  try {
    statSync(path);
  } catch {
    const key = generateAgentKey();
    writeKeyFile(path, key);
    return { key, created: true };
  }
  return { key: loadKeyFile(path), created: false };
}
