import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { curl, curlResponse } from './helpers/curl.js';
import { type Origin, startOrigin } from './helpers/origin.js';
import { startTunnel, type Tunnel } from './helpers/tunnel.js';

describe('HTTP through the tunnel with curl', () => {
  let origin: Origin;
  let tunnel: Tunnel;
  before(async () => {
    origin = await startOrigin();
    tunnel = await startTunnel(origin.url);
  });
  after(async () => {
    await tunnel.close();
    await origin.close();
  });

  const hostUrl = (path: string): string => `${tunnel.service.url.replace(/\/$/, '')}${path}`;
  const pathUrl = (path: string): string => `${tunnel.relayUrl}/${tunnel.service.label}${path}`;

  for (const [routing, url] of [
    ['Host label', hostUrl],
    ['path prefix', pathUrl],
  ] as const) {
    for (const method of ['GET', 'POST', 'PUT', 'DELETE']) {
      test(`${method} by ${routing}`, async () => {
        const body =
          method === 'GET' || method === 'DELETE' ? [] : ['--data-binary', `payload for ${method}`];
        const res = await curlResponse(['-X', method, ...body, url('/echo?q=1')]);
        assert.equal(res.status, 200);
        const echo = JSON.parse(res.body);
        assert.equal(echo.method, method);
        assert.equal(echo.url, '/echo?q=1', 'the path reaches the target without any prefix');
        if (body.length > 0) {
          assert.equal(echo.sha256, createHash('sha256').update(`payload for ${method}`).digest('hex'));
        }
      });
    }
    test(`HEAD by ${routing}`, async () => {
      const res = await curlResponse(['-I', url('/echo')]);
      assert.equal(res.status, 200);
      assert.equal(res.headers['x-echo'], 'yes');
      assert.equal(res.body, '');
    });
  }

  test('Host is kept and X-Forwarded-*/Forwarded are added; hop-by-hop headers are not forwarded', async () => {
    const res = await curlResponse([
      '-H',
      'X-Forwarded-For: 6.6.6.6',
      '-H',
      'Connection: keep-alive, x-private',
      '-H',
      'X-Private: secret',
      '-H',
      'Keep-Alive: timeout=5',
      '-H',
      'Postern-Service: other',
      hostUrl('/echo'),
    ]);
    const headers = JSON.parse(res.body).headers as Record<string, string>;
    assert.equal(headers.host, new URL(tunnel.service.url).host);
    assert.equal(headers['x-forwarded-for'], '127.0.0.1', 'an untrusted client cannot forge X-Forwarded-For');
    assert.equal(headers['x-forwarded-proto'], 'http');
    assert.equal(headers['x-forwarded-host'], new URL(tunnel.service.url).host);
    assert.match(headers.forwarded ?? '', /^for=127\.0\.0\.1;host=".+";proto=http$/);
    assert.equal(headers['x-private'], undefined, 'headers named in Connection are hop-by-hop');
    assert.equal(headers['keep-alive'], undefined);
    assert.equal(headers['postern-service'], undefined, "a visitor cannot set Postern's own headers");
  });

  test('a request with 300 headers reaches the target whole (h2 allows more than its default 128 pairs)', async () => {
    const many = Array.from({ length: 300 }, (_, i) => ['-H', `x-many-${i}: ${i}`]).flat();
    const response = await curlResponse([...many, hostUrl('/echo')]);
    assert.equal(response.status, 200);
    const seen = (JSON.parse(response.body) as { headers: Record<string, string> }).headers;
    assert.equal(Object.keys(seen).filter((name) => name.startsWith('x-many-')).length, 300);
    assert.equal(seen['x-many-299'], '299');
  });

  test('path routing adds X-Forwarded-Prefix', async () => {
    const res = await curlResponse([pathUrl('/echo')]);
    assert.equal(JSON.parse(res.body).headers['x-forwarded-prefix'], `/${tunnel.service.label}`);
  });

  test('response trailers reach an HTTP/1.1 visitor', async () => {
    const res = await curl(['--raw', '-i', hostUrl('/trailers')]);
    assert.match(res.stdout, /transfer-encoding: chunked/i);
    assert.match(res.stdout, /part one\n/);
    assert.match(res.stdout, /x-checksum: abc123/i);
  });

  test('a chunked request body reaches the target whole', async () => {
    const res = await curlResponse([
      '-H',
      'Transfer-Encoding: chunked',
      '--data-binary',
      'chunked body',
      hostUrl('/echo'),
    ]);
    const echo = JSON.parse(res.body);
    assert.equal(echo.size, 'chunked body'.length);
    assert.equal(echo.sha256, createHash('sha256').update('chunked body').digest('hex'));
  });

  test('Expect: 100-continue gets 100 from the target before the body is sent', async () => {
    const res = await curl([
      '-v',
      '-H',
      'Expect: 100-continue',
      '--data-binary',
      'x'.repeat(2048),
      hostUrl('/echo'),
    ]);
    assert.equal(res.exitCode, 0);
    assert.match(res.stderr, /< HTTP\/1.1 100 Continue/);
    assert.equal(JSON.parse(res.stdout).size, 2048);
  });

  test('keep-alive: several requests on one visitor connection', async () => {
    const res = await curl(['-v', hostUrl('/echo?a'), hostUrl('/echo?b'), hostUrl('/echo?c')]);
    assert.equal(res.exitCode, 0);
    assert.match(res.stderr, /Re-using existing connection|Reusing existing/);
    assert.equal(res.stdout.match(/"method":"GET"/g)?.length, 3);
  });

  test('large request headers within the limit pass; over the limit get 431', async () => {
    const ok = await curlResponse(['-H', `X-Big: ${'a'.repeat(8000)}`, hostUrl('/echo')]);
    assert.equal(ok.status, 200);
    assert.equal(JSON.parse(ok.body).headers['x-big'].length, 8000);
    const tooBig = await curlResponse(['-H', `X-Big: ${'a'.repeat(20_000)}`, hostUrl('/echo')]);
    assert.equal(tooBig.status, 431);
  });
});
