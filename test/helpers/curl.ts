import { execFile } from 'node:child_process';

export interface CurlResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Runs the real curl with a 60 s cap; never throws on curl's own failure, returns its exit code. */
export function curl(args: string[], options: { timeoutMs?: number } = {}): Promise<CurlResult> {
  return new Promise((resolve, reject) => {
    execFile(
      'curl',
      ['-sS', ...args],
      { timeout: options.timeoutMs ?? 60_000, maxBuffer: 64 << 20 },
      (error, stdout, stderr) => {
        if (error && typeof error.code !== 'number') {
          reject(error);
          return;
        }
        resolve({ exitCode: error ? Number(error.code) : 0, stdout, stderr });
      },
    );
  });
}

/** `curl -i` parsed: status, lower-cased headers (the last of each name), every header line, and body. */
export async function curlResponse(args: string[]): Promise<{
  status: number;
  headers: Record<string, string>;
  headerLines: string[];
  body: string;
  exitCode: number;
}> {
  const result = await curl(['-i', ...args]);
  const blocks = result.stdout.split('\r\n\r\n');
  // Skip interim 1xx heads (100 Continue) to the final one.
  let index = 0;
  while (/^HTTP\/[\d.]+ 1\d\d/.test(blocks[index] ?? '') && index < blocks.length - 1) index++;
  const head = blocks[index] ?? '';
  const body = blocks.slice(index + 1).join('\r\n\r\n');
  const [statusLine, ...lines] = head.split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
  }
  return {
    status: Number(statusLine?.split(' ')[1] ?? 0),
    headers,
    headerLines: lines,
    body,
    exitCode: result.exitCode,
  };
}
