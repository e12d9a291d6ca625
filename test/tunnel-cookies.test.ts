import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type Agent, createAgent } from '../src/agent/agent.js';
import { generateAgentKey } from '../src/keys/key-file.js';
import { createRelay, type Relay } from '../src/relay/relay.js';
import { curlResponse } from './helpers/curl.js';

function setCookies(lines: string[]): string[] {
  return lines.filter((l) => /^set-cookie:/i.test(l)).map((l) => l.replace(/^set-cookie:\s*/i, ''));
}

/**
 * One tunnel's target must not set cookies for the others: they are all subdomains of the relay's
 * domain, one site to a browser (and to curl), so `Domain=<relay domain>` would reach every tunnel.
 */
describe('cookies stay with the tunnel that set them', () => {
  let target: Server;
  let relay: Relay;
  let agent: Agent;
  let port: number;
  const labels: Record<string, string> = {};
  const dir = mkdtempSync(join(tmpdir(), 'postern-cookies-'));

  before(async () => {
    target = createServer((req, res) => {
      if (req.url === '/set') {
        res.setHeader('set-cookie', [
          'wide=1; Domain=tunnel.test; Path=/',
          'dot=2; Path=/; domain=.TUNNEL.test; HttpOnly',
          'parent=3; Domain=test',
          `own=4; Domain=${req.headers.host?.split(':')[0]}`,
          'plain=5; Path=/',
        ]);
      }
      if (req.url === '/paths') {
        res.setHeader('set-cookie', ['root=1; Path=/', 'api=2; Path=/api; HttpOnly', 'bare=3']);
        res.setHeader('location', '/login?next=%2F');
        res.statusCode = 302;
      }
      if (req.url === '/absolute') {
        res.setHeader('location', `http://${req.headers.host}/next`);
        res.statusCode = 301;
      }
      if (req.url === '/elsewhere') {
        res.setHeader('location', 'https://example.com/');
        res.statusCode = 302;
      }
      res.end(req.headers.cookie ?? '');
    });
    await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
    const origin = `http://127.0.0.1:${(target.address() as AddressInfo).port}`;
    relay = await createRelay({ listen: ['tcp://127.0.0.1:0'], domain: 'tunnel.test' });
    port = Number((relay.addresses[0] as string).split(':').pop());
    agent = createAgent({
      relay: relay.addresses[0] as string,
      key: generateAgentKey(),
      services: [
        { name: 'a', target: origin },
        { name: 'b', target: origin },
      ],
    });
    for (const service of await agent.ready) labels[service.name] = service.label;
  });
  after(async () => {
    await agent?.close();
    await relay?.close();
    target?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** curl with one cookie jar, as a browser would keep it, every name sent to the relay. */
  const browse = (url: string): ReturnType<typeof curlResponse> => {
    const jar = join(dir, 'jar');
    return curlResponse(['-c', jar, '-b', jar, '--connect-to', `::127.0.0.1:${port}`, url]);
  };

  test('a Domain that covers other tunnels is removed (host-only); the tunnel keeps its own cookies', async () => {
    const hostA = `${labels.a}.tunnel.test:${port}`;
    const set = await browse(`http://${hostA}/set`);
    assert.equal(set.status, 200);
    const cookies = setCookies(set.headerLines);
    assert.deepEqual(cookies, [
      'wide=1; Path=/',
      'dot=2; Path=/; HttpOnly',
      'parent=3',
      `own=4; Domain=${labels.a}.tunnel.test`,
      'plain=5; Path=/',
    ]);
    const other = await browse(`http://${labels.b}.tunnel.test:${port}/`);
    assert.equal(other.body, '', 'tunnel b receives none of a’s cookies');
    const same = await browse(`http://${hostA}/`);
    assert.deepEqual(same.body.split('; ').sort(), ['dot=2', 'own=4', 'parent=3', 'plain=5', 'wide=1']);
  });

  test('a tunnel reached by path keeps its redirects and cookie paths under its prefix (as proxy_redirect, proxy_cookie_path)', async () => {
    const base = `http://tunnel.test:${port}/${labels.a}`;
    const paths = await browse(`${base}/paths`);
    assert.equal(paths.status, 302);
    assert.equal(paths.headers.location, `/${labels.a}/login?next=%2F`);
    assert.deepEqual(setCookies(paths.headerLines), [
      `root=1; Path=/${labels.a}/`,
      `api=2; Path=/${labels.a}/api; HttpOnly`,
      'bare=3',
    ]);
    assert.equal(
      (await browse(`${base}/absolute`)).headers.location,
      `http://tunnel.test:${port}/${labels.a}/next`,
    );
    assert.equal((await browse(`${base}/elsewhere`)).headers.location, 'https://example.com/');
    // The cookie of tunnel a's root stays with a: tunnel b, by path on the same host, does not get it.
    assert.doesNotMatch((await browse(`http://tunnel.test:${port}/${labels.b}/`)).body, /root=1/);
    assert.match((await browse(`${base}/`)).body, /root=1/);
    // By Host nothing is rewritten: the tunnel owns its whole host.
    const byHost = await browse(`http://${labels.a}.tunnel.test:${port}/paths`);
    assert.equal(byHost.headers.location, '/login?next=%2F');
    assert.match(setCookies(byHost.headerLines)[0] ?? '', /^root=1; Path=\/$/);
  });

  test('a tunnel reached by path (a host all such tunnels share) sets no Domain at all', async () => {
    const set = await browse(`http://tunnel.test:${port}/${labels.a}/set`);
    const cookies = setCookies(set.headerLines);
    assert.ok(cookies.length === 5 && cookies.every((c) => !/domain=/i.test(c)), cookies.join(' | '));
  });
});
