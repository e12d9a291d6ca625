import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { type AddressInfo, connect, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import { CaptureStore } from '../src/inspector/capture-store.js';
import { curl, curlResponse } from './helpers/curl.js';
import { startTunnel, type Tunnel } from './helpers/tunnel.js';
import { until } from './helpers/wait.js';

// Requests without a body take the agent's own HTTP/1.1 client (src/agent/pooled-request.ts), those
// with one take http.request: both are checked against the same target.
describe('requests without a body (the agent’s own client)', () => {
  let target: Server;
  let tunnel: Tunnel;
  const captures = new CaptureStore();
  const peers = new Set<string>();
  const closedEarly: string[] = [];
  const routes: Record<string, (req: IncomingMessage, res: ServerResponse) => void> = {
    '/hints': (_req, res) => {
      res.writeEarlyHints({ link: '</style.css>; rel=preload; as=style' });
      res.end('after the hints');
    },
    '/cookies': (_req, res) => {
      res.setHeader('Set-Cookie', ['a=1', 'b=2']);
      res.end('two cookies');
    },
    '/cut': (_req, res) => {
      res.writeHead(200, { 'content-length': '100000' });
      res.write(Buffer.alloc(1000, 'x'));
      setTimeout(() => res.socket?.destroy(), 50);
    },
    '/slow': (req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      const timer = setInterval(() => res.write('tick\n'), 20);
      res.once('close', () => {
        clearInterval(timer);
        if (!res.writableFinished) closedEarly.push(req.url ?? '');
      });
    },
    '/upload': (req, res) => {
      let size = 0;
      req.on('data', (chunk: Buffer) => {
        size += chunk.length;
      });
      req.on('end', () => res.end(`got ${size} bytes`));
    },
  };

  before(async () => {
    target = createServer((req, res) => {
      peers.add(`${(req.socket as Socket).remotePort}`);
      const route = routes[new URL(req.url ?? '/', 'http://x').pathname];
      if (route === undefined) res.end(`${req.method} ${req.url} host=${req.headers.host}`);
      else route(req, res);
    });
    await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
    tunnel = await startTunnel(`http://127.0.0.1:${(target.address() as AddressInfo).port}`, {
      agent: { observer: captures },
    });
  });
  after(async () => {
    await tunnel.close();
    target.closeAllConnections();
    target.close();
  });
  const url = (path: string): string => `${tunnel.service.url.replace(/\/$/, '')}${path}`;

  test('a 103 Early Hints before the answer is not passed on; the answer is', async () => {
    const res = await curlResponse([url('/hints')]);
    assert.equal(res.status, 200);
    assert.equal(res.body, 'after the hints');
  });

  test('repeated response headers arrive as separate fields', async () => {
    const res = await curl(['-i', url('/cookies')]);
    assert.equal(res.exitCode, 0);
    assert.match(res.stdout, /\r\nset-cookie: a=1\r\n/i);
    assert.match(res.stdout, /\r\nset-cookie: b=2\r\n/i);
    // The inspector keeps the target's head as it came: names as written, repeats in order.
    const capture = captures.list().find((c) => c.path === '/cookies');
    assert.equal(capture?.status, 200);
    const cookies = capture?.responseHeaders.filter(([name]) => name.toLowerCase() === 'set-cookie');
    assert.deepEqual(cookies, [
      ['Set-Cookie', 'a=1'],
      ['Set-Cookie', 'b=2'],
    ]);
  });

  test('a target that dies mid-response gives the visitor a cut transfer, never a clean end', async () => {
    const res = await curl(['-o', '/dev/null', url('/cut')]);
    // 18: "transfer closed with outstanding read data remaining"; 56: connection reset.
    assert.ok([18, 56].includes(res.exitCode), `curl exit ${res.exitCode}: ${res.stderr}`);
  });

  test('a visitor who leaves mid-response closes the target request', async () => {
    const res = await curl(['--max-time', '0.3', '-o', '/dev/null', url('/slow')]);
    assert.equal(res.exitCode, 28, 'curl timed out, as asked');
    await until(() => closedEarly.includes('/slow'), 'the target to see its response cut');
  });

  test('GETs reuse pooled target connections; GET and POST both reach the target', async () => {
    peers.clear();
    for (let i = 0; i < 20; i++) {
      const res = await curlResponse([url(`/plain?i=${i}`)]);
      assert.equal(res.status, 200);
      assert.match(res.body, /^GET \/plain\?i=\d+ host=/);
    }
    assert.ok(peers.size <= 2, `20 sequential GETs used ${peers.size} target connections`);
    const upload = await curlResponse(['--data-binary', 'x'.repeat(5000), url('/upload')]);
    assert.equal(upload.body, 'got 5000 bytes');
  });

  test('the Host the visitor sent reaches the target (preserve)', async () => {
    const res = await curlResponse([url('/host')]);
    assert.match(res.body, new RegExp(`host=${tunnel.service.label}\\.localhost:${tunnel.port}$`));
  });
});

describe('a target that never accepts the connection', () => {
  // A listening socket with a backlog of 0 that never accepts: once one connection waits in its
  // queue, the kernel drops further SYNs, so connecting hangs: a real connect timeout on loopback.
  let listener: ChildProcess;
  let queued: Socket;
  let tunnel: Tunnel;
  before(async () => {
    listener = spawn('python3', [
      '-c',
      "import socket,time\ns=socket.socket()\ns.bind(('127.0.0.1',0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(120)",
    ]);
    const [line] = (await once(
      createInterface({ input: listener.stdout as NodeJS.ReadableStream }),
      'line',
    )) as [string];
    const port = Number(line);
    queued = connect(port, '127.0.0.1');
    queued.on('error', () => {});
    await once(queued, 'connect');
    tunnel = await startTunnel(`http://127.0.0.1:${port}`, { agent: { targetConnectTimeoutMs: 500 } });
  });
  after(async () => {
    await tunnel.close();
    queued.destroy();
    listener.kill();
  });

  for (const [kind, args] of [
    ['a GET (the agent’s client)', []],
    ['a POST (http.request)', ['--data-binary', 'body']],
  ] as const) {
    test(`${kind} gets 502 naming ETIMEDOUT after the connect timeout`, async () => {
      const started = Date.now();
      const res = await curlResponse([...args, tunnel.service.url]);
      assert.equal(res.status, 502);
      assert.equal(res.headers['postern-error'], 'target_unreachable');
      assert.match(res.body, /could not reach http:\/\/127\.0\.0\.1:\d+ \(ETIMEDOUT\)/);
      assert.ok(Date.now() - started >= 450, `answered after ${Date.now() - started} ms`);
    });
  }
});
