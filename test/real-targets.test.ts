import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { freePort, requireBinary, waitForPort } from './helpers/binaries.js';
import { curl, curlResponse } from './helpers/curl.js';
import { startTunnel, type Tunnel } from './helpers/tunnel.js';

/**
 * The agent's own HTTP/1.1 client against servers nobody here wrote, each with its own framing
 * habits: nginx (keep-alive, chunked gzip made on the fly, ranges, 304) and Python's http.server
 * (HTTP/1.0, a connection per request). curl is the visitor.
 */
const BIG = randomBytes(3 * 1024 * 1024 + 17);
const TEXT = 'a line of text that compresses well\n'.repeat(2000);
const sha256 = (data: Buffer | string): string => createHash('sha256').update(data).digest('hex');

function serveDirectory(): string {
  const dir = mkdtempSync(join(tmpdir(), 'postern-real-target-'));
  writeFileSync(join(dir, 'big.bin'), BIG);
  writeFileSync(join(dir, 'text.txt'), TEXT);
  return dir;
}

/**
 * Starts `command` in a process group of its own and waits for `port`; kills the group if it does
 * not come up. nginx forks a worker that would outlive a killed master (and keep this file's
 * stderr pipe, so the test process never exits): stopServer() kills the whole group.
 */
async function startServer(command: string, args: string[], port: number): Promise<ChildProcess> {
  const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<never>((_resolve, reject) =>
    child.once('exit', (code) => reject(new Error(`${command} exited (${code}): ${stderr}`))),
  );
  try {
    await Promise.race([waitForPort(port), exited]);
  } catch (error) {
    stopServer(child);
    throw error;
  }
  exited.catch(() => {});
  return child;
}

function stopServer(child: ChildProcess | undefined): void {
  if (child?.pid === undefined) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
  child.stderr?.destroy();
}

describe('real targets through the agent’s client', () => {
  let dir: string;
  let nginx: ChildProcess | undefined;
  let python: ChildProcess | undefined;
  let viaNginx: Tunnel | undefined;
  let viaPython: Tunnel | undefined;

  before(async () => {
    dir = serveDirectory();
    const nginxPort = await freePort();
    const prefix = join(dir, 'nginx');
    rmSync(prefix, { recursive: true, force: true });
    writeFileSync(
      join(dir, 'nginx.conf'),
      `${process.getuid?.() === 0 ? 'user root;\n' : ''}worker_processes 1;
error_log stderr error;
pid ${join(dir, 'nginx.pid')};
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path ${dir}; proxy_temp_path ${dir}; fastcgi_temp_path ${dir};
  uwsgi_temp_path ${dir}; scgi_temp_path ${dir};
  types { text/plain txt; application/octet-stream bin; }
  gzip on; gzip_min_length 1; gzip_types text/plain;
  server {
    listen 127.0.0.1:${nginxPort};
    root ${dir};
    location = /moved { return 301 /text.txt; }
  }
}
`,
    );
    nginx = await startServer(
      requireBinary('nginx', 'nginx-light'),
      ['-p', dir, '-c', join(dir, 'nginx.conf'), '-g', 'daemon off;'],
      nginxPort,
    );
    viaNginx = await startTunnel(`http://127.0.0.1:${nginxPort}`);
    const pythonPort = await freePort();
    python = await startServer(
      requireBinary('python3', 'python3'),
      ['-m', 'http.server', '--bind', '127.0.0.1', '--directory', dir, String(pythonPort)],
      pythonPort,
    );
    viaPython = await startTunnel(`http://127.0.0.1:${pythonPort}`);
  });
  after(async () => {
    await viaNginx?.close();
    await viaPython?.close();
    stopServer(nginx);
    stopServer(python);
    rmSync(dir, { recursive: true, force: true });
  });
  const at = (tunnel: Tunnel | undefined, path: string): string =>
    `${(tunnel as Tunnel).service.url.replace(/\/$/, '')}${path}`;

  for (const [name, tunnel] of [
    ['nginx', () => viaNginx],
    ['python http.server', () => viaPython],
  ] as const) {
    test(`${name}: a 3 MiB file arrives whole, three times over; HEAD gives its length; a missing file is 404`, async () => {
      const file = join(dir, `download-${name.replace(/\W/g, '')}`);
      for (let i = 0; i < 3; i++) {
        const res = await curl(['-o', file, at(tunnel(), '/big.bin')]);
        assert.equal(res.exitCode, 0, res.stderr);
        assert.equal(sha256(readFileSync(file)), sha256(BIG));
      }
      const head = await curl(['-I', at(tunnel(), '/big.bin')], { timeoutMs: 10_000 });
      assert.equal(head.exitCode, 0, head.stderr);
      assert.match(head.stdout, new RegExp(`content-length: ${BIG.length}\\r\\n`, 'i'));
      assert.equal((await curlResponse([at(tunnel(), '/missing')])).status, 404);
    });
  }

  test('nginx: a gzip body nginx chunks as it compresses, a range, a 304 and a redirect', async () => {
    const gzip = await curlResponse(['--compressed', at(viaNginx, '/text.txt')]);
    assert.equal(gzip.headers['content-encoding'], 'gzip');
    assert.equal(gzip.body, TEXT);
    const file = join(dir, 'range');
    const range = await curl(['-r', '100-199', '-o', file, '-w', '%{http_code}', at(viaNginx, '/big.bin')]);
    assert.equal(range.stdout, '206');
    assert.deepEqual(readFileSync(file), BIG.subarray(100, 200));
    const modified = (await curlResponse([at(viaNginx, '/text.txt')])).headers['last-modified'] ?? '';
    const unchanged = await curlResponse(['-H', `If-Modified-Since: ${modified}`, at(viaNginx, '/text.txt')]);
    assert.equal(unchanged.status, 304);
    assert.equal(unchanged.body, '');
    const moved = await curlResponse([at(viaNginx, '/moved')]);
    assert.equal(moved.status, 301);
    assert.match(moved.headers.location ?? '', /\/text\.txt$/);
  });
});
