import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { OptionError } from '../src/errors.js';
import { createRelay, type RelayOptions } from '../src/index.js';
import { runToExit } from './helpers/processes.js';

const SECRET = 'a-cluster-secret-0123';
const REDIS = 'redis://127.0.0.1:9';

/**
 * A node that could never join the cluster fails before it listens: the relay below is told to
 * listen on a port that is taken, so a relay that listened first would fail with EADDRINUSE
 * instead of the option's own message.
 */
describe('cluster options are checked before anything listens', () => {
  const taken = createServer();
  let port = 0;
  before(async () => {
    taken.listen(0, '127.0.0.1');
    await once(taken, 'listening');
    port = (taken.address() as { port: number }).port;
  });
  after(() => new Promise<void>((resolve) => taken.close(() => resolve())));

  const cases: [string, RelayOptions, RegExp][] = [
    ['a short secret', { clusterSecret: 'short' }, /cluster secret of at least 16 characters/],
    ['no secret', { clusterSecret: undefined }, /cluster secret of at least 16 characters/],
    ['a node id others cannot name', { nodeId: 'no spaces' }, /node id "no spaces" must be 1-63/],
    [
      'a wildcard to advertise',
      { advertise: 'tcp://0.0.0.0:8080' },
      /--advertise tcp:\/\/0\.0\.0\.0:8080: give an address other nodes can dial/,
    ],
    [
      'a unix address to advertise',
      { advertise: 'unix://localhost:0?path=/tmp/x.sock' },
      /other nodes dial tcp:\/\/ or tcps:\/\/ only/,
    ],
  ];
  for (const [what, options, message] of cases)
    test(`refused: ${what}`, async () => {
      await assert.rejects(
        createRelay({
          listen: [`tcp://127.0.0.1:${port}`],
          redis: REDIS,
          clusterSecret: SECRET,
          nodeId: 'n1',
          ...options,
        }),
        (error: Error) => error instanceof OptionError && message.test(error.message),
      );
    });

  test('refused: a wildcard listener and no --advertise', async () => {
    await assert.rejects(
      createRelay({ listen: [`tcp://0.0.0.0:${port}`], redis: REDIS, clusterSecret: SECRET }),
      /this node listens on 0\.0\.0\.0; give an address other nodes can dial, not a wildcard/,
    );
  });

  test('the CLI says so in one line and exits 2', async () => {
    const result = await runToExit(
      ['relay', '--listen', `tcp://127.0.0.1:${port}`, '--redis', REDIS, '--advertise', 'tcp://[::]:1'],
      { POSTERN_CLUSTER_SECRET: SECRET },
    );
    assert.equal(result.code, 2, result.stderr);
    assert.match(
      result.stderr.trim(),
      /^postern relay: --advertise tcp:\/\/\[::\]:1: give an address other nodes can dial, not a wildcard$/,
    );
  });
});
