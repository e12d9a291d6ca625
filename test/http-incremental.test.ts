import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { type Origin, startOrigin } from './helpers/origin.js';
import { startTunnel, type Tunnel } from './helpers/tunnel.js';

describe('responses arrive incrementally', () => {
  let origin: Origin;
  let tunnel: Tunnel;
  before(async () => {
    origin = await startOrigin();
    tunnel = await startTunnel(origin.url);
  });
  after(async () => {
    await tunnel.close();
    await origin.close();
  });

  test('server-sent events: the first event reaches curl while the stream is still open', async () => {
    // 5 events 400 ms apart: the stream lasts ~1.6 s. The first must arrive long before the end.
    const child = spawn('curl', ['-sS', '-N', `${tunnel.service.url}sse?n=5&gapMs=400`]);
    const started = Date.now();
    let output = '';
    let firstEventAt = 0;
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (firstEventAt === 0 && output.includes('data: event 0')) firstEventAt = Date.now() - started;
    });
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    const total = Date.now() - started;
    assert.equal(code, 0);
    assert.equal(output.match(/data: event \d/g)?.length, 5);
    assert.ok(
      firstEventAt > 0 && firstEventAt < total - 1000,
      `first event at ${firstEventAt} ms of ${total} ms`,
    );
  });

  test('a chunked response is delivered chunk by chunk, not buffered to the end', async () => {
    const child = spawn('curl', ['-sS', '-N', '--raw', `${tunnel.service.url}sse?n=3&gapMs=500`]);
    const chunks: number[] = [];
    const started = Date.now();
    child.stdout.on('data', () => chunks.push(Date.now() - started));
    await new Promise((resolve) => child.once('close', resolve));
    assert.ok(chunks.length >= 3, `got ${chunks.length} reads`);
    const last = chunks[chunks.length - 1] as number;
    assert.ok((chunks[0] as number) < last - 700, `reads at ${chunks.join(', ')} ms`);
  });
});
