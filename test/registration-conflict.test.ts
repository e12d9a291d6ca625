import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type Agent, createAgent } from '../src/agent/agent.js';
import type { ServiceOptions } from '../src/agent/options.js';
import { generateAgentKey, writeKeyFile } from '../src/keys/key-file.js';
import { createRelay, type Relay } from '../src/relay/relay.js';
import { curlResponse } from './helpers/curl.js';
import { type Origin, startOrigin } from './helpers/origin.js';
import { startCli } from './helpers/processes.js';

/**
 * Two agents of one key publishing one service share its label. A second one with another target
 * or other access rules must never silently change the live tunnel — a guarded one least of all.
 */
describe('a second agent of the same key cannot silently change a live tunnel', () => {
  let origin: Origin;
  let other: Origin;
  let relay: Relay;
  let port: number;
  const key = generateAgentKey();
  const agents: Agent[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'postern-conflict-'));

  before(async () => {
    origin = await startOrigin();
    other = await startOrigin();
    relay = await createRelay({ listen: ['tcp://127.0.0.1:0'] });
    port = Number((relay.addresses[0] as string).split(':').pop());
  });
  after(async () => {
    await Promise.all(agents.map((a) => a.close()));
    await relay?.close();
    await origin?.close();
    await other?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const expose = (service: ServiceOptions, replace = false): Agent => {
    const agent = createAgent({
      relay: relay.addresses[0] as string,
      key,
      connections: 1,
      services: [service],
      replace,
    });
    agents.push(agent);
    return agent;
  };
  const guarded: ServiceOptions = { target: '', access: { basicAuth: ['bob:s3cret'] } };

  test('the guarded tunnel stays guarded: an unguarded or retargeted twin is refused with 409, an identical one joins', async () => {
    const [service] = await expose({ ...guarded, target: origin.url }).ready;
    const url = `http://${service?.label}.localhost:${port}/echo`;
    assert.equal((await curlResponse([url])).status, 401);

    await assert.rejects(
      expose({ target: origin.url }).ready,
      /409 postern: service "default" of key \S+ is live from 127\.0\.0\.1 with another target or other access rules; stop that agent, or register with --replace/,
    );
    await assert.rejects(expose({ ...guarded, target: other.url }).ready, /409 /);
    assert.equal((await curlResponse([url])).status, 401, 'still guarded');
    assert.equal(relay.tunnels()[0]?.sessions, 1);

    await expose({ ...guarded, target: origin.url }).ready;
    assert.equal(relay.tunnels()[0]?.sessions, 2, 'the identical twin joined');
    assert.equal((await curlResponse([url])).status, 401);
  });

  test('with replace, the new registration takes the service over and the old sessions close', async () => {
    const [service] = await expose({ target: other.url }, true).ready;
    const url = `http://${service?.label}.localhost:${port}/echo`;
    assert.equal((await curlResponse([url])).status, 200, 'the operator asked: open now, on the new target');
    const tunnel = relay.tunnels()[0];
    assert.equal(tunnel?.sessions, 1);
    assert.deepEqual(tunnel?.access, []);
  });

  test('postern expose says so in one line and exits 1', async () => {
    const keyFile = join(dir, 'agent.key');
    writeKeyFile(keyFile, key);
    const cli = startCli([
      'expose',
      origin.url,
      '--relay',
      relay.addresses[0] as string,
      '--key',
      keyFile,
      '--no-inspect',
    ]);
    assert.equal(await cli.exited, 1);
    const lines = cli.stderr().trim().split('\n');
    assert.equal(lines.length, 1, cli.stderr());
    assert.match(lines[0] as string, /409 .*--replace/);
  });
});
