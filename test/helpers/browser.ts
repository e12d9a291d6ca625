import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser, chromium } from 'playwright-core';

const CHROMIUM = '/usr/bin/chromium';

/** Screenshots and other artifacts of browser tests: test-results/<name>/ at the repository root (gitignored). */
export function artifactDir(name: string): string {
  const dir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'test-results', name);
  mkdirSync(dir, { recursive: true });
  return dir;
}

/**
 * Debian's headless Chromium driven by playwright-core. The flags keep it off the network: this
 * machine's closed network refuses its background connections.
 */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM))
    throw new Error(`${CHROMIUM} is missing: apt-get install chromium (.ci/run installs it)`);
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}
