import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { artifactDir, launchChromium } from './helpers/browser.js';
import { curl } from './helpers/curl.js';
import { startOrigin } from './helpers/origin.js';
import { startTunnel } from './helpers/tunnel.js';
import { until } from './helpers/wait.js';

test('the relay dashboard in Chromium: the tunnel, its agent and live streams per second; the token from the fragment', async () => {
  const origin = await startOrigin();
  const tunnel = await startTunnel(origin.url, {
    relay: { admin: '127.0.0.1:0', adminToken: 'dashboard-token-123456' },
  });
  const browser = await launchChromium();
  try {
    const page = await browser.newPage({ viewport: { width: 1300, height: 500 } });
    const admin = `http://${tunnel.relay.adminAddress}/`;
    await page.goto(admin);
    await page.locator('#error', { hasText: '401' }).waitFor();

    await page.goto(`${admin}#token=dashboard-token-123456`);
    await page.reload();
    const row = page.locator('#tunnels tr', { hasText: tunnel.service.label });
    await row.waitFor();
    const cells = async () => row.locator('td').allTextContents();
    assert.deepEqual((await cells()).slice(1, 4), ['default', 'http', 'open']);
    assert.match((await cells())[8] ?? '', /127\.0\.0\.1 \(0 streams\)/);
    // How long it has been up, then since when in the reader's time zone; not a raw ISO stamp.
    const node = (await page.locator('#node').textContent()) ?? '';
    assert.match(node, / · up \d+ (s|min) \(since [A-Z][a-z]{2} \d{1,2}, \d{4}, \d{1,2}:\d{2}/);
    assert.doesNotMatch(node, /\d{4}-\d{2}-\d{2}T/);

    // Traffic between two refreshes shows up as a rate and in the total.
    const sent = 20;
    for (let i = 0; i < sent; i++) assert.equal((await curl([`${tunnel.service.url}x`])).exitCode, 0);
    await until(async () => Number((await cells())[7]) === sent, `${sent} streams in all`, 6_000);
    const rate = Number((await cells())[6]);
    assert.ok(rate > 0, `a live rate (${rate}/s)`);
    await page.screenshot({ path: join(artifactDir('dashboard'), 'dashboard.png'), fullPage: true });
  } finally {
    await browser.close();
    await tunnel.close();
    await origin.close();
  }
});
