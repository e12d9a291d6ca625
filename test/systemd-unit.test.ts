import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { requireBinary } from './helpers/binaries.js';
import { ROOT } from './helpers/doc-lines.js';
import { CLI } from './helpers/processes.js';

const UNIT = join(ROOT, 'deploy', 'postern-relay.service');
const dir = mkdtempSync(join(tmpdir(), 'postern-unit-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function analyze(...args: string[]): Promise<{ code: number; output: string }> {
  const binary = requireBinary('systemd-analyze', 'systemd');
  return new Promise((resolve) =>
    execFile(binary, args, (error, stdout, stderr) =>
      resolve({ code: error === null ? 0 : Number(error.code ?? 1), output: stdout + stderr }),
    ),
  );
}

/** The unit as shipped, but starting the CLI built here (verify checks that ExecStart exists). */
function unitHere(): string {
  const postern = join(dir, 'postern');
  writeFileSync(postern, `#!/bin/sh\nexec ${process.execPath} ${CLI} "$@"\n`);
  chmodSync(postern, 0o755);
  const path = join(dir, 'postern-relay.service');
  const text = readFileSync(UNIT, 'utf8');
  assert.match(text, /^ExecStart=\/usr\/bin\/postern relay --config \/etc\/postern\/postern\.yaml$/m);
  writeFileSync(path, text.replace('/usr/bin/postern', postern));
  return path;
}

test('deploy/postern-relay.service passes systemd-analyze verify without a single warning', async () => {
  const { code, output } = await analyze('verify', unitHere());
  assert.equal(code, 0, output);
  // verify exits 0 for settings it ignores ("Failed to parse …, ignoring"): none may be printed.
  assert.equal(output.trim(), '');
});

test('the unit is hardened: a dedicated user, only CAP_NET_BIND_SERVICE, read-only system, exposure "OK"', async () => {
  const text = readFileSync(UNIT, 'utf8');
  for (const line of [
    'User=postern',
    'AmbientCapabilities=CAP_NET_BIND_SERVICE',
    'CapabilityBoundingSet=CAP_NET_BIND_SERVICE',
    'NoNewPrivileges=yes',
    'ProtectSystem=strict',
    'StateDirectory=postern',
    'ExecReload=/bin/kill -HUP $MAINPID',
  ])
    assert.ok(text.split('\n').includes(line), `${line} is missing`);
  const { output } = await analyze('security', '--offline=true', unitHere());
  const score = Number((output.match(/Overall exposure level for \S+: ([\d.]+)/) as string[])[1]);
  // systemd's scale: 0 (locked down) to 10 (exposed); below 2 is the best band, "OK".
  assert.ok(score < 2, `exposure ${score}:\n${output}`);
});
