// Not part of the bench: shows how many bytes each young-generation collection moves to the old
// generation while small GETs flow through relay and agent (both in this process, two sessions),
// before and after one forced full collection. Healthy: tens of KB a collection before and after.
// Before the renewing tables (src/renewing-collections.ts) it was ~1.5 MB a collection from the
// first full collection on, for good. Run: node dist/bench/gc-promotion-probe.js; V8 flags for the
// measured process in PROBE_V8_FLAGS (e.g. "--no-allocation-site-pretenuring").
import { spawnSync } from 'node:child_process';
import { createServer, Agent as HttpAgent, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { createAgent } from '../src/agent/agent.js';
import { generateAgentKey } from '../src/keys/key-file.js';
import { createRelay } from '../src/relay/relay.js';

const LOAD_MS = 1500;
const CONCURRENCY = 50;

if (process.argv[2] !== 'child') {
  const child = spawnSync(
    process.execPath,
    [
      ...(process.env.PROBE_V8_FLAGS ?? '').split(' ').filter(Boolean),
      '--expose-gc',
      '--trace-gc-nvp',
      fileURLToPath(import.meta.url),
      'child',
    ],
    { encoding: 'utf8', timeout: 60_000 },
  );
  if (child.status !== 0) throw new Error(`probe failed: ${child.stderr}`);
  const phases: { before: number[]; after: number[] } = { before: [], after: [] };
  let phase: number[] | undefined;
  for (const line of child.stdout.split('\n')) {
    if (line === 'load') phase = phases.before;
    else if (line === 'forced') phase = phases.after;
    else if (line === 'stop') phase = undefined;
    else if (phase !== undefined && line.includes('gc=s ')) {
      const promoted = /\bpromoted=(\d+)/.exec(line)?.[1];
      if (promoted !== undefined) phase.push(Number(promoted));
    } else if (line.startsWith('requests')) console.log(line);
  }
  const median = (values: number[]): number => [...values].sort((a, b) => a - b)[values.length >> 1] ?? 0;
  for (const [name, values] of Object.entries(phases))
    console.log(
      `${name} the full collection: ${values.length} young collections, median ${(median(values) / 1024).toFixed(0)} KiB moved to the old generation each`,
    );
} else {
  const body = Buffer.from('hello world\n');
  const origin = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
    res.end(body);
  });
  await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve));
  const relay = await createRelay({ listen: ['tcp://127.0.0.1:0'] });
  const agent = createAgent({
    relay: relay.addresses[0] as string,
    key: generateAgentKey(),
    services: [{ target: `http://127.0.0.1:${(origin.address() as AddressInfo).port}` }],
    connections: 2,
  });
  const [service] = await agent.ready;
  const port = Number((relay.addresses[0] as string).split(':').pop());
  const host = `${service?.label}.localhost:${port}`;
  const pool = new HttpAgent({ keepAlive: true });
  let requests = 0;
  let running = true;
  const one = (): void => {
    if (!running) return;
    const req = httpRequest({ agent: pool, host: '127.0.0.1', port, path: '/', headers: { host } }, (res) => {
      res.resume();
      res.once('end', () => {
        requests++;
        one();
      });
    });
    req.once('error', (error) => {
      console.error(error);
      process.exit(1);
    });
    req.end();
  };
  const gc = (globalThis as { gc?: () => void }).gc as () => void;
  for (let i = 0; i < CONCURRENCY; i++) one();
  await new Promise((resolve) => setTimeout(resolve, 300));
  console.log('load');
  await new Promise((resolve) => setTimeout(resolve, LOAD_MS));
  gc();
  console.log('forced');
  await new Promise((resolve) => setTimeout(resolve, LOAD_MS));
  console.log('stop');
  running = false;
  console.log(`requests ${requests}`);
  await agent.close();
  await relay.close();
  origin.close();
  pool.destroy();
}
