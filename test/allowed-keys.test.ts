import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { createAgent } from '../src/agent/agent.js';
import { generateAgentKey, loadKeyFile } from '../src/keys/key-file.js';
import { keyLabel, publicKeyX } from '../src/keys/label.js';
import { parseAllowedKeys } from '../src/relay/allowed-keys.js';
import { createRelay } from '../src/relay/relay.js';
import { curlResponse } from './helpers/curl.js';
import { type Origin, startOrigin } from './helpers/origin.js';
import { type CliProcess, startCli, startRelayProcess } from './helpers/processes.js';

describe('allowed keys: who may publish on a relay', () => {
  let dir: string;
  let origin: Origin;
  const keys: Record<'a' | 'b' | 'c', { file: string; label: string; x: string }> = {} as never;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'postern-allowed-'));
    origin = await startOrigin();
    for (const name of ['a', 'b', 'c'] as const) {
      const file = join(dir, `${name}.key`);
      await startCli(['keygen', '--out', file]).exited;
      const key = loadKeyFile(file);
      keys[name] = { file, label: keyLabel(key.publicKey), x: publicKeyX(key.publicKey) };
    }
  });
  after(async () => {
    await origin.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('the file format: labels or public keys, names= and max-sessions=, mistakes named by line', () => {
    const parsed = parseAllowedKeys(
      `# comment\n${keys.a.label} names=web,api\n\n${keys.b.x} max-sessions=3 # trailing comment\n`,
      'keys.txt',
    );
    assert.deepEqual([...(parsed.get(keys.a.label)?.names ?? [])], ['web', 'api']);
    assert.equal(parsed.get(keys.b.label)?.maxSessions, 3, 'a public key stands for its label');
    assert.throws(
      () => parseAllowedKeys(`${keys.a.label}\nnot-a-key\n`, 'k'),
      /: k:2: "not-a-key" is neither/,
    );
    assert.throws(
      () => parseAllowedKeys(`${keys.a.label} colour=red\n`, 'k'),
      /k:1: unknown field "colour=red"/,
    );
    assert.throws(
      () => parseAllowedKeys(`${keys.a.label} max-sessions=0\n`, 'k'),
      /k:1: max-sessions= takes/,
    );
    assert.throws(
      () => parseAllowedKeys(`${keys.a.label}\n${keys.a.x}\n`, 'k'),
      /k:2: key .* is listed twice/,
    );
  });

  test('listed keys publish, others and other names are refused for good, changes apply and revoke', async () => {
    const allowed = join(dir, 'allowed-keys');
    await writeFile(allowed, `${keys.a.label} names=web\n`);
    const { relay, listening } = await startRelayProcess(['--allowed-keys', allowed, '--admin', 'off']);
    const address = (listening.listen as string[])[0] as string;
    const relayUrl = address.replace('tcp://', 'http://');
    const expose = (key: keyof typeof keys, name: string, extra: string[] = []): CliProcess =>
      startCli([
        'expose',
        origin.url,
        '--relay',
        address,
        '--key',
        keys[key].file,
        '--name',
        name,
        '--json',
        ...extra,
      ]);
    const refusal = async (agent: CliProcess): Promise<string> => {
      const event = await agent.nextEvent((e) => e.event === 'error');
      assert.equal(await agent.exited, 1);
      return String(event.message);
    };
    const running: CliProcess[] = [];
    try {
      const a = expose('a', 'web');
      running.push(a);
      const ready = await a.nextEvent((e) => e.event === 'ready');
      const webLabel = (ready.services as { label: string }[])[0]?.label as string;
      assert.equal((await curlResponse([`${relayUrl}/${webLabel}/echo`])).status, 200);

      assert.match(await refusal(expose('a', 'admin')), /403.*may publish only web, not "admin"/);
      assert.match(
        await refusal(expose('b', 'web')),
        new RegExp(`403.*key ${keys.b.label} is not in this relay's allowed keys`),
      );

      // B is added with at most one session; A is taken out. The file is checked every 2 s.
      await writeFile(allowed, `${keys.b.x} max-sessions=1\n${keys.c.label}\n`);
      const aGone = refusal(a);
      let b: CliProcess | undefined;
      for (let attempt = 0; attempt < 20 && b === undefined; attempt++) {
        const candidate = expose('b', 'web', ['--connections', '2']);
        const outcome = await Promise.race([
          candidate.nextEvent((e) => e.event === 'ready').then(() => 'ready'),
          candidate.exited.then(() => 'refused'),
        ]);
        if (outcome === 'ready') b = candidate;
        else await delay(300);
      }
      assert.ok(b, 'B was admitted once the file listed it');
      running.push(b);
      // A's session was closed when its key left the file, and its reconnection refused for good.
      assert.match(await aGone, /is not in this relay's allowed keys/);
      // B's second session is over its limit: refused with 429 and retried, never admitted.
      const told = await b.nextEvent((e) => e.event === 'disconnected');
      assert.match(String(told.reason), /429.*already has 1 sessions \(limit 1\)/);
      assert.equal(b.child.exitCode, null, 'B keeps running on its one session');
    } finally {
      for (const agent of running) await agent.stop();
      await relay.stop();
    }
  });

  test('a mistake in the file stops the relay at start, naming file and line', async () => {
    const bad = join(dir, 'bad-keys');
    await writeFile(bad, `${keys.a.label}\n${keys.b.label} names=Web\n`);
    const relay = startCli([
      'relay',
      '--listen',
      'tcp://127.0.0.1:0',
      '--allowed-keys',
      bad,
      '--admin',
      'off',
    ]);
    assert.equal(await relay.exited, 1);
    assert.equal(
      relay.stderr(),
      `postern relay: ${bad}:2: names= takes service names (1-32 of a-z, 0-9, -), got "Web"\n`,
    );
  });

  test('--max-tunnels: a registration that would add a tunnel waits (503 relay_busy, retried); more sessions of a known one do not', async () => {
    const relay = await createRelay({ listen: ['tcp://127.0.0.1:0'], maxTunnels: 1 });
    const address = relay.addresses[0] as string;
    const keyA = generateAgentKey();
    const agent = (key = generateAgentKey()) =>
      createAgent({
        relay: address,
        key,
        services: [{ target: origin.url }],
        connections: 1,
        reconnectInitialMs: 50,
      });
    const first = agent(keyA);
    const other = agent();
    const sameKey = agent(keyA);
    try {
      await first.ready;
      const [refused] = (await once(other, 'disconnected')) as [{ reason: string }];
      assert.match(refused.reason, /503.*holds its limit of 1 tunnels/);
      await sameKey.ready;
      assert.equal(relay.tunnels()[0]?.sessions, 2);
    } finally {
      await Promise.all([first.close(), other.close(), sameKey.close()]);
      await relay.close();
    }
  });
});
