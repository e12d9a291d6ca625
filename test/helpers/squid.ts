import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, requireBinary, startDaemon } from './binaries.js';

export interface Squid {
  port: number;
  /** squid's access log so far: one line per request, with its status (TCP_TUNNEL/200, TCP_DENIED/407…). */
  accessLog(): string;
  /**
   * Sets a user's password in squid's htpasswd file (its helper rereads the file on change). squid
   * caches credentials it accepted for credentialsttl (2 h), so a test that changes a password
   * uses a user no other test has logged in with.
   */
  setPassword(user: string, password: string): void;
  stop(): Promise<void>;
}

const AUTH_HELPER = '/usr/lib/squid/basic_ncsa_auth';

/**
 * A real squid on loopback that requires Basic proxy auth (`users`: name → password, checked by
 * squid's own ncsa helper against an htpasswd file) and allows CONNECT only to `connectPort`.
 */
export async function startSquid(options: {
  users: Record<string, string>;
  connectPort: number;
}): Promise<Squid> {
  const binary = requireBinary('squid', 'squid');
  if (!existsSync(AUTH_HELPER)) throw new Error(`${AUTH_HELPER} is missing: apt-get install squid`);
  const dir = mkdtempSync(join(tmpdir(), 'postern-squid-'));
  // squid started as root runs as 'proxy', which must be able to write its logs and pid here.
  chmodSync(dir, 0o777);
  const port = await freePort();
  const users = { ...options.users };
  const writePasswords = (): void => {
    const lines = Object.entries(users).map(
      ([user, password]) =>
        `${user}:${execFileSync('openssl', ['passwd', '-apr1', password]).toString().trim()}\n`,
    );
    writeFileSync(join(dir, 'passwd'), lines.join(''), { mode: 0o644 });
    // The helper reloads the file when its mtime (whole seconds) changes: make every write count.
    const mtime = Math.floor(Date.now() / 1000) + 2 * ++generation;
    utimesSync(join(dir, 'passwd'), mtime, mtime);
  };
  let generation = 0;
  writePasswords();
  const setPassword = (user: string, password: string): void => {
    users[user] = password;
    writePasswords();
  };
  const lines = [
    `http_port 127.0.0.1:${port}`,
    `pid_filename ${join(dir, 'squid.pid')}`,
    `cache_log ${join(dir, 'cache.log')}`,
    `access_log stdio:${join(dir, 'access.log')}`,
    `coredump_dir ${dir}`,
    'cache deny all',
    'cache_mem 8 MB',
    'shutdown_lifetime 0 seconds',
    `auth_param basic program ${AUTH_HELPER} ${join(dir, 'passwd')}`,
    'auth_param basic children 2 startup=1 idle=1',
    'auth_param basic realm postern-test',
    'acl authed proxy_auth REQUIRED',
    `acl relay_port port ${options.connectPort}`,
    'acl CONNECT method CONNECT',
    'http_access deny CONNECT !relay_port',
    'http_access allow localhost authed',
    'http_access deny all',
  ];
  writeFileSync(join(dir, 'squid.conf'), `${lines.join('\n')}\n`);
  const log = (name: string): string => {
    try {
      return readFileSync(join(dir, name), 'utf8');
    } catch {
      return '';
    }
  };
  const daemon = await startDaemon(binary, ['-N', '-f', join(dir, 'squid.conf')], port, {
    whyExited: () => log('cache.log').slice(-500),
    timeoutMs: 20_000,
  });
  return {
    port,
    accessLog: () => log('access.log'),
    setPassword,
    stop: async () => {
      await daemon.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
