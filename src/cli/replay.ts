import { request } from 'node:http';
import { PosternError } from '../errors.js';
import { parseHostPort } from '../http/host-port.js';
import { DEFAULT_INSPECT_ADDRESS } from '../inspector/inspector-server.js';
import { jsonLine, parseOptions, UsageError } from './args.js';
import { hostPort } from './option-checks.js';
import type { OptionDef } from './option-table.js';

export const replayUsage =
  'postern replay <id> [--inspect <host:port>] [--method <m>] [--path </p>] [--header "Name: value"]... [--body <text>] [--json]';

export const REPLAY_OPTIONS = {
  inspect: {
    value: '<host:port>',
    check: hostPort,
    help: 'the inspector of the postern expose to ask',
    doc: 'the inspector of the `postern expose` to ask',
    default: `\`${DEFAULT_INSPECT_ADDRESS}\``,
  },
  method: { value: '<m>', help: 'replace the method', default: 'as captured' },
  path: { value: '</p>', help: 'replace the path and query', default: 'as captured' },
  header: {
    value: '"Name: value"',
    multiple: true,
    help: 'replace that header (all its values); an empty value removes it',
    doc: 'replace that header (all of its values) of the captured request; an empty value removes it',
    default: 'as captured',
  },
  body: {
    value: '<text>',
    help: 'replace the body (needed when the captured body was truncated)',
    default: 'as captured',
  },
  json: {
    help: '{"event":"replayed","replayOf":…,"id":…,"status":…} on stdout',
    doc: '`{"event":"replayed","replayOf":"1","id":"7","status":200}`',
    default: 'off',
  },
} as const satisfies Record<string, OptionDef>;

/** Largest answer read from the inspector's API. */
const MAX_ANSWER = 8 << 20;

/**
 * `postern replay <id>`: asks a running `postern expose` (its inspector's API) to send a captured
 * request to the target again, as it was or edited, and prints what the target answered.
 */
export async function replayCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseOptions(argv, REPLAY_OPTIONS, true);
  const [id, ...extra] = positionals;
  if (id === undefined || extra.length > 0 || !/^\d+$/.test(id))
    throw new UsageError(
      `replay takes one capture id, a number shown by the inspector (usage: ${replayUsage})`,
    );
  const address = values.inspect ?? DEFAULT_INSPECT_ADDRESS;
  const edits: Record<string, unknown> = {};
  if (values.method !== undefined) edits.method = values.method;
  if (values.path !== undefined) edits.path = values.path;
  if (values.body !== undefined) edits.body = values.body;
  if (values.header !== undefined) {
    // --header replaces that header of the captured request (an empty value removes it).
    const captured = (await call(address, 'GET', `/api/requests/${id}`)) as {
      requestHeaders: [string, string][];
    };
    let headers = captured.requestHeaders;
    for (const line of values.header) {
      const colon = line.indexOf(':');
      if (colon <= 0) throw new UsageError(`--header "${line}" must be "Name: value"`);
      const name = line.slice(0, colon).trim();
      const value = line.slice(colon + 1).trim();
      headers = headers.filter(([n]) => n.toLowerCase() !== name.toLowerCase());
      if (value !== '') headers.push([name, value]);
    }
    edits.headers = headers;
  }
  const result = (await call(address, 'POST', `/api/requests/${id}/replay`, JSON.stringify(edits))) as {
    id: string | null;
    status: number;
  };
  if (values.json) jsonLine({ event: 'replayed', replayOf: id, id: result.id, status: result.status });
  else process.stdout.write(`replayed #${id} as #${result.id ?? '?'}: ${result.status}\n`);
}

function call(address: string, method: string, path: string, body?: string): Promise<unknown> {
  const { host, port } = parseHostPort(address);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host,
        port,
        method,
        path,
        timeout: 60_000,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
      },
      (res) => {
        const parts: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_ANSWER) req.destroy(new Error('the inspector answered more than 8 MiB'));
          else parts.push(chunk);
        });
        res.once('end', () => {
          let answer: { error?: string } & Record<string, unknown>;
          try {
            answer = JSON.parse(Buffer.concat(parts).toString('utf8'));
          } catch {
            reject(
              new PosternError(
                'POSTERN_REPLAY',
                `${address} answered ${res.statusCode} without JSON: is it a postern inspector?`,
              ),
            );
            return;
          }
          if (res.statusCode !== 200)
            reject(
              new PosternError(
                'POSTERN_REPLAY',
                `the inspector refused: ${answer.error ?? `HTTP ${res.statusCode}`}`,
              ),
            );
          else resolve(answer);
        });
      },
    );
    req.once('timeout', () => req.destroy(new Error('no answer within 60 s')));
    req.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        new PosternError(
          'POSTERN_REPLAY',
          `no inspector at ${address} (${error.code ?? error.message}); is postern expose running there? (--inspect <host:port>)`,
        ),
      ),
    );
    req.end(body);
  });
}
