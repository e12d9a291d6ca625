// A fixed request rate in its own process: `node fixed-rate.js <url> <host|-> <seconds>` runs
// autocannon (10 connections, 1 000 requests/s) and prints {"p50":ms,"p99":ms,"requests":n}
// from every response's own time. autocannon's summary rounds latencies to whole milliseconds,
// too coarse for a target of "added p50 ≤ 1 ms"; its 'response' event gives the exact time.
import { createRequire } from 'node:module';

interface Tracker {
  on(event: 'response', listener: (client: unknown, status: number, bytes: number, ms: number) => void): void;
  on(event: 'done', listener: (result: { non2xx: number }) => void): void;
}
type Autocannon = (options: {
  url: string;
  connections: number;
  overallRate: number;
  duration: number;
  headers: Record<string, string>;
}) => Tracker;

// autocannon is CommonJS without type declarations: typed here by the two members used.
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;
const [url = '', host = '-', secondsText = '3'] = process.argv.slice(2);
const times: number[] = [];
const tracker = autocannon({
  url,
  connections: 10,
  overallRate: 1000,
  duration: Number(secondsText),
  headers: host === '-' ? {} : { host },
});
tracker.on('response', (_client, status, _bytes, ms) => {
  if (status >= 200 && status < 300) times.push(ms);
});
tracker.on('done', (result) => {
  times.sort((a, b) => a - b);
  const at = (q: number): number =>
    times[Math.min(times.length - 1, Math.floor(q * times.length))] ?? Number.NaN;
  process.stdout.write(
    `${JSON.stringify({ p50: at(0.5), p99: at(0.99), requests: times.length, non2xx: result.non2xx })}\n`,
  );
});
