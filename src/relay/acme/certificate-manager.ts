import { X509Certificate } from 'node:crypto';
import { createSecureContext, type SecureContext } from 'node:tls';
import type { Logger } from '../../log.js';
import { ACME_TLS_ALPN, type ClientHello } from '../../transport/client-hello.js';
import type { TlsRoute } from '../../transport/listen.js';
import type { AcmeIssuer } from './acme-issuer.js';
import type { CertificateStore, StoredCertificate } from './certificate-store.js';

export interface CertificateManagerOptions {
  /** The relay's domain: certificates are for it and `<label>.<domain>`, nothing else. */
  domain: string;
  issuer: Pick<AcmeIssuer, 'issue' | 'alpnChallenge'>;
  store: CertificateStore;
  /** How names are proven: one wildcard by DNS-01, else each name on demand. */
  mode: 'dns-01' | 'tls-alpn-01' | 'http-01';
  /** Whether a label is a live tunnel: only those (and the domain) get certificates on demand. */
  isLiveLabel: (label: string) => boolean | Promise<boolean>;
  /** Orders running at once; more wait, up to maxWaitingOrders. */
  maxOrders: number;
  maxWaitingOrders: number;
  /** After a failed order the name waits this long, doubling per failure up to a day, ms. */
  retryAfterFailureMs: number;
  /** How long one node may hold the right to order a name (cluster mode), ms. */
  orderLeaseMs: number;
  /** How often certificates are checked for renewal, ms. */
  renewCheckIntervalMs: number;
  /** The clock validity and renewal are judged by (tests move it); Date.now by default. */
  now: () => number;
  log: Logger;
  /** Told of every order that finished. */
  onOrder?: ((result: 'issued' | 'failed') => void) | undefined;
}

interface HeldCertificate {
  id: string;
  context: SecureContext;
  serial: string;
  notBefore: number;
  notAfter: number;
  /** Two thirds into the certificate's lifetime. */
  renewAt: number;
}

const MAX_RETRY_MS = 24 * 3_600_000;
/** While another node orders a name, its result is looked for this often, ms. */
const LOCK_POLL_MS = 1_000;

/**
 * The certificates of an ACME relay: which name gets one (the domain and live tunnels only, or one
 * wildcard), each ordered once however many handshakes wait for it, a bounded number of orders at
 * once, a growing pause after failures, and renewal two thirds into each lifetime.
 */
export class CertificateManager {
  readonly #opts: CertificateManagerOptions;
  readonly #held = new Map<string, HeldCertificate>();
  readonly #ordering = new Map<string, Promise<HeldCertificate | undefined>>();
  readonly #failures = new Map<string, { count: number; retryAt: number }>();
  readonly #waiting: (() => void)[] = [];
  #running = 0;
  #timer: NodeJS.Timeout | undefined;
  #renewing: Promise<void> | undefined;
  #closed = false;

  constructor(options: CertificateManagerOptions) {
    this.#opts = options;
  }

  /** Loads what the store holds for the domain (in DNS mode: orders the wildcard if missing), and checks renewals from now on. */
  start(): void {
    this.#timer = setInterval(() => void this.checkRenewals(), this.#opts.renewCheckIntervalMs);
    this.#timer.unref();
    // Ready before the first visitor: in DNS mode the wildcard serves every name.
    void this.certificateFor(this.#opts.domain);
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#timer);
    for (const wake of this.#waiting.splice(0)) wake();
  }

  /** The tcps listener's router (listen.ts): ACME challenges, then the certificate for the name. */
  async route(hello: ClientHello): Promise<TlsRoute> {
    const name = hello.serverName ?? this.#opts.domain;
    if (hello.alpn.includes(ACME_TLS_ALPN)) {
      const context = await this.#opts.issuer.alpnChallenge(name);
      return context === undefined
        ? { refuse: `no TLS-ALPN-01 challenge open for ${name}` }
        : { context, alpn: [ACME_TLS_ALPN], challenge: true };
    }
    const held = await this.certificateFor(name);
    return held === undefined ? { refuse: `no certificate for ${name}` } : { context: held.context };
  }

  /** Certificates held now, for /metrics. */
  certificates(): { name: string; notAfter: number }[] {
    return [...this.#held.values()].map((h) => ({ name: h.id, notAfter: h.notAfter }));
  }

  /** The certificate that serves `name`: held, stored, or ordered now if the name may have one. */
  async certificateFor(name: string): Promise<HeldCertificate | undefined> {
    const id = this.#idFor(name);
    if (id === undefined) return undefined;
    const held = this.#held.get(id);
    if (held !== undefined && held.notAfter > this.#opts.now()) return held;
    const pending = this.#ordering.get(id);
    if (pending !== undefined) return pending;
    // A name that may not have a certificate costs no store read: strangers send any name they like.
    if (!(await this.#mayOrder(name))) return undefined;
    const stored = await this.#load(id);
    if (stored !== undefined && stored.notAfter > this.#opts.now()) return stored;
    return this.#order(id);
  }

  /** Renews every held certificate past two thirds of its life (not one whose tunnel is gone). */
  checkRenewals(): Promise<void> {
    this.#renewing ??= (async () => {
      for (const held of [...this.#held.values()]) {
        if (this.#closed || this.#opts.now() < held.renewAt) continue;
        const name = held.id.replace(/^\*\./, '');
        if (!(await this.#mayOrder(name))) continue;
        await this.#order(held.id, held.serial);
      }
    })().finally(() => {
      this.#renewing = undefined;
    });
    return this.#renewing;
  }

  /** `*.<domain>` in DNS mode; the name itself when it is the domain or one label under it. */
  #idFor(name: string): string | undefined {
    const { domain } = this.#opts;
    const label =
      name === domain ? '' : name.endsWith(`.${domain}`) ? name.slice(0, -domain.length - 1) : undefined;
    if (label === undefined || label.includes('.')) return undefined;
    return this.#opts.mode === 'dns-01' ? `*.${domain}` : name;
  }

  async #mayOrder(name: string): Promise<boolean> {
    if (this.#opts.mode === 'dns-01' || name === this.#opts.domain) return true;
    const label = name.slice(0, -this.#opts.domain.length - 1);
    // Only names an agent registered: a stranger's made-up names would spend the CA's rate limits.
    return this.#opts.isLiveLabel(label);
  }

  /** One order per id at a time; `replacing`: the serial a renewal replaces. */
  #order(id: string, replacing?: string): Promise<HeldCertificate | undefined> {
    let pending = this.#ordering.get(id);
    if (pending === undefined) {
      pending = this.#orderNow(id, replacing).finally(() => this.#ordering.delete(id));
      this.#ordering.set(id, pending);
    }
    return pending;
  }

  async #orderNow(id: string, replacing: string | undefined): Promise<HeldCertificate | undefined> {
    const failed = this.#failures.get(id);
    if (failed !== undefined && this.#opts.now() < failed.retryAt) return undefined;
    if (!(await this.#slot())) {
      this.#opts.log.warn({ name: id }, 'ACME order not started: too many orders waiting');
      return undefined;
    }
    try {
      return await this.#orderLocked(id, replacing);
    } catch (error) {
      const count = (failed?.count ?? 0) + 1;
      const wait = Math.min(this.#opts.retryAfterFailureMs * 2 ** (count - 1), MAX_RETRY_MS);
      this.#failures.set(id, { count, retryAt: this.#opts.now() + wait });
      this.#opts.onOrder?.('failed');
      this.#opts.log.warn(
        { name: id, error: (error as Error).message, retryInSeconds: Math.round(wait / 1000) },
        'ACME order failed',
      );
      const held = this.#held.get(id);
      return held !== undefined && held.notAfter > this.#opts.now() ? held : undefined;
    } finally {
      this.#running--;
      this.#waiting.shift()?.();
    }
  }

  /** Orders under the store's lock; while another node holds it, waits for that node's result. */
  async #orderLocked(id: string, replacing: string | undefined): Promise<HeldCertificate | undefined> {
    const deadline = Date.now() + this.#opts.orderLeaseMs;
    while (!this.#closed) {
      const release = await this.#opts.store.lock(id, this.#opts.orderLeaseMs);
      // Another node may have finished it meanwhile: its certificate is in the store.
      const stored = await this.#load(id);
      if (stored !== undefined && stored.serial !== replacing && this.#opts.now() < stored.renewAt) {
        await release?.();
        return stored;
      }
      if (release !== undefined) {
        try {
          return await this.#issue(id);
        } finally {
          await release();
        }
      }
      if (Date.now() > deadline) throw new Error('another node held the order lock past its lease');
      await new Promise((resolve) => setTimeout(resolve, LOCK_POLL_MS));
    }
    return undefined;
  }

  async #issue(id: string): Promise<HeldCertificate> {
    const { domain } = this.#opts;
    const names = id.startsWith('*.') ? [domain, id] : [id];
    const started = Date.now();
    const issued = await this.#opts.issuer.issue(names, this.#opts.mode);
    await this.#opts.store.save(id, issued);
    const held = this.#hold(id, issued);
    this.#failures.delete(id);
    this.#opts.onOrder?.('issued');
    this.#opts.log.info(
      { name: id, notAfter: new Date(held.notAfter).toISOString(), ms: Date.now() - started },
      'certificate issued',
    );
    return held;
  }

  /** Waits for a free order slot; false when too many wait already or the manager closed. */
  async #slot(): Promise<boolean> {
    if (this.#running < this.#opts.maxOrders) {
      this.#running++;
      return true;
    }
    if (this.#waiting.length >= this.#opts.maxWaitingOrders) return false;
    await new Promise<void>((resolve) => this.#waiting.push(resolve));
    this.#running++;
    return !this.#closed;
  }

  async #load(id: string): Promise<HeldCertificate | undefined> {
    const stored = await this.#opts.store.load(id).catch((error: Error) => {
      this.#opts.log.warn({ name: id, error: error.message }, 'stored certificate not read');
      return undefined;
    });
    if (stored === undefined) return undefined;
    try {
      return this.#hold(id, stored);
    } catch (error) {
      this.#opts.log.warn({ name: id, error: (error as Error).message }, 'stored certificate not usable');
      return undefined;
    }
  }

  #hold(id: string, stored: StoredCertificate): HeldCertificate {
    const certificate = new X509Certificate(stored.cert);
    const notBefore = Date.parse(certificate.validFrom);
    const notAfter = Date.parse(certificate.validTo);
    const held: HeldCertificate = {
      id,
      context: createSecureContext({ key: stored.key, cert: stored.cert }),
      serial: certificate.serialNumber,
      notBefore,
      notAfter,
      renewAt: notBefore + ((notAfter - notBefore) * 2) / 3,
    };
    const current = this.#held.get(id);
    if (current === undefined || current.notAfter <= held.notAfter) this.#held.set(id, held);
    return held;
  }
}
