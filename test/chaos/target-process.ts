// A target in its own process, so the chaos tests can kill it: GET /stream?n= sends n bytes of
// the test pattern chunked (no Content-Length), GET /bytes?n= the same with a Content-Length,
// POST /upload reads the body. Prints {"port":N} when listening, then one JSON line per upload:
// {"upload":"complete","size":…,"sha256":…} or {"upload":"aborted","size":…}.
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import { sendPattern } from '../helpers/origin.js';

const port = Number(process.argv[2] ?? 0);
const server = createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://x');
  const n = Number(url.searchParams.get('n') ?? 0);
  if (req.method === 'POST' && url.pathname === '/upload') {
    const hash = createHash('sha256');
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      hash.update(chunk);
      size += chunk.length;
    });
    req.once('end', () => {
      process.stdout.write(`${JSON.stringify({ upload: 'complete', size, sha256: hash.digest('hex') })}\n`);
      res.end('ok');
    });
    req.once('aborted', () => process.stdout.write(`${JSON.stringify({ upload: 'aborted', size })}\n`));
    return;
  }
  if (url.pathname === '/stream' || url.pathname === '/bytes') {
    res.writeHead(200, url.pathname === '/bytes' ? { 'content-length': n } : {});
    sendPattern(res, n);
    return;
  }
  res.writeHead(404).end();
});
server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as { port: number }).port })}\n`);
});
