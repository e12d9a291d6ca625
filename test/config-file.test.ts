import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { EXPOSE_OPTIONS } from '../src/cli/expose-options.js';
import type { OptionTable } from '../src/cli/option-table.js';
import { RELAY_OPTIONS } from '../src/cli/relay-options.js';
import { curlResponse } from './helpers/curl.js';
import { type Origin, startOrigin } from './helpers/origin.js';
import { runToExit, startCli, startRelayProcess } from './helpers/processes.js';

describe('config file (YAML), environment and flags', () => {
  let dir: string;
  let origin: Origin;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'postern-config-'));
    origin = await startOrigin();
  });
  after(async () => {
    await origin.close();
    await rm(dir, { recursive: true, force: true });
  });

  const write = async (name: string, text: string): Promise<string> => {
    const path = join(dir, name);
    await writeFile(path, text);
    return path;
  };

  test('config check: ok for a good file; a mistake names file, line and column and exits 2', async () => {
    const good = await write(
      'good.yaml',
      'relay:\n  listen: [tcp://127.0.0.1:0]\n  drain-timeout: 2000\nexpose:\n  services:\n    web: http://127.0.0.1:3000\n',
    );
    const ok = await runToExit(['config', 'check', good]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /good\.yaml: ok \(relay: 2 options; expose: 0 options, 1 services\)/);

    const cases: [string, string, RegExp][] = [
      [
        'relay:\n  domain: a.test\n  drain-timeout: soon\n',
        'number',
        /:3:18: drain-timeout must be a whole number \(got "soon"\)$/,
      ],
      [
        'relay:\n  domian: a.test\n',
        'unknown',
        /:2:3: unknown option "domian" for relay \(allowed: listen, .*\bdomain\b/,
      ],
      [
        'relay:\n  log-level: loud\n',
        'choice',
        /:2:14: log-level must be one of debug, info, warn, error, silent \(got "loud"\)$/,
      ],
      ['relays:\n  domain: x\n', 'section', /:1:1: unknown section "relays" \(sections: relay, expose\)$/],
      ['relay:\n  listen: [tcp://x\n', 'syntax', /bad-syntax\.yaml:\d+:\d+: /],
      [
        'expose:\n  services:\n    Web: http://127.0.0.1:1\n',
        'service',
        /:3:5: a service name is 1-32 of a-z, 0-9 and "-"$/,
      ],
      [
        'expose:\n  services:\n    web:\n      target: http://127.0.0.1:1\n      port: 1\n',
        'service-field',
        /:5:7: unknown field "port" of service web \(target, subdomain\)$/,
      ],
      [
        'expose:\n  services:\n    web:\n      target: http://127.0.0.1:1\n      subdomain: -shop\n',
        'subdomain',
        /expose: subdomain "-shop" of service "web" must be one DNS label/,
      ],
    ];
    for (const [text, name, expected] of cases) {
      const file = await write(`bad-${name}.yaml`, text);
      const result = await runToExit(['config', 'check', file]);
      assert.equal(result.code, 2, `${name}: ${result.stderr}`);
      const lines = result.stderr.trim().split('\n');
      assert.equal(lines.length, 1, `one line: ${result.stderr}`);
      assert.match(lines[0] as string, new RegExp(`^postern config: ${file.replace(/[.]/g, '\\.')}`));
      assert.match(lines[0] as string, expected);
    }
  });

  test('precedence: flags over POSTERN_* over the file; a list set higher replaces the lower one', async () => {
    const file = await write(
      'relay.yaml',
      'relay:\n  domain: file.test\n  listen:\n    - tcp://127.0.0.1:1\n  admin: "off"\n',
    );
    // --listen on the command line replaces the file's list (whose port 1 would fail to bind).
    const fromFile = await startRelayProcess(['--config', file]);
    assert.equal(fromFile.listening.domain, 'file.test');
    assert.equal(fromFile.listening.admin, null);
    await fromFile.relay.stop();

    const env = { POSTERN_DOMAIN: 'env.test' };
    const relayEnv = startCli(['relay', '--config', file, '--listen', 'tcp://127.0.0.1:0', '--json'], env);
    assert.equal((await relayEnv.nextEvent((e) => e.event === 'listening')).domain, 'env.test');
    await relayEnv.stop();

    const relayFlag = startCli(
      ['relay', '--listen', 'tcp://127.0.0.1:0', '--domain', 'flag.test', '--json'],
      { ...env, POSTERN_CONFIG: file },
    );
    assert.equal((await relayFlag.nextEvent((e) => e.event === 'listening')).domain, 'flag.test');
    await relayFlag.stop();

    const badEnv = await runToExit(['relay', '--config', file, '--listen', 'tcp://127.0.0.1:0'], {
      POSTERN_DRAIN_TIMEOUT: 'later',
    });
    assert.equal(badEnv.code, 2);
    assert.match(
      badEnv.stderr,
      /^postern relay: environment variable POSTERN_DRAIN_TIMEOUT: drain-timeout must be a whole number \(got "later"\)\n$/,
    );
  });

  test('expose from a file: its services map publishes each target, one under a subdomain of its own', async () => {
    const { relay, listening } = await startRelayProcess(['--admin', 'off', '--state-dir', dir]);
    try {
      const address = (listening.listen as string[])[0] as string;
      await startCli(['keygen', '--out', join(dir, 'agent.key')]).exited;
      const file = await write(
        'expose.yaml',
        `expose:\n  relay: ${address}\n  key: ${join(dir, 'agent.key')}\n  services:\n    web: ${origin.url}\n    shop:\n      target: ${origin.url}\n      subdomain: shop\n`,
      );
      const agent = startCli(['expose', '--config', file, '--json']);
      try {
        const ready = await agent.nextEvent((e) => e.event === 'ready');
        const services = ready.services as { name: string; url: string; label: string }[];
        assert.deepEqual(
          services.map((s) => [s.name, s.name === 'shop' ? s.label : 'derived']),
          [
            ['web', 'derived'],
            ['shop', 'shop'],
          ],
        );
        const res = await curlResponse([
          `${address.replace('tcp://', 'http://')}/${services[0]?.label}/echo`,
        ]);
        assert.equal(res.status, 200);
      } finally {
        await agent.stop();
      }
    } finally {
      await relay.stop();
    }
  });

  test('docs/config.md lists exactly the options each section takes', () => {
    const docs = readFileSync(
      join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'docs', 'config.md'),
      'utf8',
    );
    const keysOf = (heading: string): string[] => {
      const start = docs.indexOf(heading);
      const end = docs.indexOf('\n## ', start + 1);
      const table = docs.slice(start, end === -1 ? undefined : end);
      return [...table.matchAll(/^\| `([a-z0-9-]+)` \|/gm)].map((m) => m[1] as string).sort();
    };
    const optionsOf = (table: OptionTable): string[] =>
      Object.entries(table)
        .filter(([, option]) => option.commandLineOnly !== true)
        .map(([name]) => name)
        .sort();
    assert.deepEqual(keysOf('## `relay:` keys'), optionsOf(RELAY_OPTIONS));
    assert.deepEqual(keysOf('## `expose:` keys'), [...optionsOf(EXPOSE_OPTIONS), 'services'].sort());
  });
});
