/**
 * Reads the server name (SNI) and ALPN offers from a TLS ClientHello before any TLS library sees
 * it (RFC 8446 §4.1.2, RFC 6066 §3, RFC 7301 §3.1), so that a tcps listener can pick a certificate
 * (or an ACME challenge, or a passthrough tunnel) first. Only what routing needs is read; the
 * bytes themselves go on untouched.
 */

/** The ALPN protocol of ACME's TLS-ALPN-01 validations (RFC 8737). */
export const ACME_TLS_ALPN = 'acme-tls/1';

/** What routing needs of a ClientHello. */
export interface ClientHello {
  /** The host_name of the server_name extension, lower-cased; undefined when none was sent. */
  serverName: string | undefined;
  /** The protocols the client offers by ALPN, in its order. */
  alpn: string[];
}

/**
 * A ClientHello's handshake message may be split over several records; one this long in all is
 * refused (the largest seen in practice, with post-quantum key shares, are under 2 KiB).
 */
export const MAX_CLIENT_HELLO_BYTES = 16_384;

const RECORD_HEADER = 5;
const CONTENT_HANDSHAKE = 0x16;
const HANDSHAKE_CLIENT_HELLO = 0x01;
const EXTENSION_SERVER_NAME = 0;
const EXTENSION_ALPN = 16;

/**
 * Parses the ClientHello at the start of `data`: the hello, 'incomplete' when more bytes are
 * needed, or an Error saying what is wrong (then the stream is not TLS, or not a TLS we read).
 */
export function parseClientHello(data: Buffer): ClientHello | 'incomplete' | Error {
  const message = handshakeMessage(data);
  if (typeof message === 'string' || message instanceof Error) return message;
  try {
    return readHello(new Reader(message));
  } catch (error) {
    return error as Error;
  }
}

/** Joins the fragments of the first handshake message from consecutive handshake records. */
function handshakeMessage(data: Buffer): Buffer | 'incomplete' | Error {
  const fragments: Buffer[] = [];
  let have = 0;
  let offset = 0;
  for (;;) {
    if (data.length < offset + RECORD_HEADER) return 'incomplete';
    if (data[offset] !== CONTENT_HANDSHAKE)
      return new Error(offset === 0 ? 'not a TLS handshake' : 'ClientHello interrupted by another record');
    const length = data.readUInt16BE(offset + 3);
    if (length === 0) return new Error('empty TLS record');
    const end = offset + RECORD_HEADER + length;
    const fragment = data.subarray(offset + RECORD_HEADER, Math.min(end, data.length));
    fragments.push(fragment);
    have += fragment.length;
    const joined = fragments.length === 1 ? fragment : Buffer.concat(fragments, have);
    if (joined.length >= 4) {
      if (joined[0] !== HANDSHAKE_CLIENT_HELLO)
        return new Error('the first handshake message is not a ClientHello');
      const needed = 4 + joined.readUIntBE(1, 3);
      if (needed > MAX_CLIENT_HELLO_BYTES)
        return new Error(`ClientHello of ${needed} bytes is over ${MAX_CLIENT_HELLO_BYTES}`);
      if (joined.length >= needed) return joined.subarray(4, needed);
    }
    if (end > data.length) return 'incomplete';
    if (end > MAX_CLIENT_HELLO_BYTES + 64 * RECORD_HEADER)
      return new Error('ClientHello spread over too many records');
    offset = end;
  }
}

function readHello(reader: Reader): ClientHello {
  reader.skip(2 + 32); // legacy_version, random
  reader.skip(reader.u8()); // legacy_session_id
  reader.skip(reader.u16()); // cipher_suites
  reader.skip(reader.u8()); // legacy_compression_methods
  const hello: ClientHello = { serverName: undefined, alpn: [] };
  if (reader.done) return hello; // an SSL 3.0-era hello without extensions
  const extensions = reader.sub(reader.u16());
  while (!extensions.done) {
    const type = extensions.u16();
    const body = extensions.sub(extensions.u16());
    if (type === EXTENSION_SERVER_NAME) hello.serverName = readServerName(body);
    else if (type === EXTENSION_ALPN) hello.alpn = readAlpn(body);
  }
  return hello;
}

function readServerName(body: Reader): string | undefined {
  const list = body.sub(body.u16());
  while (!list.done) {
    const nameType = list.u8();
    const name = list.bytes(list.u16());
    // host_name is the only type defined; its bytes are an ASCII DNS name.
    if (nameType === 0) {
      const text = name.toString('latin1').toLowerCase().replace(/\.$/, '');
      if (!/^[a-z0-9._-]{1,253}$/.test(text)) throw new Error('the server name is not a DNS name');
      return text;
    }
  }
  return undefined;
}

function readAlpn(body: Reader): string[] {
  const list = body.sub(body.u16());
  const protocols: string[] = [];
  while (!list.done) protocols.push(list.bytes(list.u8()).toString('latin1'));
  return protocols;
}

/** A bounds-checked cursor: reading past the end throws instead of returning garbage. */
class Reader {
  #offset = 0;
  readonly buffer: Buffer;
  constructor(buffer: Buffer) {
    this.buffer = buffer;
  }
  get done(): boolean {
    return this.#offset >= this.buffer.length;
  }
  u8(): number {
    return this.bytes(1)[0] as number;
  }
  u16(): number {
    return this.bytes(2).readUInt16BE(0);
  }
  skip(length: number): void {
    this.bytes(length);
  }
  sub(length: number): Reader {
    return new Reader(this.bytes(length));
  }
  bytes(length: number): Buffer {
    if (this.#offset + length > this.buffer.length) throw new Error('ClientHello is truncated');
    const slice = this.buffer.subarray(this.#offset, this.#offset + length);
    this.#offset += length;
    return slice;
  }
}
