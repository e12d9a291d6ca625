import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, requireBinary, waitForPort } from './binaries.js';

/** test/fixtures, from dist/test/helpers. */
const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'test', 'fixtures');

export interface Nginx {
  port: number;
  tokenPort: number;
  token: string;
  /** A site serving its own `/` with the relay under `/tunnel/` (at `subPathRelayPort`). */
  subPathPort: number;
  stop(): Promise<void>;
}

/**
 * Real nginx in front of a relay on `relayPort`, configured from test/fixtures/nginx.conf.template;
 * `subPathRelayPort` is a relay with --base-path /tunnel for the sub-path site (default: relayPort).
 */
export async function startNginx(relayPort: number, subPathRelayPort = relayPort): Promise<Nginx> {
  const binary = requireBinary('nginx', 'nginx-light');
  const prefix = mkdtempSync(join(tmpdir(), 'postern-nginx-'));
  const port = await freePort();
  const tokenPort = await freePort();
  const subPathPort = await freePort();
  const token = 'sekrit-token';
  const values: Record<string, string> = {
    PREFIX: prefix,
    RELAY_PORT: String(relayPort),
    LISTEN_PORT: String(port),
    TOKEN_PORT: String(tokenPort),
    TOKEN: token,
    SUBPATH_PORT: String(subPathPort),
    SUBPATH_RELAY_PORT: String(subPathRelayPort),
  };
  const config = readFileSync(join(FIXTURES, 'nginx.conf.template'), 'utf8').replace(
    /\$\{([A-Z_]+)\}/g,
    (_m, name: string) => values[name] ?? '',
  );
  // As root, nginx's workers would switch to "nobody", who cannot write the temporary prefix.
  const userLine = process.getuid?.() === 0 ? 'user root;\n' : '';
  writeFileSync(join(prefix, 'nginx.conf'), userLine + config);
  const child: ChildProcess = spawn(
    binary,
    ['-p', prefix, '-c', join(prefix, 'nginx.conf'), '-g', 'daemon off;'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    await Promise.race([
      waitForPort(port),
      exited.then(() => Promise.reject(new Error(`nginx exited: ${stderr}`))),
    ]);
    await waitForPort(tokenPort);
    await waitForPort(subPathPort);
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  return {
    port,
    tokenPort,
    token,
    subPathPort,
    stop: async () => {
      child.kill('SIGQUIT');
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 3000))]);
      child.kill('SIGKILL');
      rmSync(prefix, { recursive: true, force: true });
    },
  };
}
