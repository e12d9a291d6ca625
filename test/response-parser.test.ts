import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { formatRequestHead } from '../src/http/request-head.js';
import { ResponseError, type ResponseHead, ResponseParser } from '../src/http/response-parser.js';

interface Parsed {
  heads: ResponseHead[];
  body: string;
  trailers: Record<string, string | string[]> | undefined;
  ended: boolean;
  extra: boolean;
}

/** Feeds `bytes` to a parser in the pieces `cuts` makes, then tells it the target closed if asked. */
function parse(
  bytes: string,
  cuts: number[] = [],
  options: { head?: boolean; close?: boolean } = {},
): Parsed {
  const parsed: Parsed = { heads: [], body: '', trailers: undefined, ended: false, extra: false };
  const parser = new ResponseParser(
    {
      onHead: (head) => parsed.heads.push(head),
      onBody: (chunk) => {
        parsed.body += chunk.toString('latin1');
      },
      onEnd: (trailers) => {
        assert.equal(parsed.ended, false, 'onEnd once');
        parsed.ended = true;
        parsed.trailers = trailers;
      },
    },
    { bodiless: options.head ?? false },
  );
  const buffer = Buffer.from(bytes, 'latin1');
  let from = 0;
  for (const cut of [...new Set(cuts)].sort((a, b) => a - b).concat(buffer.length)) {
    if (cut <= from) continue;
    // A fresh buffer per piece: the parser must not rely on pieces sharing memory.
    parser.execute(Buffer.from(buffer.subarray(from, cut)));
    from = cut;
  }
  if (options.close) assert.equal(parser.finish(), true, 'whole at close');
  parsed.extra = parser.extraBytes;
  return parsed;
}

function failure(bytes: string, options: { head?: boolean } = {}): ResponseError {
  try {
    parse(bytes, [], options);
  } catch (error) {
    assert.ok(error instanceof ResponseError, String(error));
    return error;
  }
  assert.fail(`parsed without an error: ${JSON.stringify(bytes)}`);
}

const WELL_FORMED: { name: string; bytes: string; body: string; close?: boolean; head?: boolean }[] = [
  {
    name: 'Content-Length',
    bytes: 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world',
    body: 'hello world',
  },
  {
    name: 'chunked, with extensions and trailers',
    bytes:
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-sum\r\n\r\n5;name=v\r\nhello\r\n1\r\n \r\nA \r\n0123456789\r\n0\r\nX-Sum: 42\r\nX-Other: a\r\n\r\n',
    body: 'hello 0123456789',
  },
  {
    name: 'chunked, no trailers',
    bytes: 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n',
    body: 'abc',
  },
  {
    name: 'interim answers, then the response',
    bytes:
      'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n',
    body: '',
  },
  {
    name: 'read until close',
    bytes: 'HTTP/1.1 200 OK\r\n\r\nuntil the end',
    body: 'until the end',
    close: true,
  },
  {
    name: 'HEAD: a length but no body',
    bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n',
    body: '',
    head: true,
  },
  { name: 'HTTP/1.0, empty reason, no fields', bytes: 'HTTP/1.0 404\r\n\r\ngone', body: 'gone', close: true },
];

describe('the response parser', () => {
  for (const sample of WELL_FORMED) {
    test(`${sample.name}: the same head, body and trailers however the bytes are split`, () => {
      const options = { head: sample.head ?? false, close: sample.close ?? false };
      const whole = parse(sample.bytes, [], options);
      assert.equal(whole.body, sample.body);
      assert.equal(whole.ended, true);
      assert.equal(whole.heads.length, 1);
      // Every single cut, then random sets of cuts.
      for (let cut = 1; cut < sample.bytes.length; cut++)
        assert.deepEqual(parse(sample.bytes, [cut], options), whole, `cut at ${cut}`);
      fc.assert(
        fc.property(
          fc.array(fc.integer({ min: 1, max: sample.bytes.length - 1 }), { maxLength: 12 }),
          (cuts) => {
            assert.deepEqual(parse(sample.bytes, cuts, options), whole);
          },
        ),
        { numRuns: 200 },
      );
    });
  }

  test('the head: status, lowercase names, repeats as lists, the packed lines as written', () => {
    const [head] = parse(
      'HTTP/1.1 201 Created\r\nSet-Cookie: a=1\r\nX-Empty:\r\nset-cookie:  b=2 \t\r\nContent-Length: 0\r\nKeep-Alive: timeout=7\r\n\r\n',
    ).heads;
    assert.equal(head?.status, 201);
    assert.deepEqual(head?.headers['set-cookie'], ['a=1', 'b=2']);
    assert.equal(head?.headers['x-empty'], '');
    assert.equal(
      head?.packed,
      'Set-Cookie: a=1\r\nX-Empty:\r\nset-cookie:  b=2 \t\r\nContent-Length: 0\r\nKeep-Alive: timeout=7\r\n',
    );
    assert.equal(head?.reusable, true);
    assert.equal(head?.keepAliveMs, 7000);
  });

  test('which connections may carry another request', () => {
    const reusable = (bytes: string, close = false): boolean | undefined =>
      parse(bytes, [], { close }).heads[0]?.reusable;
    assert.equal(reusable('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'), true);
    assert.equal(reusable('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n'), false);
    assert.equal(reusable('HTTP/1.1 200 OK\r\nConnection: x, Close\r\nContent-Length: 0\r\n\r\n'), false);
    assert.equal(reusable('HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n'), false);
    assert.equal(reusable('HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n'), true);
    assert.equal(reusable('HTTP/1.1 200 OK\r\n\r\nbody', true), false, 'read until close');
    assert.equal(reusable('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nbody', true), false);
    // Bytes after the response: the next request's answer could not be told from them.
    assert.equal(parse('HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nab').extra, true);
    assert.equal(parse('HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na').extra, false);
  });

  test('a response cut short is not whole at close', () => {
    for (const cut of [
      'HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab',
      'HTTP/1.1 200 O',
    ]) {
      const parser = new ResponseParser({ onHead() {}, onBody() {}, onEnd() {} }, { bodiless: false });
      parser.execute(Buffer.from(cut));
      assert.equal(parser.finish(), false, cut);
    }
  });

  const MALFORMED: [string, string, RegExp][] = [
    ['not HTTP', 'SSH-2.0-OpenSSH_9\r\n\r\n', /HPE_INVALID_CONSTANT/],
    ['HTTP/2 status line', 'HTTP/2.0 200 OK\r\n\r\n', /HPE_INVALID_CONSTANT/],
    ['a bare LF in the head', 'HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n', /HPE_INVALID_CONSTANT/],
    [
      'a bare LF ending a field',
      'HTTP/1.1 200 OK\r\nA: b\nContent-Length: 0\r\n\r\n',
      /HPE_INVALID_HEADER_TOKEN/,
    ],
    [
      'a folded line',
      'HTTP/1.1 200 OK\r\nX-A: one\r\n two\r\nContent-Length: 0\r\n\r\n',
      /HPE_INVALID_HEADER_TOKEN.*folded/,
    ],
    ['space before the colon', 'HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n', /HPE_INVALID_HEADER_TOKEN/],
    [
      'a NUL in a value',
      'HTTP/1.1 200 OK\r\nX-A: a\0b\r\nContent-Length: 0\r\n\r\n',
      /HPE_INVALID_HEADER_TOKEN/,
    ],
    [
      'Content-Length and Transfer-Encoding',
      'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n',
      /HPE_UNEXPECTED_CONTENT_LENGTH/,
    ],
    [
      'conflicting lengths',
      'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n',
      /HPE_INVALID_CONTENT_LENGTH/,
    ],
    [
      'a length list that disagrees',
      'HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\n',
      /HPE_INVALID_CONTENT_LENGTH/,
    ],
    ['a signed length', 'HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\n', /HPE_INVALID_CONTENT_LENGTH/],
    [
      'a length past 2^53',
      'HTTP/1.1 200 OK\r\nContent-Length: 9999999999999999\r\n\r\n',
      /HPE_INVALID_CONTENT_LENGTH/,
    ],
    [
      'chunked not last',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n',
      /HPE_INVALID_TRANSFER_ENCODING/,
    ],
    [
      'chunked in HTTP/1.0',
      'HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n',
      /HPE_INVALID_TRANSFER_ENCODING/,
    ],
    [
      'a chunk size that is not hex',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
      /HPE_INVALID_CHUNK_SIZE/,
    ],
    [
      'a negative chunk size',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n',
      /HPE_INVALID_CHUNK_SIZE/,
    ],
    [
      'a chunk size past 2^52',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000\r\n',
      /HPE_INVALID_CHUNK_SIZE/,
    ],
    [
      'no CRLF after chunk data',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n',
      /HPE_STRICT/,
    ],
    ['an unasked 101', 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n', /HPE_INVALID_STATUS/],
    ['endless interim answers', 'HTTP/1.1 100 Continue\r\n\r\n'.repeat(17), /HPE_INVALID_STATUS/],
    [
      'a bad trailer',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nbad trailer\r\n\r\n',
      /HPE_INVALID_HEADER_TOKEN/,
    ],
  ];
  for (const [what, bytes, code] of MALFORMED) {
    test(`refused: ${what}`, () => {
      const error = failure(bytes);
      assert.match(`${error.code} ${error.message}`, code);
    });
  }

  test('bounded: a head, a chunk-size line and a trailer section over their limits are refused early', () => {
    const parser = new ResponseParser({ onHead() {}, onBody() {}, onEnd() {} }, { bodiless: false });
    parser.execute(Buffer.from('HTTP/1.1 200 OK\r\n'));
    // A head that never ends is refused once it passes 16 KiB, not held.
    assert.throws(() => {
      for (let i = 0; i < 100; i++) parser.execute(Buffer.from(`X-Filler-${i}: ${'v'.repeat(200)}\r\n`));
    }, /HPE_HEADER_OVERFLOW|over 16384 bytes/);
    assert.match(
      failure(`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;${'e'.repeat(5000)}`).code,
      /HPE_HEADER_OVERFLOW/,
    );
    const trailers = `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n${'X-T: v\r\n'.repeat(3000)}`;
    assert.match(failure(trailers).code, /HPE_HEADER_OVERFLOW/);
    assert.match(
      failure(`HTTP/1.1 200 OK\r\n${'A: b\r\n'.repeat(1001)}\r\n`).message,
      /more than 1000 header fields/,
    );
  });
});

describe('the response parser against arbitrary bytes', () => {
  // Heads and bodies built from fragments of real responses mixed with random text: the parser
  // either reads a response or refuses with a ResponseError; nothing else escapes it (no
  // TypeError, RangeError, a second onEnd…), however the bytes are split.
  const statusLines = [
    'HTTP/1.1 200 OK\r\n',
    'HTTP/1.0 200 OK\r\n',
    'HTTP/1.1 100 Continue\r\n',
    'HTTP/1.1 204 No Content\r\n',
  ];
  const fields = [
    'Content-Length: 3\r\n',
    'Content-Length: 99999999999999999\r\n',
    'Transfer-Encoding: chunked\r\n',
    'Transfer-Encoding: gzip\r\n',
    'Connection: close\r\n',
    'Trailer: x\r\n',
    ' folded\r\n',
    'X: a\0b\r\n',
  ];
  const bodyPieces = [
    '5\r\nhello\r\n',
    '3;x=y\r\nabc\r\n',
    'fffffffffffff\r\n',
    'zz\r\n',
    '0\r\n',
    'X: 1\r\n',
    '\r\n',
    '\n',
    'abc',
  ];
  const text = fc.string({ maxLength: 6 });
  test('reads or refuses, never throws anything else', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.constantFrom(...statusLines), text),
        fc.array(fc.oneof(fc.constantFrom(...fields), text), { maxLength: 5 }),
        fc.array(fc.oneof(fc.constantFrom(...bodyPieces), text), { maxLength: 8 }),
        fc.array(fc.nat(), { maxLength: 6 }),
        fc.boolean(),
        (status, head, body, cuts, isHead) => {
          const bytes = `${status}${head.join('')}\r\n${body.join('')}`;
          try {
            parse(
              bytes,
              cuts.map((cut) => cut % (bytes.length + 1)),
              { head: isHead },
            );
          } catch (error) {
            if (!(error instanceof ResponseError)) throw error;
          }
        },
      ),
      { numRuns: 3000 },
    );
  });
});

describe('the request head', () => {
  test('Host first, repeats as separate fields, one string', () => {
    assert.equal(
      formatRequestHead('GET', '/a?b=1', 'example.test', {
        accept: '*/*',
        'x-list': ['1', '2'],
        'content-length': 0,
      }),
      'GET /a?b=1 HTTP/1.1\r\nhost: example.test\r\naccept: */*\r\nx-list: 1\r\nx-list: 2\r\ncontent-length: 0\r\n\r\n',
    );
  });

  test('what cannot be written is refused before anything is sent, naming it', () => {
    assert.throws(() => formatRequestHead('G T', '/', 'h', {}), /method "G T"/);
    assert.throws(() => formatRequestHead('CONNECT', 'h:1', 'h', {}), /method "CONNECT"/);
    assert.throws(() => formatRequestHead('GET', '/a b', 'h', {}), /request target/);
    assert.throws(() => formatRequestHead('GET', '/\r\nX: y', 'h', {}), /request target/);
    assert.throws(() => formatRequestHead('GET', '/', 'h\r\nx: y', {}), /header host/);
    assert.throws(() => formatRequestHead('GET', '/', 'h', { 'x-a': 'v\r\nInjected: 1' }), /header x-a/);
    assert.throws(() => formatRequestHead('GET', '/', 'h', { 'x-a': ['ok', 'v\n'] }), /header x-a/);
    assert.throws(() => formatRequestHead('GET', '/', 'h', { 'x-a': 'snowman ☃' }), /header x-a/);
    assert.throws(() => formatRequestHead('GET', '/', 'h', { 'bad name': 'v' }), /header name "bad name"/);
  });
});
