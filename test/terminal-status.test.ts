import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { freePort } from './helpers/binaries.js';
import { curl } from './helpers/curl.js';
import { type Origin, startOrigin } from './helpers/origin.js';
import { CLI } from './helpers/processes.js';
import { until } from './helpers/wait.js';

const run = promisify(execFile);

describe('postern expose on a terminal (checked in a real tmux)', () => {
  let origin: Origin;
  let dir: string;
  const session = `postern-status-${process.pid}`;
  before(async () => {
    origin = await startOrigin();
    dir = await mkdtemp(join(tmpdir(), 'postern-tty-'));
  });
  after(async () => {
    await run('tmux', ['kill-session', '-t', session]).catch(() => undefined);
    await origin.close();
    await rm(dir, { recursive: true, force: true });
  });

  const screen = async (name = session): Promise<string> =>
    (await run('tmux', ['capture-pane', '-p', '-t', name])).stdout;
  const untilScreen = async (pattern: RegExp, name = session): Promise<string> => {
    let last = '';
    const shows = async (): Promise<boolean> => {
      last = await screen(name);
      return pattern.test(last);
    };
    await until(shows, `the screen to show ${pattern}`, 20_000).catch(() => {
      throw new Error(`the screen never showed ${pattern}:\n${last}`);
    });
    return last;
  };

  test('one screen redrawn in place: forwarding, session state, request figures and the last requests', async () => {
    await run('tmux', [
      'new-session',
      '-d',
      '-s',
      session,
      '-x',
      '120',
      '-y',
      '30',
      `XDG_CONFIG_HOME=${dir} ${process.execPath} ${CLI} expose ${origin.url}`,
    ]);
    const first = await untilScreen(/Session status {5}online \(2 of 2 sessions\)/);
    const url = /Forwarding {9}(http:\/\/[a-z2-7]{52}\.localhost:\d+\/)\s+-> http:\/\/127\.0\.0\.1:\d+/.exec(
      first,
    )?.[1];
    assert.ok(url, first);
    assert.match(first, /Requests {11}0 total/);
    for (const path of ['one', 'two', 'three'])
      assert.equal((await curl([`${url}echo/${path}`])).exitCode, 0);
    const after = await untilScreen(/Requests {11}3 total/);
    const lines = after.split('\n');
    const listed = lines.filter((line) => /^GET \/echo\//.test(line));
    assert.deepEqual(
      listed.map((line) => line.split(/\s+/).slice(0, 3)),
      [
        ['GET', '/echo/three', '200'],
        ['GET', '/echo/two', '200'],
        ['GET', '/echo/one', '200'],
      ],
      'newest first, each with its status',
    );
    // Redrawn in place: the header appears once, not once per update.
    assert.equal(lines.filter((line) => line.startsWith('postern ')).length, 1);
  });

  test('on 80 columns the URL stays on one row; before any session the screen says connecting, and why not yet', async () => {
    const narrow = `${session}-narrow`;
    const port = await freePort();
    const exposeOn80Columns = (command: string) =>
      run('tmux', ['new-session', '-d', '-s', narrow, '-x', '80', '-y', '30', command]);
    try {
      await exposeOn80Columns(
        `XDG_CONFIG_HOME=${dir} ${process.execPath} ${CLI} expose ${origin.url} --relay tcp://127.0.0.1:${port}`,
      );
      const waiting = await untilScreen(/cannot reach the relay: /, narrow);
      assert.match(waiting, /Session status {5}connecting \(0 of 2 sessions\)/);
      await run('tmux', ['kill-session', '-t', narrow]);
      await exposeOn80Columns(`XDG_CONFIG_HOME=${dir} ${process.execPath} ${CLI} expose ${origin.url}`);
      const up = await untilScreen(/Session status {5}online/, narrow);
      assert.match(up, /^Forwarding\nhttp:\/\/[a-z2-7]{52}\.localhost:\d+\/\n/m, up);
      assert.match(up, /^ {19}-> http:\/\/127\.0\.0\.1:\d+$/m, up);
    } finally {
      await run('tmux', ['kill-session', '-t', narrow]).catch(() => undefined);
    }
  });
});
