// The benchmark's target, in its own process so its CPU is not shared with the load generator's
// event loop: the test origin (/bytes, /upload, /echo, …) plus /small, a 64-byte answer.
import { startOrigin } from '../test/helpers/origin.js';

const origin = await startOrigin();
const small = Buffer.alloc(64, 'x');
origin.server.prependListener('request', (req, res) => {
  if (req.url === '/small') {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': small.length });
    res.end(small);
  }
});
// The test origin would answer /small too; take it out of the way for that one path.
const [testHandler] = origin.server.listeners('request').slice(1) as ((...a: unknown[]) => void)[];
if (testHandler) {
  origin.server.removeListener('request', testHandler);
  origin.server.on('request', (req, res) => {
    if (req.url !== '/small') testHandler(req, res);
  });
}
process.stdout.write(`${JSON.stringify({ port: origin.port })}\n`);
