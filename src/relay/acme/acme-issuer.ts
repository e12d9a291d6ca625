import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { createSecureContext, rootCertificates, type SecureContext } from 'node:tls';
import type * as AcmeClient from 'acme-client';
import type { Logger } from '../../log.js';
import type { CertificateStore, StoredCertificate } from './certificate-store.js';

type Challenge = AcmeClient.Authorization['challenges'][number];

/** The challenge a name is proven with: on the tcps port, on the plain-HTTP port, or in DNS. */
export type ChallengeType = 'tls-alpn-01' | 'http-01' | 'dns-01';

export interface AcmeIssuerOptions {
  directoryUrl: string;
  /** The account's contact address. */
  email: string;
  /** Extra CA (PEM file) that signs the ACME server's own HTTPS certificate, e.g. pebble's. */
  caFile?: string | undefined;
  /** The DNS-01 hook: an executable run as `<hook> set|clear <record> <value>`. */
  dnsHook?: string | undefined;
  store: CertificateStore;
  log: Logger;
}

/** A hook that has not exited after this long is killed and the order fails, ms. */
export const DNS_HOOK_TIMEOUT_MS = 300_000;
/** Output kept of a hook, for the message when it fails. */
const HOOK_OUTPUT_BYTES = 64 * 1024;
/** A challenge answer shared with the cluster is dropped after this even if the order never ends, ms. */
const CHALLENGE_TTL_MS = 600_000;
/** Status polls of one challenge or order: 0.5 s doubling to 10 s, 14 tries (about 2 minutes). */
const POLLING = { backoffAttempts: 14, backoffMin: 500, backoffMax: 10_000 } as const;

/**
 * Orders certificates from an ACME CA (RFC 8555) with acme-client, and answers the CA's
 * challenges while an order is open: HTTP-01 tokens for the plain-HTTP listener, TLS-ALPN-01
 * certificates for the tcps listener, TXT records through the DNS hook.
 */
export class AcmeIssuer {
  readonly #opts: AcmeIssuerOptions;
  readonly #httpTokens = new Map<string, string>();
  readonly #alpnContexts = new Map<string, SecureContext>();
  #client: Promise<{ acme: typeof AcmeClient; client: AcmeClient.Client }> | undefined;

  constructor(options: AcmeIssuerOptions) {
    this.#opts = options;
  }

  /** The key authorization to answer at /.well-known/acme-challenge/<token>, while one is open. */
  async httpChallenge(token: string): Promise<string | undefined> {
    return this.#httpTokens.get(token) ?? (await this.#shared(`http-01:${token}`));
  }

  /** The acme-tls/1 certificate to show for `name`, while its TLS-ALPN-01 challenge is open. */
  async alpnChallenge(name: string): Promise<SecureContext | undefined> {
    const local = this.#alpnContexts.get(name);
    if (local !== undefined) return local;
    // Another node of the cluster ordered it: the same certificate from its key authorization.
    const keyAuthorization = await this.#shared(`tls-alpn-01:${name}`);
    if (keyAuthorization === undefined) return undefined;
    return alpnContext(name, keyAuthorization);
  }

  async #shared(key: string): Promise<string | undefined> {
    return this.#opts.store.getChallenge(key).catch(() => undefined);
  }

  /**
   * Orders one certificate for `names` (the first is the common name when it fits in 64
   * characters; all are subject alternative names), proving each with `challenge`.
   */
  async issue(names: string[], challenge: ChallengeType): Promise<StoredCertificate> {
    const { acme, client } = await this.#account();
    const keyPem = (await acme.crypto.createPrivateEcdsaKey()).toString();
    const csr = await certificateRequest(names, keyPem);
    const order = await client.createOrder({ identifiers: names.map((value) => ({ type: 'dns', value })) });
    const authorizations = await client.getAuthorizations(order);
    const undo: (() => Promise<void>)[] = [];
    try {
      const open: Challenge[] = [];
      // Every challenge is put in place before the CA is told to look: a wildcard and its base
      // name share one TXT record name, and both values must be there when either is checked.
      for (const authz of authorizations) {
        if (authz.status === 'valid') continue;
        const found = authz.challenges.find((c) => c.type === challenge);
        if (found === undefined)
          throw new Error(`the CA offers no ${challenge} challenge for ${authz.identifier.value}`);
        const keyAuthorization = await client.getChallengeKeyAuthorization(found);
        undo.push(await this.#present(authz, found, keyAuthorization));
        open.push(found);
      }
      for (const found of open) await client.completeChallenge(found);
      await Promise.all(open.map((found) => client.waitForValidStatus(found)));
    } finally {
      for (const remove of undo)
        await remove().catch((error: Error) =>
          this.#opts.log.warn({ error: error.message }, 'ACME challenge not cleaned up'),
        );
    }
    const finalized = await client.finalizeOrder(order, csr);
    const cert = await client.getCertificate(finalized);
    return { key: keyPem, cert: cert.endsWith('\n') ? cert : `${cert}\n` };
  }

  async #present(
    authz: AcmeClient.Authorization,
    challenge: Challenge,
    keyAuthorization: string,
  ): Promise<() => Promise<void>> {
    const name = authz.identifier.value;
    const type: string = challenge.type;
    this.#opts.log.info({ name, challenge: type }, 'ACME challenge ready');
    const { store } = this.#opts;
    if (challenge.type === 'http-01') {
      const { token } = challenge;
      this.#httpTokens.set(token, keyAuthorization);
      await store.putChallenge(`http-01:${token}`, keyAuthorization, CHALLENGE_TTL_MS);
      return async () => {
        this.#httpTokens.delete(token);
        await store.deleteChallenge(`http-01:${token}`);
      };
    }
    if (type === 'tls-alpn-01') {
      this.#alpnContexts.set(name, await alpnContext(name, keyAuthorization));
      await store.putChallenge(`tls-alpn-01:${name}`, keyAuthorization, CHALLENGE_TTL_MS);
      return async () => {
        this.#alpnContexts.delete(name);
        await store.deleteChallenge(`tls-alpn-01:${name}`);
      };
    }
    const hook = this.#opts.dnsHook;
    if (hook === undefined) throw new Error('dns-01 needs --acme-dns-hook');
    const record = `_acme-challenge.${name}`;
    await runDnsHook(hook, ['set', record, keyAuthorization]);
    return () => runDnsHook(hook, ['clear', record, keyAuthorization]);
  }

  /** The ACME client with this CA's account, created (and its key saved) on first use. */
  #account(): Promise<{ acme: typeof AcmeClient; client: AcmeClient.Client }> {
    if (this.#client !== undefined) return this.#client;
    const client = (async () => {
      // Loaded only when ACME is on: acme-client and its dependencies are most of a megabyte.
      const acme = await import('acme-client');
      if (this.#opts.caFile !== undefined) {
        // acme-client sends through its one axios instance: the CA file applies to this process.
        const ca = readFileSync(this.#opts.caFile, 'utf8');
        acme.axios.defaults.httpsAgent = new Agent({ ca: [...rootCertificates, ca], keepAlive: true });
      }
      let accountKey = await this.#opts.store.loadAccountKey();
      if (accountKey === undefined) {
        const made = (await acme.crypto.createPrivateEcdsaKey()).toString();
        await this.#opts.store.saveAccountKey(made);
        // In a cluster another node may have saved its key first: everyone uses the stored one.
        accountKey = (await this.#opts.store.loadAccountKey()) ?? made;
      }
      const account = new acme.Client({ directoryUrl: this.#opts.directoryUrl, accountKey, ...POLLING });
      // Agreeing to the CA's terms is what --acme-email asks for (docs/deploy-public.md).
      await account.createAccount({ termsOfServiceAgreed: true, contact: [`mailto:${this.#opts.email}`] });
      return { acme, client: account };
    })();
    this.#client = client;
    // A CA that could not be reached is asked again by the next order.
    client.catch(() => {
      this.#client = undefined;
    });
    return client;
  }
}

/** The self-signed acme-tls/1 certificate of RFC 8737 for `name`, as a TLS context. */
async function alpnContext(name: string, keyAuthorization: string): Promise<SecureContext> {
  const acme = await import('acme-client');
  // createAlpnCertificate reads only the identifier of the authorization.
  const authz = { identifier: { type: 'dns', value: name } } as AcmeClient.Authorization;
  const [key, cert] = await acme.crypto.createAlpnCertificate(authz, keyAuthorization);
  return createSecureContext({ key, cert });
}

/**
 * A CSR (PEM) for `names`: all of them subject alternative names, the first also the common name
 * when it fits. A common name is at most 64 characters (RFC 5280's ub-common-name), and every
 * `<label>.<domain>` is longer, so most have none; CAs read the SANs.
 */
export async function certificateRequest(names: string[], keyPem: string): Promise<Buffer> {
  const acme = await import('acme-client');
  const first = names[0] as string;
  const [, csr] = await acme.crypto.createCsr(
    { ...(first.length <= 64 ? { commonName: first } : {}), altNames: names },
    keyPem,
  );
  return csr;
}

/** Runs the DNS hook without a shell; resolves when it exits 0. */
export function runDnsHook(hook: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(
      hook,
      args,
      { timeout: DNS_HOOK_TIMEOUT_MS, maxBuffer: HOOK_OUTPUT_BYTES, killSignal: 'SIGKILL' },
      (error, _stdout, stderr) => {
        if (error === null) {
          resolve();
          return;
        }
        const said = String(stderr).trim().split('\n').pop() ?? '';
        const how =
          error.killed === true
            ? `did not finish within ${DNS_HOOK_TIMEOUT_MS / 1000} s`
            : typeof error.code === 'number'
              ? `exited with ${error.code}`
              : error.message;
        reject(new Error(`the DNS hook ${hook} ${args[0]} ${how}${said === '' ? '' : `: ${said}`}`));
      },
    );
  });
}
