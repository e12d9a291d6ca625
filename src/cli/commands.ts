import type { OptionTable } from './option-table.js';

/** What a command is once loaded: how it runs, its usage line and its option table (for --help). */
export interface CommandModule {
  run: (argv: string[]) => void | Promise<void>;
  usage: string;
  options: OptionTable;
}

/**
 * Every command, with its summary for `postern --help`. A command's code (and the relay, the
 * agent or the inspector behind it) loads only when that command runs: `postern --help` or
 * `postern keygen` never loads Redis or the relay.
 */
export const COMMANDS: Record<string, { summary: string; load: () => Promise<CommandModule> }> = {
  expose: {
    summary: 'publish a local service through a relay (embedded relay by default)',
    load: async () => {
      const [{ exposeCommand, exposeUsage }, { EXPOSE_OPTIONS }] = await Promise.all([
        import('./expose.js'),
        import('./expose-options.js'),
      ]);
      return { run: exposeCommand, usage: exposeUsage, options: EXPOSE_OPTIONS };
    },
  },
  connect: {
    summary: 'reach a TCP service through the HTTP Upgrade preflight (local listener or stdin/stdout)',
    load: async () => {
      const { connectCommand, connectUsage, CONNECT_OPTIONS } = await import('./connect.js');
      return { run: connectCommand, usage: connectUsage, options: CONNECT_OPTIONS };
    },
  },
  relay: {
    summary: 'run the public relay',
    load: async () => {
      const [{ relayCommand, relayUsage }, { RELAY_OPTIONS }] = await Promise.all([
        import('./relay.js'),
        import('./relay-options.js'),
      ]);
      return { run: relayCommand, usage: relayUsage, options: RELAY_OPTIONS };
    },
  },
  replay: {
    summary: "send a captured request again, as is or edited (through a running expose's inspector)",
    load: async () => {
      const { replayCommand, replayUsage, REPLAY_OPTIONS } = await import('./replay.js');
      return { run: replayCommand, usage: replayUsage, options: REPLAY_OPTIONS };
    },
  },
  keygen: {
    summary: 'create an agent key (ed25519, mode 0600)',
    load: async () => {
      const { keygenCommand, keygenUsage, KEYGEN_OPTIONS } = await import('./keygen.js');
      return { run: keygenCommand, usage: keygenUsage, options: KEYGEN_OPTIONS };
    },
  },
  id: {
    summary: "print a key's label (its hostname)",
    load: async () => {
      const { idCommand, idUsage, ID_OPTIONS } = await import('./id.js');
      return { run: idCommand, usage: idUsage, options: ID_OPTIONS };
    },
  },
  'hash-password': {
    summary: 'hash a Basic password read from stdin, for --basic-auth user:$scrypt$…',
    load: async () => {
      const { hashPasswordCommand, hashPasswordUsage, HASH_PASSWORD_OPTIONS } = await import(
        './hash-password.js'
      );
      return { run: hashPasswordCommand, usage: hashPasswordUsage, options: HASH_PASSWORD_OPTIONS };
    },
  },
  demo: {
    summary: 'start a demo app, relay and agent in one process',
    load: async () => {
      const { demoCommand, demoUsage, DEMO_OPTIONS } = await import('./demo.js');
      return { run: demoCommand, usage: demoUsage, options: DEMO_OPTIONS };
    },
  },
  completion: {
    summary: 'print a shell completion script (bash, zsh or fish) for every command and option',
    load: async () => {
      const { completionCommand, completionUsage, COMPLETION_OPTIONS } = await import('./completion.js');
      return {
        run: async (argv) => {
          const sources = await Promise.all(
            Object.entries(COMMANDS).map(async ([name, command]) => ({
              name,
              summary: command.summary,
              options: (await command.load()).options,
            })),
          );
          completionCommand(argv, sources);
        },
        usage: completionUsage,
        options: COMPLETION_OPTIONS,
      };
    },
  },
  config: {
    summary: 'check a config file (postern.yaml) and name the line of any mistake',
    load: async () => {
      const { configCommand, configUsage, CONFIG_CHECK_OPTIONS } = await import('./config.js');
      return { run: configCommand, usage: configUsage, options: CONFIG_CHECK_OPTIONS };
    },
  },
};
