// WebSocket echo load in its own process: `node ws-load.js <url> <connections> <seconds>`. Each
// connection sends a 64-byte message, waits for its echo, and sends the next, for `seconds`.
// Prints {"messagesPerSecond":…,"p50":ms,"p99":ms}.
import { once } from 'node:events';
import { WebSocket } from 'ws';

const [url = '', connectionsText = '50', secondsText = '5'] = process.argv.slice(2);
const connections = Number(connectionsText);
const deadline = Date.now() + Number(secondsText) * 1000;
const payload = Buffer.alloc(64, 'x');
const latencies: number[] = [];

async function oneConnection(): Promise<void> {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  await once(ws, 'open');
  while (Date.now() < deadline) {
    const sent = performance.now();
    ws.send(payload);
    await once(ws, 'message');
    latencies.push(performance.now() - sent);
  }
  ws.close();
}

const started = Date.now();
await Promise.all(Array.from({ length: connections }, oneConnection));
const seconds = (Date.now() - started) / 1000;
latencies.sort((a, b) => a - b);
const at = (p: number): number =>
  latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? 0;
process.stdout.write(
  `${JSON.stringify({ messagesPerSecond: latencies.length / seconds, p50: at(0.5), p99: at(0.99) })}\n`,
);
