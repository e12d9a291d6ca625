import { createServer, get } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createAgent } from '../agent/agent.js';
import { generateAgentKey } from '../keys/key-file.js';
import { createRelay } from '../relay/relay.js';
import { localhostLookup } from '../transport/localhost-lookup.js';
import { integerFlag, parseOptions } from './args.js';
import type { OptionDef } from './option-table.js';
import { onShutdownSignal } from './signals.js';

export const demoUsage = 'postern demo [--port <n>] [--once]';

export const DEMO_OPTIONS = {
  port: { value: '<n>', integer: { max: 65_535 }, help: "the demo relay's port", default: '0 (ephemeral)' },
  once: { help: 'exit after the first request through the tunnel (for scripts)', default: 'off' },
} as const satisfies Record<string, OptionDef>;

/**
 * The one-command tour: a small built-in web app, a relay and an agent in this process, and a first
 * request through the tunnel to prove it works. `--once` exits after that request (for scripts).
 */
export async function demoCommand(argv: string[]): Promise<void> {
  const { values } = parseOptions(argv, DEMO_OPTIONS, false);
  const origin = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
    res.end(
      `Hello from the private side of a postern.\nYou asked for ${req.method} ${req.url} via ${req.headers['x-forwarded-for']}.\n`,
    );
  });
  await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve));
  const originUrl = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`;
  const relay = await createRelay({
    listen: [`tcp://127.0.0.1:${integerFlag(values.port, 'port') ?? 0}`],
    // Nobody scrapes the demo's relay.
    metrics: false,
  });
  const agent = createAgent({
    relay: relay.addresses[0] as string,
    key: generateAgentKey(),
    services: [{ target: originUrl }],
  });
  const [service] = await agent.ready;
  const url = service?.url as string;
  process.stdout.write(`Postern demo: a relay, an agent and a web app, all in this process.\n`);
  process.stdout.write(`  private app:   ${originUrl}\n  public tunnel: ${url}\n`);
  const answer = await new Promise<string>((resolve, reject) => {
    get(`${url}hello`, { lookup: localhostLookup }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
      });
      res.on('end', () => resolve(`${res.statusCode} ${body.trim()}`));
    }).on('error', reject);
  });
  process.stdout.write(`  GET ${url}hello through the tunnel -> ${answer}\n`);
  const stop = async (): Promise<void> => {
    await agent.close();
    await relay.close();
    origin.close();
  };
  if (values.once) {
    await stop();
    return;
  }
  process.stdout.write(`Try it: curl ${url}\nPress Ctrl-C to stop.\n`);
  onShutdownSignal(stop);
}
