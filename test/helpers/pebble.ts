import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { join } from 'node:path';
import { freePort, requireBinary, waitForPort } from './binaries.js';
import { makeCertificates } from './certs.js';
import type { Namespace } from './namespace.js';

export interface Pebble {
  /** The ACME directory URL. */
  directory: string;
  /** The CA file that signs pebble's own HTTPS certificate (--acme-ca-file). */
  caFile: string;
  /** pebble-challtestsrv's management URL (DNS-01 TXT records: /set-txt, /clear-txt). */
  challtestsrv: string;
  /** The root that signs the certificates pebble issues, PEM, written to this file. */
  issuedRoot(): Promise<string>;
  /** What pebble logged (the last 64 KiB). */
  log(): string;
  stop(): Promise<void>;
}

/**
 * Let's Encrypt's test CA (Debian's pebble) with pebble-challtestsrv as its DNS server: every name
 * resolves to 127.0.0.1, and pebble validates HTTP-01 on `httpPort` and TLS-ALPN-01 on `tlsPort`
 * of loopback (where the relay under test listens).
 */
export async function startPebble(ports: { httpPort: number; tlsPort: number }): Promise<Pebble> {
  const pebble = requireBinary('pebble', 'pebble');
  const challtestsrv = requireBinary('pebble-challtestsrv', 'pebble');
  const certs = makeCertificates(['localhost', '127.0.0.1']);
  const [acmePort, managementPort, dnsPort, challengeManagementPort] = await Promise.all([
    freePort(),
    freePort(),
    freePort(),
    freePort(),
  ]);
  const config = writeConfig(certs, ports, acmePort, managementPort);
  let output = '';
  const children: ChildProcess[] = [];
  const start = (binary: string, args: string[], env: Record<string, string> = {}): ChildProcess => {
    const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    const keep = (chunk: Buffer): void => {
      output = (output + chunk.toString()).slice(-65_536);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    children.push(child);
    return child;
  };
  const stop = async (): Promise<void> => {
    await Promise.all(
      children.map(async (child) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGKILL');
        await exited;
      }),
    );
  };
  try {
    start(challtestsrv, challtestsrvArgs(dnsPort, challengeManagementPort));
    start(pebble, ['-config', config, '-dnsserver', `127.0.0.1:${dnsPort}`], PEBBLE_ENV);
    await Promise.all([
      waitForPort(acmePort),
      waitForPort(managementPort),
      waitForPort(challengeManagementPort),
    ]);
  } catch (error) {
    await stop();
    throw new Error(`pebble did not start: ${(error as Error).message}\n${output}`);
  }
  const agent = new Agent({ ca: readFileSync(certs.ca, 'utf8') });
  return {
    directory: `https://127.0.0.1:${acmePort}/dir`,
    caFile: certs.ca,
    challtestsrv: `http://127.0.0.1:${challengeManagementPort}`,
    issuedRoot: async () => {
      const pem = await new Promise<string>((resolve, reject) => {
        request(`https://127.0.0.1:${managementPort}/roots/0`, { agent }, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            body += chunk;
          });
          res.on('end', () => resolve(body));
        })
          .on('error', reject)
          .end();
      });
      const file = join(certs.dir, 'issued-root.pem');
      writeFileSync(file, pem);
      return file;
    },
    log: () => output,
    stop,
  };
}

/** No random sleeps before validation, no nonces refused at random: the tests wait for results, not luck. */
const PEBBLE_ENV = { PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: '0', PEBBLE_AUTHZREUSE: '0' };

/** challtestsrv as DNS only: every name is 127.0.0.1; TXT records are set through its API. */
function challtestsrvArgs(dnsPort: number, managementPort: number): string[] {
  return [
    '-defaultIPv4',
    '127.0.0.1',
    '-defaultIPv6',
    '',
    '-dns01',
    `127.0.0.1:${dnsPort}`,
    '-http01',
    '',
    '-https01',
    '',
    '-tlsalpn01',
    '',
    '-management',
    `127.0.0.1:${managementPort}`,
  ];
}

function writeConfig(
  certs: { dir: string; cert: string; key: string },
  ports: { httpPort: number; tlsPort: number },
  acmePort: number,
  managementPort: number,
): string {
  const config = join(certs.dir, 'pebble.json');
  writeFileSync(
    config,
    JSON.stringify({
      pebble: {
        listenAddress: `127.0.0.1:${acmePort}`,
        managementListenAddress: `127.0.0.1:${managementPort}`,
        certificate: certs.cert,
        privateKey: certs.key,
        httpPort: ports.httpPort,
        tlsPort: ports.tlsPort,
        ocspResponderURL: '',
        externalAccountBindingRequired: false,
      },
    }),
  );
  return config;
}

/**
 * pebble inside a test namespace, on the ports a public CA uses: it validates HTTP-01 on 80 and
 * TLS-ALPN-01 on 443 of the namespace's loopback, where every name resolves.
 */
export async function startPebbleIn(
  ns: Namespace,
): Promise<Pick<Pebble, 'directory' | 'caFile' | 'issuedRoot' | 'stop'>> {
  requireBinary('pebble', 'pebble');
  requireBinary('pebble-challtestsrv', 'pebble');
  const certs = makeCertificates(['localhost', '127.0.0.1']);
  const config = writeConfig(certs, { httpPort: 80, tlsPort: 443 }, 14000, 15000);
  const dns = ns.start(
    `pebble-challtestsrv ${challtestsrvArgs(8053, 8055)
      .map((a) => `'${a}'`)
      .join(' ')}`,
  );
  const ca = ns.start(`pebble -config ${config} -dnsserver 127.0.0.1:8053`, PEBBLE_ENV);
  try {
    await Promise.all([dns.line(/Starting management server/), ca.line(/ACME directory available/)]);
  } catch (error) {
    await Promise.all([dns.stop('SIGKILL'), ca.stop('SIGKILL')]);
    throw new Error(`pebble did not start: ${(error as Error).message}\n${ca.output()}`);
  }
  return {
    directory: 'https://127.0.0.1:14000/dir',
    caFile: certs.ca,
    issuedRoot: async () => {
      const { stdout } = await ns.run(`curl -sS --cacert ${certs.ca} https://127.0.0.1:15000/roots/0`);
      const file = join(certs.dir, 'issued-root.pem');
      writeFileSync(file, stdout);
      return file;
    },
    stop: async () => {
      await Promise.all([dns.stop('SIGKILL'), ca.stop('SIGKILL')]);
    },
  };
}
