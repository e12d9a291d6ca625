import { UsageError } from './args.js';
import type { OptionTable } from './option-table.js';

export const completionUsage = 'postern completion bash|zsh|fish';

export const COMPLETION_OPTIONS = {} as const satisfies OptionTable;

/** Each command's name, summary and option table, as the shells are told them. */
export type CompletionSource = readonly { name: string; summary: string; options: OptionTable }[];

const SHELLS = ['bash', 'zsh', 'fish'] as const;

/**
 * `postern completion <shell>`: prints a completion script written from the option tables, so it
 * offers exactly the commands and flags this version has. `source <(postern completion bash)`.
 */
export function completionCommand(positionals: string[], commands: CompletionSource): void {
  const [shell, ...extra] = positionals;
  if (shell === undefined || extra.length > 0 || !(SHELLS as readonly string[]).includes(shell))
    throw new UsageError(`completion takes one shell: ${SHELLS.join(', ')} (usage: ${completionUsage})`);
  process.stdout.write(shell === 'fish' ? fishScript(commands) : bashScript(commands, shell === 'zsh'));
}

/** The flags of a table as typed, hidden aliases left out. */
function flags(options: OptionTable): string[] {
  return Object.entries(options)
    .filter(([, def]) => def.hidden !== true)
    .map(([name]) => `--${name}`);
}

function bashScript(commands: CompletionSource, zsh: boolean): string {
  const cases = commands
    .map(({ name, options }) => `    ${name}) opts="${[...flags(options), '--help'].join(' ')}" ;;`)
    .join('\n');
  return `# postern completion for ${zsh ? 'zsh' : 'bash'}: source <(postern completion ${zsh ? 'zsh' : 'bash'})
${zsh ? '(( $+functions[compdef] )) || { autoload -U +X compinit && compinit -u }\nautoload -U +X bashcompinit && bashcompinit\n' : ''}_postern() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" opts
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=( $(compgen -W "${commands.map((c) => c.name).join(' ')} --help --version" -- "$cur") )
    return
  fi
  case "\${COMP_WORDS[1]}" in
${cases}
    *) opts="" ;;
  esac
  if [[ "$cur" == -* ]]; then
    COMPREPLY=( $(compgen -W "$opts" -- "$cur") )
  else
    COMPREPLY=( $(compgen -f -- "$cur") )
  fi
}
complete -o default -F _postern postern
`;
}

/** Single quotes for fish: a quote inside is written \\'. */
function fishQuote(text: string): string {
  return `'${text.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

function fishScript(commands: CompletionSource): string {
  const lines = ['# postern completion for fish: postern completion fish | source', 'complete -c postern -f'];
  for (const { name, summary } of commands)
    lines.push(`complete -c postern -n __fish_use_subcommand -a ${name} -d ${fishQuote(summary)}`);
  for (const { name, options } of commands)
    for (const [flag, def] of Object.entries(options)) {
      if (def.hidden === true) continue;
      const takes =
        def.value === undefined ? '' : def.choices ? ` -x -a ${fishQuote(def.choices.join(' '))}` : ' -r';
      lines.push(
        `complete -c postern -n '__fish_seen_subcommand_from ${name}' -l ${flag}${takes} -d ${fishQuote(def.help)}`,
      );
    }
  return `${lines.join('\n')}\n`;
}
