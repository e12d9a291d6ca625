import { CONFIG_CHECK_OPTIONS, configCommand, configUsage } from './config.js';
import { CONNECT_OPTIONS, connectCommand, connectUsage } from './connect.js';
import { DEMO_OPTIONS, demoCommand, demoUsage } from './demo.js';
import { exposeCommand, exposeUsage } from './expose.js';
import { EXPOSE_OPTIONS } from './expose-options.js';
import { HASH_PASSWORD_OPTIONS, hashPasswordCommand, hashPasswordUsage } from './hash-password.js';
import { ID_OPTIONS, idCommand, idUsage } from './id.js';
import { KEYGEN_OPTIONS, keygenCommand, keygenUsage } from './keygen.js';
import type { OptionTable } from './option-table.js';
import { relayCommand, relayUsage } from './relay.js';
import { RELAY_OPTIONS } from './relay-options.js';
import { REPLAY_OPTIONS, replayCommand, replayUsage } from './replay.js';

/** Every command: how it runs, its usage line, its summary and its option table (for --help). */
export const COMMANDS: Record<
  string,
  {
    run: (argv: string[]) => void | Promise<void>;
    usage: string;
    summary: string;
    options: OptionTable;
  }
> = {
  expose: {
    run: exposeCommand,
    usage: exposeUsage,
    summary: 'publish a local service through a relay (embedded relay by default)',
    options: EXPOSE_OPTIONS,
  },
  connect: {
    run: connectCommand,
    usage: connectUsage,
    summary: 'reach a TCP service through the HTTP Upgrade preflight (local listener or stdin/stdout)',
    options: CONNECT_OPTIONS,
  },
  relay: { run: relayCommand, usage: relayUsage, summary: 'run the public relay', options: RELAY_OPTIONS },
  replay: {
    run: replayCommand,
    usage: replayUsage,
    summary: "send a captured request again, as is or edited (through a running expose's inspector)",
    options: REPLAY_OPTIONS,
  },
  keygen: {
    run: keygenCommand,
    usage: keygenUsage,
    summary: 'create an agent key (ed25519, mode 0600)',
    options: KEYGEN_OPTIONS,
  },
  id: { run: idCommand, usage: idUsage, summary: "print a key's label (its hostname)", options: ID_OPTIONS },
  'hash-password': {
    run: hashPasswordCommand,
    usage: hashPasswordUsage,
    summary: 'hash a Basic password read from stdin, for --basic-auth user:$scrypt$…',
    options: HASH_PASSWORD_OPTIONS,
  },
  demo: {
    run: demoCommand,
    usage: demoUsage,
    summary: 'start a demo app, relay and agent in one process',
    options: DEMO_OPTIONS,
  },
  config: {
    run: configCommand,
    usage: configUsage,
    summary: 'check a config file (postern.yaml) and name the line of any mistake',
    options: CONFIG_CHECK_OPTIONS,
  },
};
