import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { Writable } from 'node:stream';
import { describe, test } from 'node:test';
import { pino } from 'pino';
import { createAgent } from '../src/agent/agent.js';
import { generateAgentKey } from '../src/keys/key-file.js';
import { createJsonLogger } from '../src/log.js';
import { createRelay } from '../src/relay/relay.js';
import { startOrigin } from './helpers/origin.js';
import { CLI, startCli } from './helpers/processes.js';
import { readyWithin } from './helpers/tunnel.js';
import { until } from './helpers/wait.js';

describe('logs', () => {
  test('JSON lines carry the fields of every parent logger; levels below the threshold are dropped', () => {
    const lines: string[] = [];
    const log = createJsonLogger('info', (line) => lines.push(line)).child({ role: 'relay' });
    log.child({ session: 's1' }).info({ services: ['web'] }, 'agent session registered');
    log.debug('dropped');
    assert.equal(lines.length, 1);
    const record = JSON.parse(lines[0] as string);
    assert.deepEqual(
      { ...record, time: undefined },
      {
        time: undefined,
        level: 'info',
        msg: 'agent session registered',
        role: 'relay',
        session: 's1',
        services: ['web'],
      },
    );
  });

  test('pretty lines: time, level, message, key=value; a value with control characters stays on its line', () => {
    const lines: string[] = [];
    createJsonLogger('debug', (line) => lines.push(line), { role: 'agent' }, 'plain').warn(
      { reason: 'peer said "bye"\r\nX-Injected: 1', attempt: 3 },
      'lost the relay',
    );
    assert.equal(lines.length, 1);
    assert.match(
      lines[0] as string,
      /^\d\d:\d\d:\d\d\.\d{3} WARN {2}lost the relay {2}role=agent reason="peer said \\"bye\\"\\r\\nX-Injected: 1" attempt=3\n$/,
    );
  });

  test('a pino logger passed as is keeps every field, its bindings and its children', async () => {
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        for (const line of chunk.toString().split('\n')) if (line !== '') lines.push(JSON.parse(line));
        callback();
      },
    });
    const origin = await startOrigin();
    const relay = await createRelay({
      listen: ['tcp://127.0.0.1:0'],
      logger: pino({ level: 'debug', base: { app: 'test' } }, sink),
    });
    const agent = createAgent({
      relay: relay.addresses[0] as string,
      key: generateAgentKey(),
      services: [{ name: 'web', target: origin.url }],
    });
    try {
      await readyWithin(agent);
      await until(
        () => lines.some((line) => line.msg === 'agent session registered'),
        'pino logging the session',
      );
      const registered = lines.find((line) => line.msg === 'agent session registered') as Record<
        string,
        unknown
      >;
      assert.equal(registered.level, 30, 'pino level numbers: info');
      assert.equal(registered.app, 'test', "the pino logger's own bindings");
      assert.deepEqual(registered.services, ['web'], 'the per-call fields');
      assert.equal(typeof registered.session, 'string', 'the child logger fields (session, key)');
      assert.equal(typeof registered.key, 'string');
    } finally {
      await agent.close();
      await relay.close();
      await origin.close();
    }
  });

  test('postern relay: JSON when stderr is not a terminal; --log-format pretty; each agent session logs under a child naming it', async () => {
    const origin = await startOrigin();
    const relay = startCli(['relay', '--listen', 'tcp://127.0.0.1:0', '--admin', '127.0.0.1:0', '--json']);
    const pretty = startCli([
      'relay',
      '--listen',
      'tcp://127.0.0.1:0',
      '--admin',
      '127.0.0.1:0',
      '--log-format',
      'pretty',
    ]);
    try {
      const listening = await relay.nextEvent((e) => e.event === 'listening');
      const address = (listening.listen as string[])[0] as string;
      const agent = createAgent({
        relay: address,
        key: generateAgentKey(),
        services: [{ target: origin.url }],
      });
      const [service] = await readyWithin(agent);
      await agent.close();
      // The relay's stderr reaches this process through a pipe, possibly after the agent's answer.
      await until(() => relay.stderr().includes('agent session registered'), 'the registration log line');
      const records = relay
        .stderr()
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as Record<string, unknown>);
      const registered = records.find((r) => r.msg === 'agent session registered');
      assert.equal(registered?.key, service?.label);
      assert.match(String(registered?.session), /^[0-9a-f-]{36}$/);
      await pretty.nextEvent(() => true).catch(() => undefined);
      assert.match(
        pretty.stderr(),
        /^\d\d:\d\d:\d\d\.\d{3} INFO {2}relay listening {2}listen=\["tcp:\/\/127\.0\.0\.1:\d+"\]/m,
      );
      const bad = startCli(['relay', '--log-format', 'fancy']);
      assert.equal(await bad.exited, 2);
      assert.equal(
        bad.stderr(),
        'postern relay: --log-format must be one of auto, json, pretty (got "fancy")\n',
      );
    } finally {
      await relay.stop();
      await pretty.stop();
      await origin.close();
    }
  });
});

describe('colour on a terminal', () => {
  /** The relay's first log lines as a terminal shows them (a pseudo-terminal made by script(1)). */
  async function relayOnATerminal(env: NodeJS.ProcessEnv): Promise<string> {
    const command = `exec node ${CLI} relay --listen tcp://127.0.0.1:0 --admin off`;
    const child = spawn('script', ['-qefc', command, '/dev/null'], {
      env: { ...process.env, NO_COLOR: undefined, ...env },
      detached: true,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let seen = '';
    child.stdout.on('data', (chunk: Buffer) => {
      seen += chunk.toString('latin1');
    });
    try {
      await until(() => seen.includes('relay listening'), 'the relay to log that it listens');
      return seen;
    } finally {
      process.kill(-(child.pid as number), 'SIGKILL');
      await once(child, 'exit');
    }
  }

  test('levels are coloured on a terminal, and not when NO_COLOR is set', async () => {
    assert.match(await relayOnATerminal({}), /\x1b\[36mINFO \x1b\[0m relay listening/);
    const plain = await relayOnATerminal({ NO_COLOR: '1' });
    assert.match(plain, /INFO {2}relay listening/);
    assert.doesNotMatch(plain, /\x1b\[3\dm/);
  });
});
