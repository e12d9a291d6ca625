import { type ChildProcess, spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** The HTTP target that runs as a process of its own (so tests can kill it): ../chaos/target-process.js. */
const TARGET_SCRIPT = join(dirname(fileURLToPath(import.meta.url)), '..', 'chaos', 'target-process.js');

export interface TargetProcess {
  port: number;
  child: ChildProcess;
  /** JSON lines the target printed after its port (upload outcomes). */
  lines: Record<string, unknown>[];
}

export async function startTarget(port = 0): Promise<TargetProcess> {
  const child = spawn(process.execPath, [TARGET_SCRIPT, String(port)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines: Record<string, unknown>[] = [];
  const listening = new Promise<number>((resolve, reject) => {
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      const parsed = JSON.parse(line) as Record<string, unknown>;
      if (typeof parsed.port === 'number') resolve(parsed.port);
      else lines.push(parsed);
    });
    child.once('exit', () => reject(new Error('target exited before listening')));
  });
  return { port: await listening, child, lines };
}
