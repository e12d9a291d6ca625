import { readFileSync } from 'node:fs';

// The page's files sit next to this module (the build copies src/inspector/page into dist), read
// once: the inspector works offline and serves nothing from anywhere else.
const read = (name: string): string => readFileSync(new URL(`./page/${name}`, import.meta.url), 'utf8');

export const INSPECTOR_HTML = read('index.html');
export const INSPECTOR_JS = read('app.js');
export const INSPECTOR_CSS = read('app.css');
