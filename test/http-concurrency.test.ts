import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { localhostLookup } from '../src/transport/localhost-lookup.js';
import { type Origin, startOrigin } from './helpers/origin.js';
import { startTunnel, type Tunnel } from './helpers/tunnel.js';

function post(url: string, body: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', lookup: localhostLookup, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        text += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('concurrent requests', () => {
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

  test('200 concurrent requests, each answered correctly and matched to its own request', async () => {
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        post(`${tunnel.service.url}echo?i=${i}`, `body-${i}-${'x'.repeat(i * 37)}`),
      ),
    );
    results.forEach((res, i) => {
      assert.equal(res.status, 200);
      const echo = JSON.parse(res.body);
      assert.equal(echo.url, `/echo?i=${i}`);
      assert.equal(echo.size, `body-${i}-`.length + i * 37);
    });
  });
});
