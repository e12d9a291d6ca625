// Many agents in one process, for the chaos and scale tests: `node agents-process.js <relay>
// <count> [connections]`. Each agent has its own key (so its own tunnel) and exposes one HTTP
// origin of this process that answers `ok <path>`. Prints one JSON line per event with a
// timestamp: {"event":"connected","agent":i,"connection":c,"label":…,"at":ms} and
// {"event":"disconnected","agent":i,"connection":c,"at":ms}, and
// {"event":"reconnecting","agent":i,"connection":c,"attempt":n,"delayMs":d,"at":ms}. SIGTERM closes every agent.
import { createServer } from 'node:http';
import { createAgent } from '../../src/agent/agent.js';
import { generateAgentKey } from '../../src/keys/key-file.js';

const [relay = '', countText = '1', connectionsText = '1'] = process.argv.slice(2);
const count = Number(countText);
const connections = Number(connectionsText);
const print = (line: Record<string, unknown>): void => {
  process.stdout.write(`${JSON.stringify({ ...line, at: Date.now() })}\n`);
};

const origin = createServer((req, res) => res.end(`ok ${req.url}`));
await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve));
const target = `http://127.0.0.1:${(origin.address() as { port: number }).port}`;

const agents = Array.from({ length: count }, (_, i) => {
  const agent = createAgent({ relay, key: generateAgentKey(), services: [{ target }], connections });
  agent.on('connected', (event: { connection: number; services: { label: string }[] }) =>
    print({ event: 'connected', agent: i, connection: event.connection, label: event.services[0]?.label }),
  );
  agent.on('disconnected', (event: { connection: number }) =>
    print({ event: 'disconnected', agent: i, connection: event.connection }),
  );
  agent.on('reconnecting', (event: { connection: number; attempt: number; delayMs: number }) =>
    print({ event: 'reconnecting', agent: i, ...event }),
  );
  return agent;
});

process.once('SIGTERM', () => {
  void Promise.all(agents.map((agent) => agent.close())).then(() => process.exit(0));
});
