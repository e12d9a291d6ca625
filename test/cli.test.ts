import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer } from 'node:http';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { expandTarget } from '../src/cli/expose.js';
import { freePort } from './helpers/binaries.js';
import { curl, curlResponse } from './helpers/curl.js';
import { type Origin, sha256OfPattern, startOrigin } from './helpers/origin.js';
import { CLI, runToExit, startCli } from './helpers/processes.js';
import { until } from './helpers/wait.js';

describe('the postern command', () => {
  let origin: Origin;
  let home: string;
  before(async () => {
    origin = await startOrigin();
    home = await mkdtemp(join(tmpdir(), 'postern-home-'));
  });
  after(async () => {
    await origin.close();
    await rm(home, { recursive: true, force: true });
  });

  test('expose without --relay: embedded relay, a key created on first run, the documented ready line, a working URL', async () => {
    const cli = startCli(['expose', origin.url, '--json'], { XDG_CONFIG_HOME: home });
    try {
      const ready = await cli.nextEvent(() => true);
      assert.deepEqual(Object.keys(ready), ['event', 'services', 'inspector']);
      assert.match(String(ready.inspector), /^http:\/\/127\.0\.0\.1:\d+$/);
      assert.equal(ready.event, 'ready');
      const [service] = ready.services as Record<string, string>[];
      assert.deepEqual(Object.keys(service ?? {}), ['name', 'kind', 'label', 'url']);
      assert.equal(service?.name, 'default');
      assert.equal(service?.kind, 'http');
      assert.match(service?.url ?? '', /^http:\/\/[a-z2-7]{52}\.localhost:\d+\/$/);
      assert.match(cli.stderr(), /created a new agent key at .*postern\/agent\.key/);
      assert.equal((await stat(join(home, 'postern', 'agent.key'))).mode & 0o777, 0o600);
      const res = await curlResponse([`${service?.url}echo`]);
      assert.equal(res.status, 200);
      // The second default session's first start is not a reconnect: no 'connected' line for it.
      await assert.rejects(cli.nextEvent((e) => e.event === 'connected', 500));
    } finally {
      assert.equal(await cli.stop('SIGTERM'), 0, 'SIGTERM exits 0 after a clean close');
    }
  });

  test('expose 3000 and expose localhost:3000 publish http://127.0.0.1:3000 and http://localhost:3000', async () => {
    const port = new URL(origin.url).port;
    const cli = startCli(['expose', `a=${port}`, `b=localhost:${port}`, '--json'], { XDG_CONFIG_HOME: home });
    try {
      const ready = await cli.nextEvent((e) => e.event === 'ready');
      const services = ready.services as { name: string; url: string }[];
      assert.deepEqual(
        services.map((service) => service.name),
        ['a', 'b'],
      );
      for (const service of services) assert.equal((await curlResponse([`${service.url}echo`])).status, 200);
    } finally {
      await cli.stop();
    }
  });

  test('startup failures: one line on stderr that says what to do, exit 1, and an error event on stdout with --json', async () => {
    const taken = createServer();
    taken.listen(0, '127.0.0.1');
    await once(taken, 'listening');
    const port = (taken.address() as AddressInfo).port;
    try {
      for (const [args, code, message] of [
        [
          ['relay', '--listen', `tcp://127.0.0.1:${port}`],
          'POSTERN_BAD_OPTION',
          `cannot listen on tcp://127.0.0.1:${port}: port ${port} is in use`,
        ],
        [
          ['relay', '--listen', 'tcp://127.0.0.1:0', '--admin', `127.0.0.1:${port}`],
          'POSTERN_BAD_OPTION',
          `admin listener 127.0.0.1:${port}: port ${port} is in use`,
        ],
        [
          ['expose', '3000', '--key', join(home, 'missing.key')],
          'POSTERN_BAD_KEY_FILE',
          `no key file at ${join(home, 'missing.key')}; make one with: postern keygen --out ${join(home, 'missing.key')}`,
        ],
      ] as const) {
        const result = await runToExit([...args, '--json'], { XDG_CONFIG_HOME: home });
        assert.equal(result.code, 1, result.stderr);
        assert.equal(result.stderr, `postern ${args[0]}: ${message}\n`);
        const events = result.stdout
          .trim()
          .split('\n')
          .map((line) => JSON.parse(line) as Record<string, unknown>);
        assert.deepEqual(events.at(-1), { event: 'error', code, message });
      }
    } finally {
      taken.close();
    }
  });

  test('a relay that cannot be reached, or is not a relay: one plain line per attempt that says so', async () => {
    const port = await freePort();
    const env = { XDG_CONFIG_HOME: home };
    const down = startCli(['expose', '3000', '--relay', `tcp://127.0.0.1:${port}`, '--no-inspect'], env);
    const notRelay = startCli(
      ['expose', '3000', '--relay', `tcp://127.0.0.1:${new URL(origin.url).port}`],
      env,
    );
    try {
      await until(() => down.stderr().includes('(attempt 2)'), 'a second attempt');
      const first =
        down
          .stderr()
          .split('\n')
          .find((line) => line.includes('(attempt 1)')) ?? '';
      assert.match(
        first,
        new RegExp(
          `^postern: cannot reach the relay at tcp://127\\.0\\.0\\.1:${port}: connection refused, nothing listens there \\(ECONNREFUSED\\); retrying in \\d+ (ms|\\.\\d s) \\(attempt 1\\)$`,
        ),
      );
      // Both sessions failed on attempt 1: one line.
      assert.equal(down.stderr().split('(attempt 1)').length - 1, 1, down.stderr());
      await until(() => notRelay.stderr().includes('(attempt 1)'), 'the first attempt');
      assert.match(
        notRelay.stderr(),
        /^postern: tcp:\/\/127\.0\.0\.1:\d+: answered 200 OK to the agent's upgrade, without a Postern-Error header: not a Postern relay/m,
      );
    } finally {
      await down.stop();
      await notRelay.stop();
    }
  });

  test('a reader that goes away (| head -1) ends the command quietly', async () => {
    const cli = startCli(['expose', '3000', '--relay', 'tcp://127.0.0.1:1', '--json', '--no-inspect'], {
      XDG_CONFIG_HOME: home,
    });
    cli.child.stdout.destroy();
    assert.equal(await cli.exited, 0);
    assert.doesNotMatch(cli.stderr(), /EPIPE|Error/);
  });

  test('hash-password: from a pipe, and on a terminal without echo', async () => {
    const piped = startCli(['hash-password', '--user', 'alice']);
    piped.child.stdin.end('pipe-secret\n');
    let out = '';
    piped.child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
    });
    assert.equal(await piped.exited, 0, piped.stderr());
    assert.match(out, /^alice:\$scrypt\$\S+\n$/);
    // On a terminal (a pseudo-terminal by script(1)): a prompt, the typing not echoed, Enter ends it.
    const terminal = spawn('script', ['-qefc', `exec node ${CLI} hash-password --user bob`, '/dev/null'], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let seen = '';
    terminal.stdout.on('data', (chunk: Buffer) => {
      seen += chunk.toString();
    });
    try {
      await until(() => seen.includes('Password: '), 'the prompt');
      terminal.stdin.write('typed-secret\r');
      await until(() => /bob:\$scrypt\$/.test(seen), 'the hash');
      assert.doesNotMatch(seen, /typed-secret/, 'the password was echoed');
    } finally {
      terminal.kill('SIGKILL');
    }
  });

  test('keygen --out into a folder that does not exist is refused, not created', async () => {
    const missing = join(home, 'no-such-folder', 'agent.key');
    const refused = await runToExit(['keygen', '--out', missing]);
    assert.equal(refused.code, 1);
    assert.equal(
      refused.stderr,
      `postern keygen: --out ${missing}: the folder ${join(home, 'no-such-folder')} does not exist\n`,
    );
    const made = await runToExit(['keygen', '--out', join(home, 'made.key'), '--json']);
    assert.equal(made.code, 0, made.stderr);
    assert.equal((await stat(join(home, 'made.key'))).mode & 0o777, 0o600);
  });

  test('when the target stops answering, --plain says so once, and again when it is back; --json has target events', async () => {
    const port = await freePort();
    const plain = startCli(['expose', String(port), '--no-inspect'], { XDG_CONFIG_HOME: home });
    const json = startCli(['expose', `http://127.0.0.1:${port}`, '--no-inspect', '--json'], {
      XDG_CONFIG_HOME: home,
    });
    let back: ReturnType<typeof createHttpServer> | undefined;
    try {
      const ready = await json.nextEvent((e) => e.event === 'ready');
      const url = (ready.services as { url: string }[])[0]?.url as string;
      const plainUrl = await plainUrlOf(plain);
      for (let i = 0; i < 2; i++) {
        assert.equal((await curlResponse([plainUrl])).status, 502);
        assert.equal((await curlResponse([url])).status, 502);
      }
      const down = await json.nextEvent((e) => e.event === 'target');
      assert.deepEqual(down, {
        event: 'target',
        service: 'default',
        target: `http://127.0.0.1:${port}`,
        reachable: false,
        reason: 'ECONNREFUSED',
      });
      back = createHttpServer((_req, res) => res.end('back'));
      back.listen(port, '127.0.0.1');
      await once(back, 'listening');
      assert.equal((await curlResponse([plainUrl])).status, 200);
      assert.equal((await curlResponse([url])).status, 200);
      assert.equal((await json.nextEvent((e) => e.event === 'target')).reachable, true);
      await until(() => plain.stderr().includes('answers again'), 'the plain line for the target back');
      const lines = plain
        .stderr()
        .split('\n')
        .filter((line) => line.includes('the target'));
      assert.deepEqual(lines, [
        `postern: the target http://127.0.0.1:${port} is not answering (ECONNREFUSED); visitors get 502 until it does`,
        `postern: the target http://127.0.0.1:${port} answers again`,
      ]);
    } finally {
      await plain.stop();
      await json.stop();
      back?.close();
    }
  });

  test('short targets expand as ngrok users expect; a port out of range names the target', () => {
    assert.equal(expandTarget('3000', false), 'http://127.0.0.1:3000');
    assert.equal(expandTarget('localhost:3000', false), 'http://localhost:3000');
    assert.equal(expandTarget('[::1]:3000', false), 'http://[::1]:3000');
    assert.equal(expandTarget('5432', true), 'tcp://127.0.0.1:5432');
    assert.equal(expandTarget('db.internal:5432', true), 'tcp://db.internal:5432');
    assert.equal(expandTarget('http://127.0.0.1:3000', false), 'http://127.0.0.1:3000');
    assert.equal(
      expandTarget('unix://localhost:0?path=/run/x.sock', true),
      'unix://localhost:0?path=/run/x.sock',
    );
    assert.throws(() => expandTarget('99999', false), /^UsageError: target 99999: a port is 1 to 65535$/);
    assert.throws(() => expandTarget('localhost:0', false), /target localhost:0: a port is 1 to 65535/);
  });

  test('the same key gives the same hostname on the next run', async () => {
    const labels: unknown[] = [];
    for (let i = 0; i < 2; i++) {
      const cli = startCli(['expose', origin.url, '--json'], { XDG_CONFIG_HOME: home });
      const ready = await cli.nextEvent((e) => e.event === 'ready');
      labels.push((ready.services as { label: string }[])[0]?.label);
      await cli.stop();
    }
    assert.equal(labels[0], labels[1]);
  });

  test('relay --json reports the real ports it listens on; an agent process reaches it', async () => {
    const relay = startCli([
      'relay',
      '--listen',
      'tcp://127.0.0.1:0',
      '--listen',
      'tcp://[::1]:0',
      '--json',
      '--log-level',
      'warn',
    ]);
    try {
      const listening = await relay.nextEvent((e) => e.event === 'listening');
      const listen = listening.listen as string[];
      assert.equal(listen.length, 2);
      assert.match(listen[0] ?? '', /^tcp:\/\/127\.0\.0\.1:[1-9]\d*$/);
      assert.match(listen[1] ?? '', /^tcp:\/\/\[::1\]:[1-9]\d*$/);
      const agent = startCli(['expose', origin.url, '--relay', listen[1] as string, '--json'], {
        XDG_CONFIG_HOME: home,
      });
      const ready = await agent.nextEvent((e) => e.event === 'ready');
      const label = (ready.services as { label: string }[])[0]?.label;
      const viaV4 = await curlResponse([`${listen[0]?.replace('tcp://', 'http://')}/${label}/echo`]);
      assert.equal(viaV4.status, 200);
      await relay.nextEvent((e) => e.event === 'session');
      await agent.stop();
    } finally {
      assert.equal(await relay.stop('SIGTERM'), 0);
    }
  });

  test('--stream-window: out of range is one line and exit 2; 64 KiB windows carry 4 MiB each way intact', async () => {
    const tooSmall = startCli(['relay', '--listen', 'tcp://127.0.0.1:0', '--stream-window', '1000']);
    assert.equal(await tooSmall.exited, 2);
    assert.equal(
      tooSmall.stderr(),
      'postern relay: --stream-window must be 65536 to 1073741824 (got 1000)\n',
    );
    const relay = startCli(['relay', '--listen', 'tcp://127.0.0.1:0', '--stream-window', '65536', '--json']);
    try {
      const listening = await relay.nextEvent((e) => e.event === 'listening');
      const address = (listening.listen as string[])[0] as string;
      const agent = startCli(
        ['expose', origin.url, '--relay', address, '--stream-window', '65536', '--json'],
        {
          XDG_CONFIG_HOME: home,
        },
      );
      const ready = await agent.nextEvent((e) => e.event === 'ready');
      const base = `${address.replace('tcp://', 'http://')}/${(ready.services as { label: string }[])[0]?.label}`;
      const size = 4 << 20;
      const file = join(home, 'window-body');
      const down = await curl(['-sS', '-o', file, `${base}/bytes?n=${size}`]);
      assert.equal(down.exitCode, 0, down.stderr);
      assert.equal(
        createHash('sha256')
          .update(await readFile(file))
          .digest('hex'),
        sha256OfPattern(size),
      );
      const up = await curl(['-sS', '--data-binary', `@${file}`, `${base}/upload`]);
      assert.equal(up.exitCode, 0, up.stderr);
      assert.deepEqual(JSON.parse(up.stdout), { size, sha256: sha256OfPattern(size) });
      await agent.stop();
    } finally {
      assert.equal(await relay.stop('SIGTERM'), 0);
    }
  });

  test('relay on a unix socket: an agent dials unix://', async () => {
    const socketPath = join(home, 'relay.sock');
    const relay = startCli([
      'relay',
      '--listen',
      `unix://localhost:0?path=${socketPath}`,
      '--listen',
      'tcp://127.0.0.1:0',
      '--json',
      '--log-level',
      'warn',
    ]);
    try {
      const listening = await relay.nextEvent((e) => e.event === 'listening');
      const tcp = (listening.listen as string[])[1] as string;
      const agent = startCli(
        ['expose', origin.url, '--relay', `unix://localhost:0?path=${socketPath}`, '--json'],
        { XDG_CONFIG_HOME: home },
      );
      const ready = await agent.nextEvent((e) => e.event === 'ready');
      const label = (ready.services as { label: string }[])[0]?.label;
      assert.equal((await curlResponse([`${tcp.replace('tcp://', 'http://')}/${label}/echo`])).status, 200);
      await agent.stop();
    } finally {
      await relay.stop();
    }
  });

  test('--version and -v print the package version and the agent protocol, exit 0', async () => {
    const { version } = JSON.parse(
      await readFile(new URL('../../package.json', import.meta.url), 'utf8'),
    ) as {
      version: string;
    };
    for (const flag of ['--version', '-v']) {
      const cli = startCli([flag]);
      const printed = await cli.nextEvent((e) => e.event === 'text');
      assert.equal(printed.line, `postern ${version} (agent protocol 3)`);
      assert.equal(await cli.exited, 0);
    }
  });

  test('relay --listen unix://…?path=F never deletes a regular file at F: one line, exit 1, the file intact', async () => {
    const path = join(home, 'precious.txt');
    await writeFile(path, 'keep me\n');
    const relay = startCli(['relay', '--listen', `unix://localhost:0?path=${path}`, '--admin', 'off']);
    // A relay that took the path would run on: stopped after a bound so the test fails, not hangs.
    const bound = setTimeout(() => void relay.stop(), 30_000);
    const code = await relay.exited;
    clearTimeout(bound);
    assert.equal(code, 1, relay.stderr());
    assert.match(
      relay.stderr(),
      /^postern relay: cannot listen on unix socket .*precious\.txt: a file that is not a socket is there\n$/,
    );
    assert.equal(await readFile(path, 'utf8'), 'keep me\n');
  });

  for (const [args, message] of [
    [
      ['relay', '--listen', 'tcp://h'],
      /^postern relay: --listen: bad connection string "tcp:\/\/h": missing port: tcp needs host:port\n$/,
    ],
    [
      ['relay', '--listen', 'ftp://h:1'],
      /^postern relay: --listen: bad connection string "ftp:\/\/h:1": unknown transport "ftp"/,
    ],
    [
      ['relay', '--listen', 'tcps://127.0.0.1:0'],
      /^postern relay: listening on tcps:\/\/127\.0\.0\.1:0 needs --tls-cert and --tls-key \(or --acme-email\)\n$/,
    ],
    [
      ['relay', '--listen', 'tcps://127.0.0.1:0', '--acme-email', 'ops@example.com'],
      /^postern relay: --acme-email needs --domain set to a public DNS name \(got "localhost"\)\n$/,
    ],
    [
      [
        'relay',
        '--listen',
        'tcp://127.0.0.1:0',
        '--domain',
        'tunnels.example.com',
        '--acme-email',
        'ops@example.com',
      ],
      /^postern relay: --acme-email needs a tcps:\/\/ listener to serve the certificates on\n$/,
    ],
    [
      ['relay', '--listen', 'tcps://127.0.0.1:0', '--domain', 't.example.com', '--acme-email', 'ops'],
      /^postern relay: --acme-email "ops" is not an email address\n$/,
    ],
    [['expose', 'ftp://x:1'], /^postern expose: bad connection string "ftp:\/\/x:1": unknown transport/],
    [
      ['expose', 'http://127.0.0.1:1', '--relay', 'tcp://127.0.0.1:1?http_preflight=false'],
      /http_preflight cannot be false/,
    ],
    [
      ['expose', 'http://127.0.0.1:1', '--host-header', 'sideways'],
      /^postern expose: --host-header must be one of preserve, rewrite \(got "sideways"\)\n$/,
    ],
    [['expose'], /^postern expose: expose takes one or more targets/],
    [
      ['expose', 'http://127.0.0.1:1', 'http://127.0.0.1:2'],
      /^postern expose: service "default" is declared twice/,
    ],
    [
      ['expose', 'a=http://127.0.0.1:1', 'b=http://127.0.0.1:2', '--name', 'x'],
      /--name names a single target/,
    ],
    [['relay', '--bogus'], /^postern relay: unknown option --bogus; --help lists them all\n$/],
    [
      ['expose', '3000', '--rely', 'tcp://127.0.0.1:1'],
      /^postern expose: unknown option --rely \(did you mean --relay\?\); --help lists them all\n$/,
    ],
    [['expose', '3000', '--relay'], /^postern expose: --relay needs a value\n$/],
    [['relay', '--json=yes'], /^postern relay: --json takes no value\n$/],
    [['relay', 'extra'], /^postern relay: unexpected argument "extra": this command takes options only\n$/],
    [['nope'], /^postern nope: unknown command "nope"/],
    [['exopse', '3000'], /^postern exopse: unknown command "exopse" \(did you mean expose\? commands: /],
  ] as const) {
    test(`bad input, one clear line and a non-zero exit: postern ${args.join(' ')}`, async () => {
      const cli = startCli([...args], { XDG_CONFIG_HOME: home });
      const code = await cli.exited;
      assert.ok(code === 1 || code === 2, `exit ${code}`);
      assert.match(cli.stderr(), message);
      assert.equal(cli.stderr().trim().split('\n').length, 1, cli.stderr());
    });
  }
});

/** The URL a plain `postern expose` printed on stdout ("Forwarding <url> -> <target>"). */
async function plainUrlOf(cli: ReturnType<typeof startCli>): Promise<string> {
  const line = await cli.nextEvent((e) => e.event === 'text' && String(e.line).startsWith('Forwarding '));
  return String(line.line).split(' ')[1] as string;
}
