#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { errorCodeOf, PosternError, printable } from '../errors.js';
import { PROTOCOL_VERSION } from '../session/protocol.js';
import { closest, UsageError } from './args.js';
import { COMMANDS } from './commands.js';
import { tuneGarbageCollector } from './gc-tuning.js';
import { raiseMallocTrimThreshold } from './malloc-tuning.js';
import { helpText } from './option-table.js';

/** The version in the package.json shipped beside dist/ (three folders up from this file). */
function packageVersion(): string {
  const text = readFileSync(new URL('../../../package.json', import.meta.url), 'utf8');
  return String((JSON.parse(text) as { version?: unknown }).version);
}

function help(): string {
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(14)} ${c.summary}`);
  return `usage: postern <command> [options]\n       postern --version\n\ncommands:\n${lines.join('\n')}\n\nSee docs/cli.md for every option.\n`;
}

/** Runs the CLI; the only place that prints an error and sets the exit code. */
export async function main(argv: string[]): Promise<void> {
  // A reader that went away (`postern expose … --json | head -1`) ends the command quietly, as it
  // does other Unix tools, instead of an unhandled EPIPE.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
    process.exit();
  });
  const [name, ...rest] = argv;
  const verbose = rest.includes('--verbose');
  const args = rest.filter((a) => a !== '--verbose');
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(help());
    return;
  }
  if (name === '--version' || name === '-v' || name === 'version') {
    process.stdout.write(`postern ${packageVersion()} (agent protocol ${PROTOCOL_VERSION})\n`);
    return;
  }
  const command = COMMANDS[name];
  try {
    if (command === undefined) {
      const meant = closest(name, Object.keys(COMMANDS));
      throw new UsageError(
        `unknown command "${name}" (${meant === undefined ? '' : `did you mean ${meant}? `}commands: ${Object.keys(COMMANDS).join(', ')})`,
      );
    }
    const loaded = await command.load();
    if (args.includes('--help') || args.includes('-h')) {
      process.stdout.write(
        `usage: ${loaded.usage}\n\n${command.summary}\n\noptions:\n${helpText(loaded.options)}\n`,
      );
      return;
    }
    await loaded.run(args);
  } catch (error) {
    // One line whatever the error quotes: control characters are escaped.
    const message = printable(error instanceof Error ? error.message : String(error));
    process.stderr.write(`postern ${name}: ${message}\n`);
    // Scripts reading --json see every fatal error on stdout too, startup ones included.
    if (args.includes('--json') || /^(1|true)$/.test(process.env.POSTERN_JSON ?? ''))
      process.stdout.write(`${JSON.stringify({ event: 'error', code: errorCodeOf(error), message })}\n`);
    if (verbose) {
      let cause = error instanceof Error ? error.cause : undefined;
      while (cause instanceof Error) {
        process.stderr.write(`  caused by: ${cause.message}\n`);
        cause = cause.cause;
      }
    }
    process.exitCode = error instanceof UsageError ? 2 : error instanceof PosternError ? 1 : 70;
    if (!(error instanceof PosternError) && verbose && error instanceof Error)
      process.stderr.write(`${error.stack}\n`);
    process.exit();
  }
}

tuneGarbageCollector();
raiseMallocTrimThreshold();
await main(process.argv.slice(2));
