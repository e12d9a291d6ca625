// The inspector page. Everything it shows goes through textContent or a text node, never
// innerHTML: a captured body is data, and the server's Content-Security-Policy allows no script
// but this file in any case.
'use strict';

const $ = (id) => document.getElementById(id);
const rows = $('rows');
const detail = $('detail');
const summaries = new Map();
let selected = null;
let reloadTimer = null;
let detailTimer = null;

function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes ?? {})) {
    if (name === 'class') node.className = value;
    else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(typeof child === 'string' ? document.createTextNode(child) : child);
  }
  return node;
}

function filters() {
  const params = new URLSearchParams();
  for (const name of ['search', 'kind', 'status']) {
    const value = $(name).value;
    if (value !== '') params.set(name === 'search' ? 'q' : name, value);
  }
  return params;
}

async function getJson(url, init) {
  const res = await fetch(url, init);
  const body = await res.json().catch(() => ({ error: `HTTP ${res.status}` }));
  if (!res.ok) throw new Error(body.error ?? `HTTP ${res.status}`);
  return body;
}

const size = (bytes) =>
  bytes < 1024
    ? `${bytes} B`
    : bytes < 1 << 20
      ? `${(bytes / 1024).toFixed(1)} KiB`
      : `${(bytes / (1 << 20)).toFixed(1)} MiB`;
const clock = (iso) => `${new Date(iso).toLocaleTimeString([], { hour12: false })}.${iso.slice(20, 23)}`;
const kindLabel = { http: 'HTTP', websocket: 'WS', tcp: 'TCP' };

function statusText(s) {
  if (s.state === 'failed') return s.status === null ? 'failed' : `${s.status} cut`;
  if (s.status === null) return s.state === 'open' ? '…' : '—';
  if (s.kind !== 'http' && s.status === 101) return s.state === 'open' ? 'open' : 'closed';
  return String(s.status);
}

function row(s) {
  const request = s.kind === 'tcp' ? `TCP ${s.path}` : `${s.method} ${s.path}`;
  const statusClass = s.state === 'failed' ? 'failed' : s.status === null ? '' : `s${String(s.status)[0]}`;
  const tr = el(
    'tr',
    { class: 'entry', 'data-id': s.id, onclick: () => select(s.id) },
    el('td', null, s.id),
    el('td', null, clock(s.startedAt)),
    el('td', null, el('span', { class: 'kind' }, kindLabel[s.kind] ?? s.kind)),
    // Table cells ignore max-width: the clipping box is a div, so a long path or a "replay of"
    // tag never pushes the status, time and size columns out of view.
    el(
      'td',
      { class: 'path' },
      el(
        'div',
        { class: 'clip', title: request },
        request,
        s.replayOf ? el('span', { class: 'muted' }, ` (replay of #${s.replayOf})`) : null,
      ),
    ),
    el('td', { class: statusClass }, statusText(s)),
    el('td', null, s.durationMs === null ? '' : `${Math.round(s.durationMs)} ms`),
    el('td', null, size(s.bytesIn + s.bytesOut)),
  );
  if (s.id === selected) tr.classList.add('selected');
  return tr;
}

function render() {
  const sorted = [...summaries.values()].sort((a, b) => Number(b.id) - Number(a.id));
  rows.replaceChildren(...sorted.map(row));
  $('empty').hidden = sorted.length > 0;
}

async function reload() {
  try {
    const { captures } = await getJson(`/api/requests?${filters()}`);
    summaries.clear();
    for (const s of captures) summaries.set(s.id, s);
    render();
  } catch (error) {
    $('live').textContent = `error: ${error.message}`;
  }
}

function scheduleReload() {
  clearTimeout(reloadTimer);
  reloadTimer = setTimeout(reload, 250);
}

function onCapture(s) {
  // A search may match on bodies the page never sees: ask the server again.
  if (filters().toString() !== '') scheduleReload();
  else {
    summaries.set(s.id, s);
    if (summaries.size > 2000) summaries.delete([...summaries.keys()].sort((a, b) => a - b)[0]);
    const existing = rows.querySelector(`tr[data-id="${CSS.escape(s.id)}"]`);
    if (existing) existing.replaceWith(row(s));
    else render();
    $('empty').hidden = true;
  }
  if (s.id === selected) {
    clearTimeout(detailTimer);
    detailTimer = setTimeout(() => select(s.id, true), 300);
  }
}

function headerTable(headers) {
  return el(
    'table',
    { class: 'headers' },
    ...headers.map(([name, value]) => el('tr', null, el('td', null, name), el('td', null, value))),
  );
}

function hexDump(base64, limit) {
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0)).subarray(0, limit);
  const lines = [];
  for (let i = 0; i < bytes.length; i += 16) {
    const chunk = [...bytes.subarray(i, i + 16)];
    const hex = chunk.map((b) => b.toString(16).padStart(2, '0')).join(' ');
    const ascii = chunk.map((b) => (b >= 32 && b < 127 ? String.fromCharCode(b) : '.')).join('');
    lines.push(`${i.toString(16).padStart(8, '0')}  ${hex.padEnd(47)}  ${ascii}`);
  }
  return lines.join('\n');
}

function bodyBlock(title, body, id, which) {
  const notes = [];
  if (body.size === 0) return el('div', null, el('h2', null, title), el('p', { class: 'muted' }, 'no body'));
  notes.push(size(body.size));
  if (body.truncated) notes.push(`kept the first ${size(body.kept)} (truncated)`);
  if (body.decodedFrom) notes.push(`shown decoded from ${body.decodedFrom}`);
  if (body.contentType) notes.push(body.contentType);
  let shown;
  if (body.text !== undefined) {
    let text = body.text;
    if (/json/i.test(body.contentType ?? '') || /^\s*[[{]/.test(text)) {
      try {
        text = JSON.stringify(JSON.parse(text), null, 2);
      } catch {
        // Not JSON after all (or cut): shown as sent.
      }
    }
    shown = el('pre', { class: 'body' }, text);
  } else {
    notes.push('binary');
    const limit = 4096;
    const dump = hexDump(body.base64, limit);
    shown = el(
      'pre',
      { class: 'body hex' },
      dump + (body.kept > limit ? `\n… ${size(body.kept - limit)} more` : ''),
    );
  }
  return el(
    'div',
    null,
    el('h2', null, title),
    el(
      'p',
      { class: 'muted' },
      notes.join(' · '),
      ' · ',
      el('a', { href: `/api/requests/${id}/body/${which}` }, 'download'),
    ),
    shown,
  );
}

function messagesBlock(c) {
  const head = el('tr', null, ...['', 'at', 'type', 'size', 'payload'].map((h) => el('th', null, h)));
  const list = c.messageList.map((m) =>
    el(
      'tr',
      { class: `msg-${m.direction}` },
      el(
        'td',
        { title: m.direction === 'in' ? 'from the visitor' : 'to the visitor' },
        m.direction === 'in' ? '→' : '←',
      ),
      el('td', null, `${Math.round(m.atMs)} ms`),
      el('td', null, m.type + (m.compressed ? ' (deflate)' : '')),
      el(
        'td',
        null,
        (m.inflatedSize === null ? size(m.size) : `${size(m.inflatedSize)} (${size(m.size)} sent)`) +
          (m.truncated ? ' (cut)' : ''),
      ),
      el(
        'td',
        { class: 'text' },
        m.inflateNote ? el('div', { class: 'muted' }, m.inflateNote) : null,
        m.text !== undefined ? m.text : el('pre', { class: 'hex' }, hexDump(m.base64, 64)),
      ),
    ),
  );
  const note =
    c.messages > c.messagesKept
      ? `${c.messages} messages, the last ${c.messagesKept} kept`
      : `${c.messages} messages`;
  return el(
    'div',
    null,
    el('h2', null, 'Messages'),
    el('p', { class: 'muted' }, note, c.framingNote ? ` · ${c.framingNote}` : ''),
    el('table', { class: 'messages' }, head, ...list),
  );
}

function editForm(c) {
  const method = el('input', { name: 'method', value: c.method });
  const path = el('input', { name: 'path', value: c.path });
  const headers = el('textarea', { name: 'headers' });
  headers.value = c.requestHeaders.map(([n, v]) => `${n}: ${v}`).join('\n');
  const body = el('textarea', { name: 'body' });
  body.value = c.requestBody.text ?? '';
  const form = el(
    'form',
    { class: 'edit' },
    el('label', null, 'Method ', method),
    el('label', null, 'Path ', path),
    el('label', null, 'Headers (one "Name: value" a line)'),
    headers,
    el('label', null, 'Body'),
    body,
    el('div', { class: 'actions' }, el('button', { type: 'submit' }, 'Send')),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const pairs = headers.value
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => {
        const at = line.indexOf(':');
        return [line.slice(0, at).trim(), line.slice(at + 1).trim()];
      });
    replay(c.id, { method: method.value, path: path.value, headers: pairs, body: body.value });
  });
  return form;
}

async function replay(id, edits) {
  const out = $('replay-result');
  out.textContent = 'replaying…';
  try {
    const result = await getJson(`/api/requests/${id}/replay`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(edits ?? {}),
    });
    out.textContent = `replayed as #${result.id}: ${result.status}`;
  } catch (error) {
    out.textContent = `replay failed: ${error.message}`;
  }
}

async function select(id, refresh) {
  selected = id;
  for (const tr of rows.querySelectorAll('tr.selected')) tr.classList.remove('selected');
  rows.querySelector(`tr[data-id="${CSS.escape(id)}"]`)?.classList.add('selected');
  let c;
  try {
    c = await getJson(`/api/requests/${id}`);
  } catch (error) {
    detail.replaceChildren(el('p', { class: 'failed' }, error.message));
    return;
  }
  if (selected !== id) return;
  const keepResult = refresh ? $('replay-result')?.textContent : '';
  const facts = [
    `#${c.id}`,
    c.service,
    clock(c.startedAt),
    c.durationMs === null ? 'open' : `${Math.round(c.durationMs)} ms`,
    c.visitor ? `from ${c.visitor}` : null,
    c.replayOf ? `replay of #${c.replayOf}` : null,
  ].filter(Boolean);
  const parts = [
    el('h2', { id: 'title' }, c.kind === 'tcp' ? `TCP connection to ${c.path}` : `${c.method} ${c.path}`),
    el('p', { class: 'muted' }, facts.join(' · ')),
    el(
      'p',
      { class: c.state === 'failed' ? 'failed' : '' },
      `Status: ${statusText(c)}${c.error ? ` — ${c.error}` : ''}`,
    ),
  ];
  if (c.kind === 'http') {
    const editHolder = el('div', { class: 'edit-holder' });
    parts.push(
      el(
        'div',
        { class: 'actions' },
        el('button', { type: 'button', id: 'replay', onclick: () => replay(c.id) }, 'Replay'),
        el(
          'button',
          { type: 'button', id: 'edit-replay', onclick: () => editHolder.replaceChildren(editForm(c)) },
          'Edit & replay',
        ),
        el('span', { id: 'replay-result', class: 'muted' }, keepResult ?? ''),
      ),
      editHolder,
    );
  }
  if (c.kind !== 'tcp') parts.push(el('h2', null, 'Request headers'), headerTable(c.requestHeaders));
  if (c.kind === 'http') parts.push(bodyBlock('Request body', c.requestBody, c.id, 'request'));
  if (c.kind !== 'tcp' && c.status !== null)
    parts.push(el('h2', null, 'Response headers'), headerTable(c.responseHeaders));
  if (c.kind === 'http') parts.push(bodyBlock('Response body', c.responseBody, c.id, 'response'));
  if (c.kind === 'websocket') parts.push(messagesBlock(c));
  if (c.kind !== 'http')
    parts.push(el('p', null, `${size(c.bytesIn)} from the visitor · ${size(c.bytesOut)} to the visitor`));
  // A live update of the capture on screen must not throw away an edit the user has started.
  const openEdit = detail.dataset.id === String(c.id) ? detail.querySelector('form.edit') : null;
  if (openEdit) parts.find((part) => part.classList?.contains('edit-holder'))?.replaceChildren(openEdit);
  detail.dataset.id = String(c.id);
  detail.replaceChildren(...parts);
}

function connectLive() {
  const events = new EventSource('/api/events');
  events.addEventListener('open', () => {
    $('live').textContent = 'live';
    $('live').classList.add('on');
    reload();
  });
  events.addEventListener('error', () => {
    $('live').textContent = 'reconnecting…';
    $('live').classList.remove('on');
  });
  events.addEventListener('capture', (event) => onCapture(JSON.parse(event.data)));
  events.addEventListener('reset', () => reload());
}

async function showServices() {
  try {
    const status = await getJson('/api/status');
    const services = (status.services ?? []).map((s) => `${s.name}: ${s.connect ?? s.url}`);
    $('services').textContent = services.join(' · ');
  } catch {
    // The list still works without the header line.
  }
}

$('search').addEventListener('input', scheduleReload);
$('kind').addEventListener('change', reload);
$('status').addEventListener('change', reload);
$('clear').addEventListener('click', async () => {
  await getJson('/api/requests', { method: 'DELETE', headers: { 'content-type': 'application/json' } });
  selected = null;
  detail.replaceChildren(el('p', { class: 'hint' }, 'Select a request to see it.'));
  reload();
});
showServices();
connectLive();
