import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { generateAgentKey, writeKeyFile } from '../src/keys/key-file.js';
import { keyLabel } from '../src/keys/label.js';
import { makeCertificates, type TestCertificates } from './helpers/certs.js';
import { cleanUp } from './helpers/cleanup.js';
import { curlResponse } from './helpers/curl.js';
import { type Origin, startOrigin } from './helpers/origin.js';
import { type CliProcess, startCli } from './helpers/processes.js';

let dir: string;
let origin: Origin;
let certs: { a: TestCertificates; b: TestCertificates };
const keys: { file: string; label: string }[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'postern-reload-'));
  origin = await startOrigin();
  certs = { a: makeCertificates(), b: makeCertificates() };
  for (const name of ['one', 'two']) {
    const key = generateAgentKey();
    const file = join(dir, `${name}.key`);
    writeKeyFile(file, key);
    keys.push({ file, label: keyLabel(key.publicKey) });
  }
  // Agents trust both CAs: what the relay serves is checked by the visitors (curl --cacert).
  writeFileSync(join(dir, 'cas.pem'), readFileSync(certs.a.ca, 'utf8') + readFileSync(certs.b.ca, 'utf8'));
});
after(() =>
  cleanUp(
    () => origin?.close(),
    () => rm(dir, { recursive: true, force: true }),
  ),
);

/** The relay's section of the config file. */
function writeConfig(lines: Record<string, string>): void {
  const body = Object.entries(lines)
    .map(([name, value]) => `  ${name}: ${value}`)
    .join('\n');
  writeFileSync(
    join(dir, 'postern.yaml'),
    `relay:\n  listen:\n    - tcps://127.0.0.1:0\n  admin: 'off'\n${body}\n`,
  );
}

test('SIGHUP: new allowed keys and a new certificate without dropping a session; what needs a restart is named', async () => {
  const [one, two] = keys as [{ file: string; label: string }, { file: string; label: string }];
  writeFileSync(join(dir, 'allowed-one'), `${one.label}\n`);
  writeFileSync(join(dir, 'allowed-both'), `${one.label}\n${two.label}\n`);
  writeConfig({
    'allowed-keys': join(dir, 'allowed-one'),
    'tls-cert': certs.a.cert,
    'tls-key': certs.a.key,
  });
  const relay = startCli(['relay', '--config', join(dir, 'postern.yaml'), '--json']);
  const agents: CliProcess[] = [];
  const expose = (key: string): CliProcess => {
    const agent = startCli(
      ['expose', origin.url, '--relay', `tcps://localhost:${port}`, '--key', key, '--json', '--no-inspect'],
      { NODE_EXTRA_CA_CERTS: join(dir, 'cas.pem') },
    );
    agents.push(agent);
    return agent;
  };
  let port = 0;
  try {
    const listening = await relay.nextEvent((e) => e.event === 'listening');
    port = Number(
      String((listening.listen as string[])[0])
        .split(':')
        .pop(),
    );
    const first = expose(one.file);
    const ready = await first.nextEvent((e) => e.event === 'ready');
    const label = (ready.services as { label: string }[])[0]?.label as string;
    const visit = (ca: string) =>
      curlResponse([
        '--cacert',
        ca,
        '--connect-to',
        `::127.0.0.1:${port}`,
        `https://localhost:${port}/${label}/hello`,
      ]);
    assert.equal((await visit(certs.a.ca)).status, 200);
    const refused = expose(two.file);
    await refused.nextEvent((e) => e.event === 'error' && e.code === 'POSTERN_REGISTRATION_REJECTED');

    // The second key allowed, the second certificate, and an option that needs a restart.
    writeConfig({
      'allowed-keys': join(dir, 'allowed-both'),
      'tls-cert': certs.b.cert,
      'tls-key': certs.b.key,
      'drain-timeout': '1234',
    });
    relay.child.kill('SIGHUP');
    const reloaded = await relay.nextEvent((e) => e.event === 'reloaded');
    assert.deepEqual(reloaded.reloaded, [
      `allowed keys (2 from ${join(dir, 'allowed-both')})`,
      `TLS certificate (${certs.b.cert})`,
    ]);
    assert.deepEqual(reloaded.failed, []);
    assert.deepEqual(reloaded.restartNeeded, ['drain-timeout']);

    // New connections get the new certificate; the first agent's session never closed.
    assert.equal((await visit(certs.b.ca)).status, 200);
    assert.notEqual((await visit(certs.a.ca)).status, 200, 'the old certificate is no longer served');
    const second = expose(two.file);
    await second.nextEvent((e) => e.event === 'ready');
    assert.equal(relay.child.exitCode, null);

    // A file that does not parse changes nothing and is named; the relay goes on.
    writeFileSync(join(dir, 'postern.yaml'), 'relay:\n  listen: [\n');
    relay.child.kill('SIGHUP');
    const broken = await relay.nextEvent((e) => e.event === 'reloaded');
    assert.equal((broken.failed as { what: string }[])[0]?.what, 'configuration');
    assert.equal((await visit(certs.b.ca)).status, 200);
    // Through all of it the first agent never lost a session (its events so far hold no disconnect).
    await assert.rejects(first.nextEvent((e) => e.event === 'disconnected', 100));
  } finally {
    await cleanUp(...agents.map((agent) => () => agent.stop('SIGINT')), () => relay.stop());
  }
});
