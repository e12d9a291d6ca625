import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { classifyRequest, type RequestHead } from '../src/relay/routing.js';

const LABEL = 'a'.repeat(52);
const plain = { domain: 'localhost', basePath: '' };
const based = { domain: 'tunnel.example.com', basePath: '/tunnel' };

function head(url: string, host: string | undefined, more: Partial<RequestHead> = {}): RequestHead {
  return { url, host, rawHeaders: host === undefined ? [] : ['Host', host], upgrade: false, ...more };
}

describe('which way a request goes (relay/routing.ts)', () => {
  test('a label in the Host names the tunnel; the path is passed on whole', () => {
    assert.deepEqual(classifyRequest(head('/a/b?c=1', `${LABEL}.localhost:8080`), plain), {
      kind: 'tunnel',
      label: LABEL,
      path: '/a/b?c=1',
      prefix: '',
    });
    // Host names are case-insensitive; labels are lower-case base32.
    assert.equal(classifyRequest(head('/', `${LABEL.toUpperCase()}.LOCALHOST`), plain).kind, 'tunnel');
  });

  test('without one, the first path segment names it and is stripped, base path included', () => {
    assert.deepEqual(classifyRequest(head(`/${LABEL}/x?y`, 'localhost'), plain), {
      kind: 'tunnel',
      label: LABEL,
      path: '/x?y',
      prefix: `/${LABEL}`,
    });
    assert.deepEqual(classifyRequest(head(`/tunnel/${LABEL}?q`, 'relay.example.com'), based), {
      kind: 'tunnel',
      label: LABEL,
      path: '/?q',
      prefix: `/tunnel/${LABEL}`,
    });
  });

  test('the agent endpoint takes upgrades only; the node endpoint is one only for upgrades', () => {
    assert.deepEqual(classifyRequest(head('/_postern/agent', 'localhost', { upgrade: true }), plain), {
      kind: 'agent-endpoint',
    });
    assert.deepEqual(classifyRequest(head('/tunnel/_postern/agent?v=2', 'x', { upgrade: true }), based), {
      kind: 'agent-endpoint',
    });
    assert.deepEqual(classifyRequest(head('/_postern/agent', 'localhost'), plain), {
      kind: 'refused',
      error: 'bad_request',
      message: '/_postern/agent is the agent endpoint; it needs an HTTP Upgrade',
    });
    assert.deepEqual(classifyRequest(head('/_postern/node', 'localhost', { upgrade: true }), plain), {
      kind: 'node-endpoint',
    });
    assert.equal(classifyRequest(head('/_postern/node', 'localhost'), plain).kind, 'refused');
    // Outside the base path the endpoints do not exist.
    assert.equal(classifyRequest(head('/_postern/agent', 'x', { upgrade: true }), based).kind, 'refused');
  });

  test('refusals say why: two Hosts, outside the base path, no tunnel named, not a label', () => {
    const refusal = (h: RequestHead, relay = plain): unknown => {
      const destination = classifyRequest(h, relay);
      return destination.kind === 'refused' ? [destination.error, destination.message] : destination;
    };
    assert.deepEqual(
      refusal(
        head('/', `${LABEL}.localhost`, { rawHeaders: ['Host', `${LABEL}.localhost`, 'host', 'other'] }),
      ),
      ['bad_request', 'more than one Host header'],
    );
    assert.deepEqual(refusal(head(`/${LABEL}/`, 'x'), based), [
      'tunnel_not_found',
      'this relay serves only under /tunnel/',
    ]);
    // '/tunnelx' only looks like it is under '/tunnel'.
    assert.equal(classifyRequest(head('/tunnelx', 'x'), based).kind, 'refused');
    assert.deepEqual(refusal(head('/', 'localhost')), [
      'tunnel_not_found',
      'no tunnel named in the Host (<label>.localhost) or the path (/<label>/…)',
    ]);
    assert.deepEqual(refusal(head('/', 'a.shop.localhost')), [
      'tunnel_not_found',
      '"a.shop" is not a tunnel label',
    ]);
    // A name a service chose (--subdomain) is routed by the Host like a key-derived label.
    assert.deepEqual(classifyRequest(head('/x', 'shop.localhost'), plain), {
      kind: 'tunnel',
      label: 'shop',
      path: '/x',
      prefix: '',
    });
    assert.deepEqual(refusal(head('*', 'localhost')), ['tunnel_not_found', 'request target must be a path']);
    assert.deepEqual(refusal(head('http://evil.example/', 'localhost')), [
      'tunnel_not_found',
      'request target must be a path',
    ]);
    // No Host at all (HTTP/1.0): only the path can name the tunnel.
    assert.equal(classifyRequest(head(`/${LABEL}/`, undefined), plain).kind, 'tunnel');
  });
});
