import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { curlResponse } from './helpers/curl.js';
import { type Origin, startOrigin } from './helpers/origin.js';
import { startCli, startRelayProcess } from './helpers/processes.js';

/**
 * Secrets on a command line are readable by every local user (`ps`): each has a file form and a
 * POSTERN_* variable, and a secret given as a flag draws a one-line warning.
 */
describe('secrets stay out of the process list', () => {
  const dir = mkdtempSync(join(tmpdir(), 'postern-secrets-'));
  let origin: Origin;
  before(async () => {
    origin = await startOrigin();
  });
  after(async () => {
    await origin?.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const file = (name: string, text: string): string => {
    const path = join(dir, name);
    writeFileSync(path, text, { mode: 0o600 });
    return path;
  };

  test('relay: --admin-token-file guards /metrics with no warning; --admin-token on the command line warns in one line', async () => {
    const quiet = await startRelayProcess([
      '--admin',
      '127.0.0.1:0',
      '--admin-token-file',
      file('admin', 'from-a-file-0123\n'),
    ]);
    try {
      const admin = String(quiet.listening.admin);
      assert.equal((await curlResponse([`http://${admin}/metrics`])).status, 401);
      assert.equal(
        (await curlResponse(['-H', 'Authorization: Bearer from-a-file-0123', `http://${admin}/metrics`]))
          .status,
        200,
      );
      assert.doesNotMatch(quiet.relay.stderr(), /warning/);
    } finally {
      await quiet.relay.stop();
    }
    const loud = await startRelayProcess(['--admin', '127.0.0.1:0', '--admin-token', 'on-the-command-line']);
    try {
      const warnings = loud.relay
        .stderr()
        .split('\n')
        .filter((line) => line.includes('warning'));
      assert.deepEqual(warnings, [
        'postern relay: warning: --admin-token on the command line is visible to every local user (ps); use --admin-token-file or POSTERN_ADMIN_TOKEN',
      ]);
    } finally {
      await loud.relay.stop();
    }
    const both = startCli(['relay', '--admin-token', 'x', '--admin-token-file', file('admin2', 'y')]);
    assert.notEqual(await both.exited, 0);
    assert.match(both.stderr(), /give --admin-token or --admin-token-file, not both/);
  });

  test('expose: --basic-auth-file (one user:password a line) guards the tunnel, with no warning', async () => {
    const { relay, port } = await startRelayProcess(['--admin', 'off']);
    const agent = startCli(
      [
        'expose',
        origin.url,
        '--relay',
        `tcp://127.0.0.1:${port}`,
        '--json',
        '--no-inspect',
        '--basic-auth-file',
        file('users', '# visitors\nbob:first secret\n\ncarol:second\n'),
      ],
      { XDG_CONFIG_HOME: dir },
    );
    try {
      const ready = await agent.nextEvent((e) => e.event === 'ready');
      const label = (ready.services as { label: string }[])[0]?.label;
      const url = `http://127.0.0.1:${port}/${label}/`;
      assert.equal((await curlResponse([url])).status, 401);
      assert.equal((await curlResponse(['-u', 'bob:first secret', url])).status, 200);
      assert.equal((await curlResponse(['-u', 'carol:second', url])).status, 200);
      assert.doesNotMatch(agent.stderr(), /warning/);
    } finally {
      await agent.stop();
      await relay.stop();
    }
  });
});
