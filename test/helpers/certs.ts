import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';

export interface TestCertificates {
  dir: string;
  ca: string;
  cert: string;
  key: string;
}

/**
 * A throwaway CA and a server certificate for `names` (by default localhost and *.tunnel.test) and
 * 127.0.0.1, made with openssl. (Not *.localhost: TLS clients refuse a wildcard directly under a
 * one-label name.)
 */
export function makeCertificates(names = ['localhost', '*.tunnel.test']): TestCertificates {
  const dir = mkdtempSync(join(tmpdir(), 'postern-certs-'));
  const path = (name: string): string => join(dir, name);
  const openssl = (...args: string[]): void => {
    execFileSync('openssl', args, { stdio: 'pipe' });
  };
  openssl(
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-days',
    '2',
    '-subj',
    '/CN=Postern Test CA',
    '-keyout',
    path('ca.key'),
    '-out',
    path('ca.pem'),
  );
  openssl(
    'req',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-subj',
    '/CN=localhost',
    '-keyout',
    path('server.key'),
    '-out',
    path('server.csr'),
  );
  writeFileSync(
    path('ext.cnf'),
    `subjectAltName=${names.map((name) => `DNS:${name}`).join(',')},IP:127.0.0.1\nbasicConstraints=CA:FALSE\n`,
  );
  openssl(
    'x509',
    '-req',
    '-in',
    path('server.csr'),
    '-CA',
    path('ca.pem'),
    '-CAkey',
    path('ca.key'),
    '-CAcreateserial',
    '-days',
    '2',
    '-extfile',
    path('ext.cnf'),
    '-out',
    path('server.pem'),
  );
  return { dir, ca: path('ca.pem'), cert: path('server.pem'), key: path('server.key') };
}

/**
 * The certificate `host`:`port` shows when asked for `servername` (not verified: the caller checks
 * it), or the error the handshake ended with.
 */
export function servedCertificate(
  port: number,
  servername: string,
  host = '127.0.0.1',
): Promise<X509Certificate | Error> {
  return new Promise((resolve) => {
    const socket = tlsConnect({ host, port, servername, rejectUnauthorized: false });
    socket.once('secureConnect', () => {
      resolve(new X509Certificate(socket.getPeerCertificate().raw));
      socket.destroy();
    });
    socket.once('error', resolve);
  });
}
