import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { WebSocket, WebSocketServer } from 'ws';
import { localhostLookup } from '../src/transport/localhost-lookup.js';
import { artifactDir, launchChromium } from './helpers/browser.js';
import { curlResponse } from './helpers/curl.js';
import { type CliProcess, startCli } from './helpers/processes.js';
import { until } from './helpers/wait.js';

const SCRIPT_BODY = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">';

/** An origin that remembers every request body, answers JSON, serves a hostile page, and echoes WebSocket messages. */
async function startAppOrigin() {
  const seen: { method: string; url: string; body: string }[] = [];
  const server = createServer((req: IncomingMessage, res) => {
    const parts: Buffer[] = [];
    req.on('data', (chunk: Buffer) => parts.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(parts).toString('utf8');
      seen.push({ method: req.method ?? '', url: req.url ?? '', body });
      if (req.url === '/page') {
        res.writeHead(200, { 'content-type': 'text/html' });
        res.end(SCRIPT_BODY);
        return;
      }
      res.writeHead(201, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ received: body.length, order: seen.length }));
    });
  });
  // Echoes; /deflate agrees to permessage-deflate when the client offers it (browsers do).
  const plain = new WebSocketServer({ noServer: true });
  const deflating = new WebSocketServer({ noServer: true, perMessageDeflate: { threshold: 0 } });
  for (const wss of [plain, deflating])
    wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })));
  server.on('upgrade', (req, socket, head) => {
    const wss = req.url === '/deflate' ? deflating : plain;
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe('the inspector in a real browser (Debian chromium, playwright-core)', () => {
  let origin: Awaited<ReturnType<typeof startAppOrigin>>;
  let cli: CliProcess;
  let browser: Browser;
  let page: Page;
  let tunnelUrl: string;
  let inspectorUrl: string;
  const shots = artifactDir('inspector');
  const shot = (name: string) => page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
  const row = (text: string) => page.locator('#rows tr', { hasText: text });

  before(async () => {
    origin = await startAppOrigin();
    cli = startCli(['expose', origin.url, '--json', '--inspect', '127.0.0.1:0']);
    const ready = await cli.nextEvent((e) => e.event === 'ready');
    tunnelUrl = (ready.services as { url: string }[])[0]?.url as string;
    inspectorUrl = ready.inspector as string;
    assert.match(inspectorUrl, /^http:\/\/127\.0\.0\.1:\d+$/);
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  });
  after(async () => {
    await browser?.close();
    await cli?.stop();
    await origin?.close();
  });

  test('a curl POST shows up live with its JSON body pretty-printed, and Replay sends it to the origin again', async () => {
    await page.goto(inspectorUrl);
    await page.locator('#live.on').waitFor();
    const posted = await curlResponse([
      '-X',
      'POST',
      '-H',
      'content-type: application/json',
      '--data',
      '{"item":"tea","qty":2}',
      `${tunnelUrl}orders?from=curl`,
    ]);
    assert.equal(posted.status, 201);
    // Live: the row arrives without a reload.
    await row('POST /orders?from=curl').first().waitFor();
    await row('POST /orders?from=curl').first().click();
    await page.locator('#title', { hasText: 'POST /orders?from=curl' }).waitFor();
    const bodies = page.locator('#detail pre.body');
    assert.equal(await bodies.nth(0).textContent(), '{\n  "item": "tea",\n  "qty": 2\n}');
    assert.match((await bodies.nth(1).textContent()) ?? '', /"order": 1/);
    await shot('1-request');

    assert.equal(origin.seen.filter((r) => r.url === '/orders?from=curl').length, 1);
    await page.locator('#replay').click();
    await page.locator('#replay-result', { hasText: /replayed as #\d+: 201/ }).waitFor();
    const orders = origin.seen.filter((r) => r.url === '/orders?from=curl');
    assert.equal(orders.length, 2, 'the origin saw a second request');
    assert.equal(orders[1]?.body, '{"item":"tea","qty":2}');
    await row('replay of #').first().waitFor();
    await shot('2-replayed');
  });

  test('Edit & replay sends the edited body; the search finds requests by body text', async () => {
    await row('POST /orders?from=curl').last().click();
    await page.locator('#edit-replay').click();
    await page.locator('form.edit textarea[name=body]').fill('{"item":"coffee"}');
    await page.locator('form.edit button[type=submit]').click();
    await page.locator('#replay-result', { hasText: /replayed as #\d+: 201/ }).waitFor();
    assert.equal(origin.seen.at(-1)?.body, '{"item":"coffee"}');

    await page.locator('#search').fill('coffee');
    await until(
      async () => (await page.locator('#rows tr').count()) === 1,
      'only the edited replay to match',
    );
    await shot('3-search');
    await page.locator('#search').fill('');
    await until(async () => (await page.locator('#rows tr').count()) === 3, 'all three requests back');
  });

  test('WebSocket messages are shown both ways', async () => {
    const wsUrl = tunnelUrl.replace(/^http/, 'ws');
    const ws = new WebSocket(`${wsUrl}chat`, { lookup: localhostLookup });
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    const echoed = new Promise<string>((resolve) => ws.once('message', (data) => resolve(String(data))));
    ws.send('hello inspector');
    assert.equal(await echoed, 'hello inspector');
    ws.send(Buffer.from([0, 1, 2, 255]));
    await new Promise((resolve) => ws.once('message', resolve));
    ws.close(1000, 'bye');
    await new Promise((resolve) => ws.once('close', resolve));

    await row('GET /chat').first().click();
    const messages = page.locator('table.messages tr.msg-in, table.messages tr.msg-out');
    await until(async () => (await messages.count()) >= 6, 'text, binary and close frames both ways');
    const texts = await page.locator('table.messages td.text').allTextContents();
    assert.equal(texts.filter((t) => t === 'hello inspector').length, 2, 'the message out and its echo');
    assert.ok(
      texts.some((t) => t.includes('00 01 02 ff')),
      'the binary message as hex',
    );
    assert.equal(await page.locator('table.messages tr.msg-in td', { hasText: 'close' }).count(), 1);
    await shot('4-websocket');
  });

  test('messages the browser compressed (permessage-deflate) are shown as they were before compression', async () => {
    const texts = ['compressed hello', 'compressed hello, once more', 'compressed hello, once more and more'];
    const sender = await browser.newPage();
    let extensions: string;
    try {
      await sender.goto(`${tunnelUrl}sender`);
      extensions = await sender.evaluate(
        ({ url, texts }) =>
          new Promise<string>((resolve, reject) => {
            const ws = new WebSocket(url);
            const echoes: string[] = [];
            ws.onerror = () => reject(new Error('the WebSocket failed'));
            ws.onopen = () => ws.send(texts[0] as string);
            ws.onmessage = (event) => {
              echoes.push(String(event.data));
              if (echoes.length < texts.length) ws.send(texts[echoes.length] as string);
              else ws.close(1000);
            };
            ws.onclose = () =>
              echoes.join('|') === texts.join('|')
                ? resolve(ws.extensions)
                : reject(new Error(echoes.join('|')));
          }),
        { url: `${tunnelUrl.replace(/^http/, 'ws')}deflate`, texts },
      );
    } finally {
      await sender.close();
    }
    assert.match(extensions, /^permessage-deflate/, 'Chromium and the origin agreed to compress');

    await row('GET /deflate').first().click();
    const messages = page.locator('table.messages tr.msg-in, table.messages tr.msg-out');
    await until(async () => (await messages.count()) >= 2 * texts.length + 1, 'every message and a close');
    const shown = await page.locator('table.messages td.text').allTextContents();
    for (const text of texts)
      assert.equal(shown.filter((t) => t === text).length, 2, `"${text}" decoded both ways: ${shown}`);
    assert.equal(
      await page.locator('table.messages td', { hasText: 'text (deflate)' }).count(),
      2 * texts.length,
    );
    assert.equal(await page.locator('table.messages td', { hasText: /B sent\)$/ }).count(), 2 * texts.length);
    await page.locator('table.messages').screenshot({ path: join(shots, '4-websocket-deflate.png') });
  });

  test('a captured <script> body is shown as text and never runs', async () => {
    const res = await curlResponse([`${tunnelUrl}page`]);
    assert.equal(res.body, SCRIPT_BODY);
    const dialogs: string[] = [];
    page.on('dialog', (dialog) => {
      dialogs.push(dialog.message());
      void dialog.dismiss();
    });
    await row('GET /page').first().click();
    const body = page.locator('#detail pre.body').last();
    await body.waitFor();
    assert.equal(await body.textContent(), SCRIPT_BODY);
    assert.equal(await page.locator('#detail img').count(), 0, 'no element was made from the body');
    assert.equal(await page.evaluate(() => (globalThis as { __pwned?: number }).__pwned), undefined);
    assert.deepEqual(dialogs, []);
    await shot('5-script-body');
  });
  test('a binary body keeps its hex dump columns on a narrow screen; the size column stays in view beside "replay of"', async () => {
    await page.setViewportSize({ width: 1100, height: 900 });
    try {
      await page.goto(inspectorUrl);
      await page.locator('#live.on').waitFor();
      // The replayed row from the first test: its last cell (the size) is inside the list, not cut off.
      const replayed = row('replay of #').first();
      await replayed.waitFor();
      const edges = await replayed.evaluate((tr) => {
        const list = tr.ownerDocument.getElementById('list');
        const last = tr.lastElementChild;
        return {
          size: last?.getBoundingClientRect().right ?? Infinity,
          list: list?.getBoundingClientRect().right ?? 0,
        };
      });
      const sizeInView = edges.size <= edges.list + 1;
      assert.ok(
        sizeInView,
        `the size column of a replayed row is pushed out of the list: ${JSON.stringify(edges)}`,
      );

      // Narrower still: the detail pane is now less wide than one hex dump line.
      await page.setViewportSize({ width: 900, height: 900 });
      const blob = join(shots, 'blob.bin');
      writeFileSync(blob, Buffer.from(Array.from({ length: 256 }, (_, i) => i)));
      const posted = await curlResponse([
        '-X',
        'POST',
        '-H',
        'content-type: application/octet-stream',
        '--data-binary',
        `@${blob}`,
        `${tunnelUrl}blob`,
      ]);
      assert.ok(posted.status > 0);
      await row('POST /blob').first().click();
      const dump = page.locator('#detail pre.hex').first();
      await dump.waitFor();
      const layout = await dump.evaluate((pre) => {
        const style = pre.ownerDocument.defaultView?.getComputedStyle(pre);
        if (style === undefined) throw new Error('no window');
        return {
          lines: (pre.textContent ?? '').split('\n').length,
          lineHeight: Number.parseFloat(style.lineHeight),
          padding: Number.parseFloat(style.paddingTop) + Number.parseFloat(style.paddingBottom),
          height: pre.clientHeight,
        };
      });
      // Each dump line on one screen line (a scrollbar may take one more).
      assert.ok(
        layout.height <= (layout.lines + 1.5) * layout.lineHeight + layout.padding,
        `hex dump lines wrapped: ${JSON.stringify(layout)}`,
      );
      await shot('5-hex-narrow');
    } finally {
      await page.setViewportSize({ width: 1400, height: 900 });
    }
  });
});
