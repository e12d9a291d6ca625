import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmod, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadKeyFile } from '../src/keys/key-file.js';
import { keyLabel, serviceLabel } from '../src/keys/label.js';
import { startCli } from './helpers/processes.js';

/**
 * The label computed without Postern's code: openssl extracts the raw public key, coreutils and
 * openssl build the RFC 7638 thumbprint input, hash it and base32 it.
 */
function independentLabel(keyFile: string): string {
  const script = `
    set -eu
    x=$(openssl pkey -in "$1" -pubout -outform DER | tail -c 32 | base64 -w0 | tr '+/' '-_' | tr -d '=')
    printf '{"crv":"Ed25519","kty":"OKP","x":"%s"}' "$x" | openssl dgst -sha256 -binary | base32 -w0 | tr -d '=' | tr 'A-Z' 'a-z'
  `;
  return execFileSync('bash', ['-c', script, 'label', keyFile]).toString().trim();
}

describe('keys and labels', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'postern-keys-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  test('postern keygen writes a PKCS#8 ed25519 key with mode 0600 and prints its label', async () => {
    const file = join(dir, 'a.key');
    const cli = startCli(['keygen', '--out', file, '--json']);
    const event = await cli.nextEvent((e) => e.event === 'key');
    assert.equal(await cli.exited, 0);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    const pem = execFileSync('openssl', ['pkey', '-in', file, '-text', '-noout']).toString();
    assert.match(pem, /ED25519 Private-Key/);
    assert.equal(event.label, independentLabel(file));
  });

  test('the label is exactly base32(SHA-256(JWK thumbprint input)), 52 lowercase characters', async () => {
    for (let i = 0; i < 5; i++) {
      const file = join(dir, `k${i}.key`);
      assert.equal(await startCli(['keygen', '--out', file]).exited, 0);
      const label = keyLabel(loadKeyFile(file).publicKey);
      assert.match(label, /^[a-z2-7]{52}$/);
      assert.equal(label, independentLabel(file));
    }
  });

  test('service labels: the default service is the key label; named ones are base32(SHA-256(label ‖ name))', () => {
    const keyLabelText = 'a'.repeat(52);
    assert.equal(serviceLabel(keyLabelText, 'default'), keyLabelText);
    const expected = execFileSync('bash', [
      '-c',
      `printf '%s' "${keyLabelText}redis" | openssl dgst -sha256 -binary | base32 -w0 | tr -d '=' | tr 'A-Z' 'a-z'`,
    ])
      .toString()
      .trim();
    assert.equal(serviceLabel(keyLabelText, 'redis'), expected);
  });

  test('postern id prints the label of a key', async () => {
    const file = join(dir, 'id.key');
    assert.equal(await startCli(['keygen', '--out', file]).exited, 0);
    const cli = startCli(['id', '--key', file]);
    const line = await cli.nextEvent((e) => e.event === 'text');
    assert.equal(line.line, independentLabel(file));
  });

  test('a key file other users can read is refused with a clear message and exit 1', async () => {
    const file = join(dir, 'open.key');
    assert.equal(await startCli(['keygen', '--out', file]).exited, 0);
    await chmod(file, 0o644);
    const cli = startCli(['id', '--key', file]);
    assert.equal(await cli.exited, 1);
    assert.equal(
      cli.stderr(),
      `postern id: key file ${file} is accessible by other users (mode 0644); run: chmod 600 ${file}\n`,
    );
  });

  test('keygen does not overwrite an existing key', async () => {
    const file = join(dir, 'a.key');
    const cli = startCli(['keygen', '--out', file]);
    assert.equal(await cli.exited, 1);
    assert.match(cli.stderr(), /already exists/);
  });
});
