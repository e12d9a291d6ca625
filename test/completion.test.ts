import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { runToExit } from './helpers/processes.js';

const run = promisify(execFile);

/** Each shell loads the script `postern completion <shell>` prints, and is asked to complete. */
describe('shell completion from the option tables', () => {
  const dir = mkdtempSync(join(tmpdir(), 'postern-completion-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  const script = async (shell: string): Promise<string> => {
    const { code, stdout, stderr } = await runToExit(['completion', shell]);
    assert.equal(code, 0, stderr);
    const path = join(dir, `postern.${shell}`);
    writeFileSync(path, stdout);
    return path;
  };

  test('bash completes commands, then the flags of the command typed', async () => {
    const path = await script('bash');
    const complete = async (words: string[]): Promise<string> =>
      (
        await run('bash', [
          '-c',
          `source ${path}; COMP_WORDS=(${words.join(' ')}); COMP_CWORD=${words.length - 1}; _postern; echo "\${COMPREPLY[@]}"`,
        ])
      ).stdout.trim();
    assert.equal(await complete(['postern', 'exp']), 'expose');
    assert.equal(await complete(['postern', 'expose', '--rel']), '--relay --relay-host');
    assert.equal(await complete(['postern', 'connect', '--half']), '--half-close');
    assert.equal(
      await complete(['postern', 'relay', '--cluster-s']),
      '--cluster-secret --cluster-secret-file',
    );
  });

  test('zsh (through bashcompinit) offers the flags of the command typed, not of the others', async () => {
    const path = await script('zsh');
    const { stdout } = await run('zsh', [
      '-c',
      `source ${path}; t() { emulate -L sh; COMP_WORDS=(postern connect --h); COMP_CWORD=2; _postern; echo "\${COMPREPLY[@]}"; }; t`,
    ]);
    const offered = stdout.trim().split(' ');
    assert.ok(offered.includes('--half-close') && offered.includes('--idle-timeout'), stdout);
    assert.ok(!offered.includes('--relay'), stdout);
  });

  test('fish completes commands with their summaries, flags with their help and choices', async () => {
    const path = await script('fish');
    const complete = async (line: string): Promise<string> =>
      (await run('fish', ['-c', `source ${path}; complete -C ${JSON.stringify(line)}`])).stdout;
    assert.match(await complete('postern exp'), /^expose\tpublish a local service/m);
    assert.match(
      await complete('postern relay --adv'),
      /^--advertise\twhere the other nodes reach this one/m,
    );
    assert.deepEqual(
      (await complete('postern expose --host-header '))
        .split('\n')
        .filter(Boolean)
        .map((l) => l.split('\t')[0]),
      ['preserve', 'rewrite'],
    );
  });

  test('an unknown shell is a usage error', async () => {
    const { code, stderr } = await runToExit(['completion', 'powershell']);
    assert.equal(code, 2);
    assert.equal(
      stderr,
      'postern completion: completion takes one shell: bash, zsh, fish (usage: postern completion bash|zsh|fish)\n',
    );
  });
});
