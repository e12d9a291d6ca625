import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { COMMANDS } from '../src/cli/commands.js';
import { CONFIG_SECTIONS } from '../src/cli/config-layers.js';
import { envName, flagText } from '../src/cli/option-table.js';
import {
  documentedCommands,
  documentedSections,
  renderCliDocs,
  renderConfigDocs,
} from './helpers/cli-docs.js';
import { runToExit } from './helpers/processes.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

describe('one option table per command', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'postern-options-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('docs/cli.md holds every command’s option table exactly as the code renders it', () => {
    const page = readFileSync(`${ROOT}docs/cli.md`, 'utf8');
    assert.deepEqual(documentedCommands(page).sort(), Object.keys(COMMANDS).sort());
    assert.equal(renderCliDocs(page), page, 'docs/cli.md is stale: run npm run docs');
  });

  test('docs/config.md holds each section’s keys exactly as the code renders them', () => {
    const page = readFileSync(`${ROOT}docs/config.md`, 'utf8');
    assert.deepEqual(documentedSections(page).sort(), [...CONFIG_SECTIONS].sort());
    assert.equal(renderConfigDocs(page), page, 'docs/config.md is stale: run npm run docs');
  });

  test('each command’s --help lists every one of its options, from the same table', async () => {
    for (const [name, command] of Object.entries(COMMANDS)) {
      const { code, stdout } = await runToExit([name, '--help']);
      assert.equal(code, 0, `postern ${name} --help exits 0`);
      assert.match(stdout, /^usage: postern /);
      for (const [option, def] of Object.entries((await command.load()).options)) {
        if (def.hidden === true) continue;
        assert.ok(
          stdout.includes(flagText(option, def)),
          `postern ${name} --help lists ${flagText(option, def)}`,
        );
        assert.ok(stdout.includes(def.help), `postern ${name} --help explains --${option}`);
      }
    }
  });

  // One bad value a check, given as a flag, as a POSTERN_* variable and in a config file: each layer
  // refuses it the same way (exit 2, one line naming the option), and `config check` as well.
  const badValues: [command: string, option: string, value: string, says: RegExp][] = [
    [
      'relay',
      'admin',
      '127.0.0.1:99999',
      /admin: "127\.0\.0\.1:99999" is not host:port with a port of 0 to 65535/,
    ],
    ['relay', 'listen', 'htp://127.0.0.1:1', /listen: bad connection string .*unknown transport "htp"/],
    ['relay', 'listen', 'ws://127.0.0.1:1', /listen: use tcp:\/\/, tcps:\/\/, unix:\/\/ \(got ws:\/\/\)/],
    ['relay', 'stream-window', '1024', /stream-window must be 65536 to 1073741824 \(got 1024\)/],
    ['relay', 'ipv6-prefix', '129', /ipv6-prefix must be 1 to 128/],
    [
      'relay',
      'public-url',
      'example.com',
      /public-url: "example\.com" is not an http:\/\/ or https:\/\/ URL/,
    ],
    ['relay', 'log-level', 'loud', /log-level must be one of debug, info, warn, error, silent/],
    ['expose', 'relay', 'htp://127.0.0.1:1', /relay: bad connection string/],
    ['expose', 'inspect', '127.0.0.1', /inspect: "127\.0\.0\.1" is not host:port/],
    ['expose', 'connections', '0', /connections must be at least 1/],
    ['expose', 'host-header', 'keep', /host-header must be one of preserve, rewrite/],
  ];

  test('a bad value is refused alike as a flag, a variable, a config key and by config check', async () => {
    for (const [command, option, value, says] of badValues) {
      const target = command === 'expose' ? ['http://127.0.0.1:9'] : [];
      const flag = await runToExit([command, `--${option}`, value, ...target]);
      assert.equal(flag.code, 2, `--${option} ${value}: ${flag.stderr}`);
      assert.match(flag.stderr, says);
      assert.equal(flag.stderr.trim().split('\n').length, 1, flag.stderr);

      const variable = await runToExit([command, ...target], { [envName(option)]: value });
      assert.equal(variable.code, 2, `${envName(option)}=${value}: ${variable.stderr}`);
      assert.match(variable.stderr, new RegExp(`environment variable ${envName(option)}: `));
      assert.match(variable.stderr, says);

      const file = join(dir, `${command}-${option}.yaml`);
      await writeFile(file, `${command}:\n  ${option}: ${JSON.stringify(value)}\n`);
      const checked = await runToExit(['config', 'check', file]);
      assert.equal(
        checked.code,
        2,
        `config check with ${option}: ${value}: ${checked.stdout}${checked.stderr}`,
      );
      assert.match(checked.stderr, new RegExp(`${file.replaceAll('/', '\\/')}:2:\\d+: `));
      assert.match(checked.stderr, says);
    }
  });

  test('config check refuses a target the agent would refuse, naming it', async () => {
    const file = join(dir, 'bad-target.yaml');
    await writeFile(file, 'expose:\n  services:\n    web: htp://127.0.0.1:3000\n');
    const checked = await runToExit(['config', 'check', file]);
    assert.equal(checked.code, 2, checked.stdout);
    assert.match(checked.stderr, /bad-target\.yaml: expose: .*unknown transport "htp"/);

    const good = join(dir, 'good.yaml');
    await writeFile(
      good,
      'relay:\n  admin: 127.0.0.1:9099\n  stream-window: 2097152\nexpose:\n  relay: tcp://127.0.0.1:8080\n  services:\n    web: http://127.0.0.1:3000\n',
    );
    const ok = await runToExit(['config', 'check', good]);
    assert.equal(ok.code, 0, ok.stderr);
  });
});
