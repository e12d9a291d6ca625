/**
 * The relay dashboard: one self-contained page (no external assets, works offline) that polls
 * /api/status every 2 s and shows the node and its tunnels. Everything shown goes through
 * textContent, never innerHTML, so nothing from an agent can run script here.
 */
export const DASHBOARD_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>postern relay</title>
<style>
  body { font: 14px system-ui, sans-serif; margin: 2rem; color: #222; }
  h1 { font-size: 1.3rem; }
  table { border-collapse: collapse; margin-top: 1rem; width: 100%; }
  th, td { text-align: left; padding: .3rem .6rem; border-bottom: 1px solid #ddd; vertical-align: top; }
  th { background: #f4f4f4; }
  code { font-size: 12px; }
  #error { color: #b00; }
</style>
</head>
<body>
<h1>postern relay</h1>
<p id="node">loading…</p>
<p id="cluster"></p>
<p id="error"></p>
<table>
  <thead><tr><th>tunnel</th><th>name</th><th>kind</th><th>access</th><th>sessions</th><th>open streams</th><th>streams/s</th><th>streams in all</th><th>agents</th></tr></thead>
  <tbody id="tunnels"></tbody>
</table>
<script>
  const token = new URLSearchParams(location.hash.slice(1)).get('token');
  const cell = (row, text) => { const td = document.createElement('td'); td.textContent = String(text); row.appendChild(td); return td; };
  // Rates come from the change in each tunnel's streamsTotal between two polls.
  let previous = new Map();
  // "up 3 h 12 min (since 2 Dec 2026, 23:26)": how long, then when, in the reader's own time zone.
  const since = (iso) => {
    const s = Math.max(0, Math.floor((Date.now() - Date.parse(iso)) / 1000));
    const span = s < 60 ? s + ' s' : s < 3600 ? Math.floor(s / 60) + ' min'
      : s < 86400 ? Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min'
      : Math.floor(s / 86400) + ' d ' + Math.floor((s % 86400) / 3600) + ' h';
    const at = new Date(iso).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
    return 'up ' + span + ' (since ' + at + ')';
  };
  let previousAt = 0;
  async function refresh() {
    try {
      const res = await fetch('api/status', token ? { headers: { authorization: 'Bearer ' + token } } : {});
      if (!res.ok) throw new Error(res.status + ' ' + (await res.text()).trim() + (res.status === 401 ? ' — open this page as …/#token=<admin token>' : ''));
      const status = await res.json();
      document.getElementById('error').textContent = '';
      document.getElementById('node').textContent =
        'listening on ' + status.listen.join(', ') + ' · tunnels at <label>.' + status.domain + ' · ' + since(status.startedAt) +
        ' · ' + status.sessions + ' agent sessions' + (status.draining ? ' · DRAINING' : '');
      document.getElementById('cluster').textContent = status.cluster === undefined ? '' :
        'cluster node ' + status.cluster.node + ' (' + status.cluster.advertise + '), Redis ' + status.cluster.redis +
        ' · nodes: ' + status.cluster.nodes.map((n) => n.id + ' ' + n.advertise).join(', ');
      const body = document.getElementById('tunnels');
      body.replaceChildren();
      const now = performance.now();
      const seconds = (now - previousAt) / 1000;
      const totals = new Map();
      for (const t of status.tunnels) {
        totals.set(t.label, t.streamsTotal);
        const before = previous.get(t.label);
        const row = document.createElement('tr');
        const link = document.createElement('a');
        link.href = t.url; link.textContent = t.label;
        cell(row, '').appendChild(link);
        cell(row, t.name); cell(row, t.kind); cell(row, t.access.length === 0 ? 'open' : t.access.join(', '));
        cell(row, t.sessions); cell(row, t.activeStreams);
        cell(row, before === undefined ? '…' : ((t.streamsTotal - before) / seconds).toFixed(1)); cell(row, t.streamsTotal);
        cell(row, t.agents.map((a) => a.remoteAddress + ' (' + a.activeStreams + ' streams)').join(', ') || 'offline');
        body.appendChild(row);
      }
      previous = totals;
      previousAt = now;
    } catch (error) {
      document.getElementById('error').textContent = 'cannot load status: ' + error.message;
    }
  }
  refresh();
  setInterval(refresh, 2000);
</script>
</body>
</html>
`;
