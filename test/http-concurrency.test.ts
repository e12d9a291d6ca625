import assert from 'node:assert/strict';
import { Agent, request } from 'node:http';
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
  let targetConnections = 0;
  before(async () => {
    origin = await startOrigin();
    origin.server.on('connection', () => targetConnections++);
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

  test('3 000 requests on keep-alive connections: all succeed, the agent keeps its sessions, target connections reused', async () => {
    // Resetting finished streams once made Node's HTTP/2 server take the relay for a rapid-reset
    // attacker and send GOAWAY after a few hundred requests; requests then waited and failed.
    let disconnects = 0;
    tunnel.agent.on('disconnected', () => disconnects++);
    const connectionsBefore = targetConnections;
    const keepAlive = new Agent({ keepAlive: true, maxSockets: 20 });
    let failures = 0;
    for (let batch = 0; batch < 150; batch++) {
      const results = await Promise.all(
        Array.from(
          { length: 20 },
          () =>
            new Promise<number>((resolve) => {
              request(`${tunnel.service.url}echo`, { agent: keepAlive, lookup: localhostLookup }, (res) => {
                res.resume();
                res.on('end', () => resolve(res.statusCode ?? 0));
              })
                .on('error', () => resolve(0))
                .end();
            }),
        ),
      );
      failures += results.filter((status) => status !== 200).length;
    }
    keepAlive.destroy();
    assert.equal(failures, 0);
    assert.equal(disconnects, 0, 'the agent kept its sessions');
    assert.equal(tunnel.relay.tunnels()[0]?.sessions, 2, 'both default sessions still up');
    assert.ok(
      targetConnections - connectionsBefore <= 100,
      `${targetConnections - connectionsBefore} new target connections for 3 000 requests`,
    );
  });
});
