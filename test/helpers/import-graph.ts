import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';

/**
 * The import graph of `src/`, read from the TypeScript sources as text, and the rules of
 * docs/architecture.md checked against it. Type-only imports count: a type cycle is still two
 * modules that cannot be understood apart.
 */

/** A part of the code: a folder of `src/`, `core` for the shared files at its top, or `index`. */
export type Unit = string;

/** Every part but the CLI: what the CLI and the public API may draw on. */
const EVERY_LIBRARY_PART: readonly Unit[] = [
  'core',
  'connection-string',
  'keys',
  'stream',
  'mux',
  'http',
  'session',
  'transport',
  'client',
  'agent',
  'inspector',
  'relay',
];

/** The package's entry points (`postern/client`, `postern/agent`, `postern/relay`). */
const ENTRY_POINTS: readonly Unit[] = [...EVERY_LIBRARY_PART, 'entry'];

/** Which parts each part may import (besides itself and packages). Anything else is a violation. */
export const ALLOWED_IMPORTS: Readonly<Record<Unit, readonly Unit[]>> = {
  core: [],
  'connection-string': ['core'],
  keys: ['core'],
  stream: ['core'],
  mux: ['core'],
  http: ['core', 'mux'],
  session: ['core', 'keys', 'mux'],
  transport: ['core', 'connection-string', 'stream', 'http'],
  client: ['core', 'connection-string', 'transport'],
  agent: ['core', 'connection-string', 'keys', 'stream', 'mux', 'http', 'session', 'transport'],
  inspector: ['core', 'connection-string', 'http', 'agent'],
  relay: ['core', 'connection-string', 'keys', 'stream', 'mux', 'http', 'session', 'transport'],
  cli: EVERY_LIBRARY_PART,
  index: ENTRY_POINTS,
  entry: EVERY_LIBRARY_PART,
};

/** Packages that only some parts may load, so the others start fast and stay small. */
export const PACKAGE_OWNERS: Readonly<Record<string, readonly Unit[]>> = {
  ioredis: ['relay/cluster'],
  'acme-client': ['relay/acme'],
  'prom-client': ['relay'],
  yaml: ['cli'],
};

export interface ImportEdge {
  from: string;
  to: string;
}

/** Every .ts file under src/ (paths relative to the repository, with forward slashes) and its text. */
export function readSources(root: string): Map<string, string> {
  const sources = new Map<string, string>();
  const walk = (dir: string): void => {
    for (const entry of readdirSync(join(root, dir), { withFileTypes: true })) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.ts')) sources.set(path, readFileSync(join(root, path), 'utf8'));
    }
  };
  walk('src');
  return sources;
}

const SPECIFIER =
  /(?:^|[\s;])(?:import|export)\s[^'";]*?from\s*['"]([^'"]+)['"]|\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)|^\s*import\s+['"]([^'"]+)['"]/gm;

/** The specifiers a source imports from, in order (static, re-exports, side-effect and dynamic). */
export function importSpecifiers(source: string): string[] {
  return [...source.matchAll(SPECIFIER)].map((match) => match[1] ?? match[2] ?? match[3] ?? '');
}

/** Resolves a relative specifier of `from` to the source file it names (`.js` → `.ts`). */
function resolve(from: string, specifier: string): string {
  return normalize(join(dirname(from), specifier))
    .replaceAll('\\', '/')
    .replace(/\.js$/, '.ts');
}

export function unitOf(file: string): Unit {
  const parts = relative('src', file).replaceAll('\\', '/').split('/');
  if (parts.length === 1) return parts[0] === 'index.ts' ? 'index' : 'core';
  return parts[0] as string;
}

/** `relay/cluster` for files under it, else the unit: packages may be owned by a sub-folder. */
function placeOf(file: string): string {
  const parts = relative('src', file).replaceAll('\\', '/').split('/');
  return parts.length > 2 ? `${parts[0]}/${parts[1]}` : unitOf(file);
}

export function importEdges(sources: ReadonlyMap<string, string>): {
  files: ImportEdge[];
  packages: ImportEdge[];
} {
  const files: ImportEdge[] = [];
  const packages: ImportEdge[] = [];
  for (const [from, source] of sources) {
    for (const specifier of importSpecifiers(source)) {
      if (specifier.startsWith('.')) files.push({ from, to: resolve(from, specifier) });
      else if (!specifier.startsWith('node:')) packages.push({ from, to: specifier });
    }
  }
  return { files, packages };
}

/** Every rule of docs/architecture.md that the sources break, one line each; [] when none. */
export function architectureViolations(sources: ReadonlyMap<string, string>): string[] {
  const problems: string[] = [];
  const { files, packages } = importEdges(sources);
  for (const { from, to } of files) {
    if (!sources.has(to)) {
      problems.push(`${from} imports ${to}, which does not exist`);
      continue;
    }
    const a = unitOf(from);
    const b = unitOf(to);
    const allowed = ALLOWED_IMPORTS[a];
    if (allowed === undefined)
      problems.push(`${from} is in ${a}/, a folder docs/architecture.md does not name`);
    else if (a !== b && !allowed.includes(b))
      problems.push(`${from} imports ${to}: ${a} must not import ${b}`);
  }
  for (const { from, to } of packages) {
    const owners = PACKAGE_OWNERS[to];
    if (owners !== undefined && !owners.includes(placeOf(from)) && !owners.includes(unitOf(from)))
      problems.push(`${from} imports the package ${to}, which only ${owners.join(', ')} may load`);
  }
  for (const cycle of importCycles(files)) problems.push(`import cycle: ${[...cycle, cycle[0]].join(' → ')}`);
  return problems;
}

/** The strongly connected groups of more than one file (Tarjan), each in the order found. */
export function importCycles(edges: readonly ImportEdge[]): string[][] {
  const next = new Map<string, string[]>();
  for (const { from, to } of edges) {
    const list = next.get(from) ?? [];
    list.push(to);
    next.set(from, list);
  }
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  const visit = (node: string): void => {
    index.set(node, counter);
    low.set(node, counter);
    counter++;
    stack.push(node);
    onStack.add(node);
    for (const to of next.get(node) ?? []) {
      if (!index.has(to)) {
        visit(to);
        low.set(node, Math.min(low.get(node) as number, low.get(to) as number));
      } else if (onStack.has(to)) {
        low.set(node, Math.min(low.get(node) as number, index.get(to) as number));
      }
    }
    if (low.get(node) === index.get(node)) {
      const group: string[] = [];
      let member: string;
      do {
        member = stack.pop() as string;
        onStack.delete(member);
        group.push(member);
      } while (member !== node);
      if (group.length > 1 || next.get(node)?.includes(node)) cycles.push(group.reverse());
    }
  };
  for (const node of next.keys()) if (!index.has(node)) visit(node);
  return cycles;
}
