import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { WebSocket } from 'ws';
import { createAgent } from '../src/agent/agent.js';
import { agentRelayAddress } from '../src/agent/relay-address.js';
import { formatConnectionString } from '../src/connection-string/index.js';
import { RegistrationRejectedError } from '../src/errors.js';
import { generateAgentKey } from '../src/keys/key-file.js';
import { createRelay, type Relay } from '../src/relay/relay.js';
import { connect } from '../src/transport/connect.js';
import { intoMessages } from '../src/transport/websocket-stream.js';
import { makeCertificates, type TestCertificates } from './helpers/certs.js';
import { curl, curlResponse } from './helpers/curl.js';
import { type EchoServer, startTcpEcho, startWebSocketEcho } from './helpers/echo.js';
import { type Origin, startOrigin } from './helpers/origin.js';
import { startTcpForwarder } from './helpers/tcp-forwarder.js';
import { readyWithin } from './helpers/tunnel.js';

describe('session transports: every way an agent can reach the relay carries every kind of tunnel', () => {
  let certs: TestCertificates;
  let origin: Origin;
  let echo: EchoServer;
  let wsTarget: EchoServer;
  let relay: Relay;
  let plainPort: number;
  let tlsPort: number;
  let socketPath: string;
  let v6Port: number;
  before(async () => {
    certs = makeCertificates();
    origin = await startOrigin();
    echo = await startTcpEcho();
    wsTarget = await startWebSocketEcho();
    socketPath = join(tmpdir(), `postern-relay-${process.pid}.sock`);
    relay = await createRelay({
      listen: [
        'tcp://127.0.0.1:0',
        'tcps://127.0.0.1:0',
        `unix://localhost:0?path=${socketPath}`,
        'tcp://[::1]:0',
      ],
      tlsCert: certs.cert,
      tlsKey: certs.key,
      domain: 'tunnel.test',
    });
    plainPort = Number((relay.addresses[0] as string).split(':').pop());
    tlsPort = Number((relay.addresses[1] as string).split(':').pop());
    v6Port = Number((relay.addresses[3] as string).split(':').pop());
  });
  after(async () => {
    await relay.close();
    await echo.close();
    await wsTarget.close();
    await origin.close();
    rmSync(certs.dir, { recursive: true, force: true });
  });

  const addresses = (): Record<string, string> => ({
    'tcp:// (raw upgrade)': `tcp://127.0.0.1:${plainPort}`,
    'ws://': `ws://127.0.0.1:${plainPort}`,
    'http:// (as ws://)': `http://127.0.0.1:${plainPort}`,
    'tcps:// with ca=': `tcps://localhost:${tlsPort}?ca=${certs.ca}`,
    'wss:// with ca=': `wss://localhost:${tlsPort}?ca=${certs.ca}`,
    'https:// (as wss://)': `https://localhost:${tlsPort}?ca=${certs.ca}`,
    'unix://': `unix://localhost:0?path=${socketPath}`,
    'ws://[::1]': `ws://[::1]:${v6Port}`,
  });

  for (const name of [
    'tcp:// (raw upgrade)',
    'ws://',
    'http:// (as ws://)',
    'tcps:// with ca=',
    'wss:// with ca=',
    'https:// (as wss://)',
    'unix://',
    'ws://[::1]',
  ]) {
    test(`${name}: HTTP (8 MiB up and down), WebSocket and preflight TCP, on two sessions`, async () => {
      const relayAddress = addresses()[name] as string;
      const agent = createAgent({
        relay: relayAddress,
        key: generateAgentKey(),
        services: [
          { target: origin.url },
          { name: 'ws', target: wsTarget.target },
          { name: 'echo', target: echo.target },
        ],
      });
      try {
        const connected = new Set<number>();
        agent.on('connected', (event: { connection: number }) => connected.add(event.connection));
        const services = await readyWithin(agent);
        // Path routing (/<label>/…) on the relay's plain port: no DNS needed for *.tunnel.test.
        const at = (n: string, scheme = 'http'): string =>
          `${scheme}://127.0.0.1:${plainPort}/${services.find((s) => s.name === n)?.label}`;

        const upload = randomBytes(8 << 20);
        const bodyFile = join(certs.dir, `upload-${process.pid}`);
        writeFileSync(bodyFile, upload);
        const up = await curlResponse(['--data-binary', `@${bodyFile}`, `${at('default')}/upload`]);
        assert.equal(up.status, 200);
        assert.deepEqual(JSON.parse(up.body), {
          size: upload.length,
          sha256: createHash('sha256').update(upload).digest('hex'),
        });
        const down = await curl([
          '-o',
          '/dev/null',
          '-w',
          '%{http_code} %{size_download}',
          `${at('default')}/bytes?n=${8 << 20}`,
        ]);
        assert.equal(down.stdout, `200 ${8 << 20}`);

        const ws = new WebSocket(`${at('ws', 'ws')}/`);
        await once(ws, 'open');
        const message = randomBytes(256 << 10);
        ws.send(message);
        const [echoed] = (await once(ws, 'message')) as [Buffer];
        assert.ok(echoed.equals(message));
        ws.close();

        const socket = await connect(`${at('echo', 'tcp')}?http_preflight=true`);
        socket.write('over the preflight');
        assert.equal(((await once(socket, 'data')) as [Buffer])[0].toString(), 'over the preflight');
        socket.destroy();

        assert.deepEqual([...connected].sort(), [0, 1]);
      } finally {
        await agent.close();
      }
    });
  }

  test('http:// and https:// relay addresses mean WebSocket sessions to <path>/_postern/agent', () => {
    const text = (s: string): string => formatConnectionString(agentRelayAddress(s));
    assert.equal(text('https://relay.example.com'), 'wss://relay.example.com:443/_postern/agent');
    assert.equal(text('http://relay.example.com/tunnel/'), 'ws://relay.example.com:80/tunnel/_postern/agent');
    assert.equal(
      text('tcps://relay.example.com:443'),
      'tcps://relay.example.com:443/_postern/agent?http_preflight=true',
    );
  });

  test('ws:// really is a WebSocket on the wire, tcp:// the raw postern-session upgrade', async () => {
    const forwarder = await startTcpForwarder(plainPort);
    try {
      for (const [scheme, upgrade] of [
        ['ws', 'websocket'],
        ['tcp', 'postern-session/3'],
      ] as const) {
        const agent = createAgent({
          relay: `${scheme}://127.0.0.1:${forwarder.port}`,
          key: generateAgentKey(),
          services: [{ target: origin.url }],
          connections: 1,
        });
        await readyWithin(agent);
        await agent.close();
        const head = forwarder.firstChunks.pop() ?? '';
        assert.match(head, /^GET \/_postern\/agent HTTP\/1\.1\r\n/);
        assert.match(head, new RegExp(`\r\nupgrade: ${upgrade.replace('/', '\\/')}\r\n`, 'i'));
      }
    } finally {
      await forwarder.close();
    }
  });

  test('wss:// without the CA: the agent names the certificate problem and keeps retrying', async () => {
    const agent = createAgent({
      relay: `wss://localhost:${tlsPort}`,
      key: generateAgentKey(),
      services: [{ target: origin.url }],
      reconnectInitialMs: 20,
    });
    try {
      const event = await new Promise<{ reason: string }>((resolve) => agent.once('disconnected', resolve));
      assert.match(
        event.reason,
        /cannot connect to wss:\/\/localhost:\d+\/_postern\/agent: (UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)/,
      );
    } finally {
      await agent.close();
    }
  });

  test("a refusal over ws:// is the relay's own verdict, fatal like over the raw upgrade", async () => {
    const strict = await createRelay({ listen: ['tcp://127.0.0.1:0'], admit: () => 'key not on the list' });
    const agent = createAgent({
      relay: `ws://${(strict.addresses[0] as string).slice('tcp://'.length)}`,
      key: generateAgentKey(),
      services: [{ target: origin.url }],
    });
    try {
      const error = await agent.ready.then(
        () => assert.fail('registered'),
        (e: unknown) => e,
      );
      assert.ok(error instanceof RegistrationRejectedError);
      assert.match(error.message, /403.*key not on the list/);
    } finally {
      await agent.close();
      await strict.close();
    }
  });
});

test('WebSocket session framing: any batch becomes messages of at most 256 KiB whose bytes are the batch, in order', () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 0, max: 700_000 }), { maxLength: 12 }),
      fc.integer({ min: 0, max: 255 }),
      (sizes, seed) => {
        const buffers = sizes.map((size, i) => Buffer.alloc(size, (seed + i) % 256));
        const messages = intoMessages(buffers);
        assert.ok(messages.every((m) => m.length > 0 && m.length <= 256 << 10));
        assert.ok(Buffer.concat(messages).equals(Buffer.concat(buffers)));
      },
    ),
    { numRuns: 60 },
  );
});
