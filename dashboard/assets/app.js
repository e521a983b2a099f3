// app.js: the dashboard page. It reads the range and filters from the URL,
// streams overviews from /dashboard/api/stream (Server-Sent Events) and
// renders them; every figure comes from the server, which computes it with
// the metrics library. No framework, no build step.
import { lineChart } from '/dashboard/assets/chart.js';

const API = '/dashboard/api';
const FILTERS = ['pipeline', 'networkType', 'appVersion', 'osVersion'];
const RANGES = ['15m', '1h', '24h', '7d', '30d'];
const SEGMENT_TITLES = { os_version: 'OS version', app_version: 'App version', device_model: 'Device model', network_type: 'Network type' };
const COLORS = { blue: '#1d4ed8', amber: '#b45309', red: '#b91c1c', green: '#047857', purple: '#6d28d9' };

const $ = (id) => document.getElementById(id);
const nf = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });

// Formats: full for KPIs and tooltips, short for axes.
const fmt = {
  ratio: (v) => v == null ? '—' : `${(v * 100).toFixed(v !== 0 && Math.abs(v) < 0.01 ? 2 : 1)}%`,
  ratioAxis: (v) => `${Math.round(v * 1000) / 10}%`,
  ms: (v) => {
    if (v == null) return '—';
    if (v < 1000) return `${v.toFixed(v < 10 ? 1 : 0)} ms`;
    if (v < 60e3) return `${(v / 1e3).toFixed(1)} s`;
    if (v < 3600e3) return `${(v / 60e3).toFixed(1)} min`;
    return `${(v / 3600e3).toFixed(1)} h`;
  },
  count: (v) => v == null ? '—' : nf.format(v),
  countAxis: (v) => v >= 1e6 ? `${v / 1e6}M` : v >= 1e3 ? `${v / 1e3}k` : String(v),
  perSec: (v) => v == null ? '—' : `${v.toFixed(v < 10 ? 2 : 1)} msg/s`,
  perSecAxis: (v) => `${Math.round(v * 100) / 100}/s`,
  bytes: (v) => v == null ? '—' : `${nf.format(Math.round(v))} B`,
  decimal: (v) => v == null ? '—' : v.toFixed(2),
};

// State: the range and filters, from the URL.
function readURL() {
  const q = new URLSearchParams(location.search);
  const range = RANGES.includes(q.get('range')) ? q.get('range') : '1h';
  const filters = {};
  for (const f of FILTERS) if (q.get(f)) filters[f] = q.get(f);
  return { range, filters };
}
let state = readURL();

function queryString() {
  const q = new URLSearchParams();
  q.set('range', state.range);
  for (const f of FILTERS) if (state.filters[f]) q.set(f, state.filters[f]);
  return q.toString();
}

function writeURL() {
  history.replaceState(null, '', `${location.pathname}?${queryString()}`);
}

// Live stream and its status.
let source = null;
let lastData = 0;
let interval = 2000;
let status = 'connecting';

function setStatus(s, text) {
  status = s;
  $('status').className = `status ${s}`;
  $('status-text').textContent = text;
}

function connect() {
  if (source) source.close();
  source = new EventSource(`${API}/stream?${queryString()}`);
  source.addEventListener('overview', (e) => {
    lastData = lastEvent = Date.now();
    const ov = JSON.parse(e.data);
    render(ov);
    setStatus('live', liveText());
  });
  source.addEventListener('live', (e) => {
    lastEvent = Date.now();
    const lu = JSON.parse(e.data);
    nextOverviewAt = Date.now() + lu.nextOverviewMs;
    nextOverviewMs = lu.nextOverviewMs;
    renderLive(lu);
    if (status === 'stale' && Date.now() - lastData <= staleAfter()) setStatus('live', liveText());
  });
  source.addEventListener('problem', (e) => {
    setStatus('problem', `Server problem: ${JSON.parse(e.data).message}`);
  });
  source.addEventListener('auth', () => { source.close(); toLogin(); });
  source.onerror = () => {
    setStatus('unreachable', lastData ? `Server unreachable · data from ${new Date(lastData).toLocaleTimeString()}` : 'Server unreachable');
    if (source.readyState === EventSource.CLOSED) {
      // The browser gives up on an HTTP error (such as 401): find out why.
      setTimeout(async () => {
        try {
          const r = await fetch(`${API}/overview?${queryString()}`, { credentials: 'same-origin' });
          if (r.status === 401) return toLogin();
        } catch (_) { /* still unreachable */ }
        connect();
      }, interval);
    }
  };
}

function toLogin() {
  location.href = `/dashboard/login?next=${encodeURIComponent(location.pathname + location.search)}`;
}

// A heavy range (30 days over millions of events) takes long to compute;
// the server then spaces its overviews out and says when the next is due.
let lastEvent = 0;
let nextOverviewAt = 0;
let nextOverviewMs = 0;

function liveText() {
  const t = new Date(lastData).toLocaleTimeString();
  return nextOverviewMs > 5000 ? `Live · figures from ${t}, next in ~${Math.round(nextOverviewMs / 1000)} s` : `Live · updated ${t}`;
}

// How old the figures may get: three intervals, or the announced wait for
// the next overview and as long again.
function staleAfter() {
  return Math.max(3 * interval, 2 * nextOverviewMs + interval);
}

// Stale: the stream is open, but no event came for three intervals, or the
// figures are older than expected.
setInterval(() => {
  const now = Date.now();
  if (status === 'live' && lastData && (now - lastEvent > 3 * interval || now - lastData > staleAfter())) {
    setStatus('stale', `Stale · last update ${Math.round((now - lastData) / 1000)} s ago`);
  }
}, 1000);

// Rendering helpers.
function setKPI(id, value, format, info) {
  const e = $(id);
  e.textContent = format(value);
  e.dataset.value = value == null ? '' : String(value);
  if (info) e.title = `${info.description}\n${info.formula}`;
}

function cell(row, text, cls) {
  const td = document.createElement('td');
  if (cls) td.className = cls;
  if (text instanceof Node) td.append(text); else td.textContent = text;
  row.append(td);
  return td;
}

// table renders rows into container: columns [{title, num, get(row) → text|Node}].
function table(container, columns, rows, opts = {}) {
  const t = document.createElement('table');
  const head = t.createTHead().insertRow();
  for (const c of columns) {
    const th = document.createElement('th');
    th.scope = 'col';
    th.textContent = c.title;
    if (c.num) th.className = 'num';
    head.append(th);
  }
  const body = t.createTBody();
  if (rows.length === 0) {
    const r = body.insertRow();
    const td = cell(r, opts.empty || 'No data in this range', 'empty');
    td.colSpan = columns.length;
  }
  for (const row of rows) {
    const r = body.insertRow();
    if (opts.rowClass) r.className = opts.rowClass(row);
    for (const c of columns) cell(r, c.get(row), c.num ? 'num' : '');
  }
  if (opts.id) t.id = opts.id;
  container.replaceChildren(t);
}

function bar(value, max, text, bad) {
  const wrap = document.createElement('div');
  wrap.className = 'barcell';
  const b = document.createElement('div');
  b.className = bad ? 'bar bad' : 'bar';
  b.style.width = `${max > 0 && value ? Math.max(2, (value / max) * 56) : 0}px`;
  const s = document.createElement('span');
  s.textContent = text;
  wrap.append(b, s);
  return wrap;
}

const label = (v) => v === '' ? '(none)' : v;

function pts(trend) { return (trend && trend.points) || []; }

// render draws a whole overview.
function render(ov) {
  interval = Math.max(1000, ov.streamIntervalMs || interval);
  const from = Date.parse(ov.from), to = Date.parse(ov.to);
  const defs = ov.definitions || {};
  $('window').textContent = `${new Date(from).toLocaleString()} – ${new Date(to).toLocaleString()} · ${ov.range}` +
    (Object.keys(ov.filters).length ? ` · filtered by ${Object.entries(ov.filters).map(([k, v]) => `${k}=${v}`).join(', ')}` : '');
  // The window and filters of the figures shown, for scripts and tests
  // that compare them with GraphQL.
  Object.assign($('window').dataset, { from: ov.from, to: ov.to, range: ov.range, filters: new URLSearchParams(ov.filters).toString() });
  renderOptions(ov.options || {});
  const chart = (id, label, series, format, yMax) => lineChart($(id), { from, to, bucketMs: ov.bucketMs, series, format, yMax, label });

  // Connection health.
  const h = ov.health;
  setKPI('kpi-connections', h.overall.connections, fmt.count, defs.connections);
  $('kpi-connect-failures').textContent = `${fmt.count(h.overall.connectFailures)} failed attempts`;
  setKPI('kpi-success-rate', h.overall.successRate, fmt.ratio, defs.connection_success_rate);
  setKPI('kpi-avg-duration', h.overall.avgDurationMs, fmt.ms, defs.avg_connection_duration_ms);
  setKPI('kpi-reconnects', h.overall.reconnectsPerSession, fmt.decimal, defs.reconnects_per_session);
  table($('health-by-network'), [
    { title: 'Network', get: (r) => label(r.group) },
    { title: 'Connections', num: true, get: (r) => fmt.count(r.connections) },
    { title: 'Failed', num: true, get: (r) => fmt.count(r.connectFailures) },
    { title: 'Success', num: true, get: (r) => fmt.ratio(r.successRate) },
    { title: 'Avg duration', num: true, get: (r) => fmt.ms(r.avgDurationMs) },
    { title: 'Reconnects per session', num: true, get: (r) => fmt.decimal(r.reconnectsPerSession) },
  ], h.byNetworkType || [], { id: 'table-health-network' });
  chart('chart-connections', 'Connections per bucket', [{ name: 'connections', color: COLORS.blue, points: pts(h.connectionsTrend) }], (v, axis) => axis ? fmt.countAxis(v) : fmt.count(v));
  chart('chart-success-rate', 'Connection success rate', [{ name: 'success rate', color: COLORS.green, points: pts(h.successRateTrend) }], (v, axis) => axis ? fmt.ratioAxis(v) : fmt.ratio(v), 1);

  // Errors.
  const e = ov.errors;
  setKPI('kpi-error-rate', e.errorRate, fmt.ratio, defs.error_rate);
  $('kpi-error-sessions').textContent = `of ${fmt.count(e.sessions)} sessions`;
  const maxErr = Math.max(0, ...(e.top || []).map((r) => r.count));
  table($('errors-top'), [
    { title: 'Code', get: (r) => r.code || '(none)' },
    { title: 'Provider', get: (r) => r.provider || '—' },
    { title: 'Retry', get: (r) => { const s = document.createElement('span'); s.className = r.retryable ? 'retry-yes' : 'retry-no'; s.textContent = r.retryable ? 'yes' : 'no'; return s; } },
    { title: 'Count', get: (r) => bar(r.count, maxErr, fmt.count(r.count), true) },
    { title: 'Jobs', num: true, get: (r) => fmt.count(r.sessions) },
  ], e.top || [], { id: 'table-errors', empty: 'No errors in this range' });
  chart('chart-error-rate', 'Error rate', [{ name: 'error rate', color: COLORS.red, points: pts(e.errorRateTrend) }], (v, axis) => axis ? fmt.ratioAxis(v) : fmt.ratio(v), 1);

  // Latency.
  const l = ov.latency;
  setKPI('kpi-rtt-avg', l.overall.avg, fmt.ms, defs.rtt_avg_ms);
  setKPI('kpi-rtt-p95', l.overall.p95, fmt.ms, defs.rtt_p95_ms);
  setKPI('kpi-rtt-p99', l.overall.p99, fmt.ms, defs.rtt_p99_ms);
  table($('latency-by-pipeline'), [
    { title: 'Pipeline', get: (r) => label(r.group) },
    { title: 'Avg', num: true, get: (r) => fmt.ms(r.avg) },
    { title: 'p50', num: true, get: (r) => fmt.ms(r.p50) },
    { title: 'p95', num: true, get: (r) => fmt.ms(r.p95) },
    { title: 'p99', num: true, get: (r) => fmt.ms(r.p99) },
    { title: 'Samples', num: true, get: (r) => fmt.count(r.samples) },
  ], l.byPipeline || [], { id: 'table-latency', empty: 'No heartbeats in this range' });
  const [avg, p95, p99] = l.trends || [];
  chart('chart-rtt', 'Heartbeat RTT', [
    { name: 'avg', color: COLORS.blue, points: pts(avg) },
    { name: 'p95', color: COLORS.amber, points: pts(p95) },
    { name: 'p99', color: COLORS.red, points: pts(p99) },
  ], (v) => fmt.ms(v));

  // Throughput.
  const t = ov.throughput;
  setKPI('kpi-message-rate', t.messageRate, fmt.decimal, defs.message_rate);
  setKPI('kpi-bytes-per-message', t.bytesPerMessage, fmt.bytes, defs.bytes_per_message);
  setKPI('kpi-throttle-rate', t.throttleRate, fmt.ratio, defs.throttle_rate);
  table($('throughput-pipelines'), [
    { title: 'Pipeline', get: (r) => label(r.pipeline) },
    { title: 'Running', num: true, get: (r) => fmt.count(r.running) },
    { title: 'Started', num: true, get: (r) => fmt.count(r.started) },
    { title: 'Completed', num: true, get: (r) => fmt.count(r.completed) },
    { title: 'Failed', num: true, get: (r) => fmt.count(r.failed) },
    { title: 'Compl. rate', num: true, get: (r) => fmt.ratio(r.completionRate) },
  ], t.pipelines || [], { id: 'table-pipelines', empty: 'No jobs in this range' });
  chart('chart-message-rate', 'Messages per second', [{ name: 'messages/s', color: COLORS.purple, points: pts(t.messageRateTrend) }], (v, axis) => axis ? fmt.perSecAxis(v) : fmt.perSec(v));

  // Client segmentation.
  const seg = $('segments');
  const blocks = [];
  for (const s of ov.segments || []) {
    const div = document.createElement('div');
    const h3 = document.createElement('h3');
    h3.textContent = SEGMENT_TITLES[s.dimension] || s.dimension;
    const wrap = document.createElement('div');
    wrap.className = 'table-wrap';
    const rows = [...s.rows].sort((a, b) => (b.problem - a.problem) || (b.sessions - a.sessions) || (b.connections - a.connections)).slice(0, 8);
    const maxRate = Math.max(0, ...rows.map((r) => r.errorRate || 0));
    table(wrap, [
      { title: SEGMENT_TITLES[s.dimension] || s.dimension, get: (r) => {
        const span = document.createElement('span');
        span.textContent = label(r.value) + ' ';
        if (r.problem) {
          const b = document.createElement('span');
          b.className = 'badge problem-badge';
          b.textContent = 'problem';
          b.title = r.why;
          span.append(b);
        }
        return span;
      } },
      { title: 'Sessions', num: true, get: (r) => fmt.count(r.sessions) },
      { title: 'Error rate', get: (r) => bar(r.errorRate, maxRate, fmt.ratio(r.errorRate), r.problem) },
      { title: 'Success', num: true, get: (r) => fmt.ratio(r.successRate) },
    ], rows, { id: `table-segment-${s.dimension}`, rowClass: (r) => r.problem ? 'problem' : '' });
    div.append(h3, wrap);
    blocks.push(div);
  }
  seg.replaceChildren(...blocks);

  renderLive({ liveConnections: h.liveConnections, liveJobs: ov.liveJobs || [], nodes: ov.nodes || [] });
  renderAlerts(ov.alerts);
  renderExperiments(ov.experiments);
}

// el makes an element with a class and text.
function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = text;
  return e;
}

const time = (t) => t ? new Date(t).toLocaleTimeString() : '—';
const since = (t) => {
  if (!t) return '—';
  const s = Math.max(0, Math.round((Date.now() - Date.parse(t)) / 1000));
  const ago = s < 60 ? `${s} s` : s < 3600 ? `${Math.round(s / 60)} min` : `${(s / 3600).toFixed(1)} h`;
  return `${time(t)} (${ago} ago)`;
};

// fmtUnit formats a value in a metric's unit.
function fmtUnit(v, unit) {
  if (v == null) return '—';
  switch (unit) {
    case 'ratio': return fmt.ratio(v);
    case 'ms': return fmt.ms(v);
    case 'messages/s': return fmt.perSec(v);
    case 'bytes': return fmt.bytes(v);
    default: return Number.isInteger(v) ? fmt.count(v) : v.toFixed(2);
  }
}

function labelText(labels) {
  const ks = Object.keys(labels || {}).filter((k) => k !== 'alertname' && k !== 'severity').sort();
  return ks.length ? ks.map((k) => `${k}=${labels[k]}`).join(', ') : '—';
}

// alertSection is a titled table, or one line when there are no rows.
function alertSection(title, columns, rows, opts) {
  if (rows.length === 0) return section(title, el('p', 'muted none-line', opts.empty));
  return section(title, wrapTable(columns, rows, opts));
}

function section(title, node) {
  const d = el('div');
  d.append(el('h3', '', title), node);
  return d;
}

function wrapTable(columns, rows, opts) {
  const w = el('div', 'table-wrap');
  table(w, columns, rows, opts);
  return w;
}

// renderAlerts fills the alerts panel from the evaluator's state.
function renderAlerts(a) {
  const box = $('alerts-content');
  if (!a) return;
  // Unchanged state keeps its nodes, so that a focused link stays focused.
  const key = JSON.stringify(a);
  if (box.dataset.key === key) return;
  box.dataset.key = key;
  const pill = $('alerts-pill');
  if (!a.configured) {
    box.className = 'placeholder muted';
    box.textContent = 'Alerts are not configured on this node.';
    $('alerts-summary').textContent = '';
    pill.hidden = true;
    return;
  }
  pill.hidden = false;
  pill.className = `alerts-pill${a.firing.length ? ' firing' : a.pending.length ? ' pending' : ''}`;
  pill.textContent = a.firing.length ? `Alerts: ${a.firing.length} firing` : a.pending.length ? `Alerts: ${a.pending.length} pending` : 'Alerts: none firing';
  box.className = '';
  $('alerts-summary').textContent = `${a.firing.length} firing · ${a.pending.length} pending · ${a.silenced.length} silenced · ${a.rules} rules` +
    (a.evaluatedAt ? ` · evaluated ${time(a.evaluatedAt)}` : ' · not evaluated yet');
  const badge = (text, cls) => el('span', `state ${cls}`, text);
  const ruleCell = (r) => {
    if (!r.link) return r.rule;
    const l = el('a', '', r.rule);
    l.href = r.link;
    l.title = 'The dashboard filtered to this alert';
    return l;
  };
  const cols = (sinceTitle) => [
    { title: 'Severity', get: (r) => badge(r.severity || '—', `sev-${r.severity}`) },
    { title: 'Rule', get: ruleCell },
    { title: 'Labels', get: (r) => el('span', 'labels', labelText(r.labels)) },
    { title: 'Value', num: true, get: (r) => fmtUnit(r.value, r.unit) },
    { title: 'Threshold', num: true, get: (r) => r.op ? `${r.op} ${fmtUnit(r.threshold, r.unit)} over ${r.window}` : '—' },
    { title: sinceTitle, get: (r) => since(r.since) },
  ];
  const left = el('div');
  left.append(
    alertSection('Firing', cols('Firing since'), a.firing, { id: 'table-alerts-firing', empty: 'Nothing firing', rowClass: () => 'firing' }),
    alertSection('Pending', cols('Pending since'), a.pending, { id: 'table-alerts-pending', empty: 'Nothing pending' }),
    alertSection('Silenced', [...cols('Since'), { title: 'Silenced by', get: (r) => (r.silencedBy || []).join(', ') }], a.silenced, { id: 'table-alerts-silenced', empty: 'Nothing silenced' }),
    // A resolved alert's value is not the one it fired with: its summary,
    // rendered at the last evaluation, says what it came down to.
    alertSection('Recently resolved', [...cols('Resolved at').filter((c) => c.title !== 'Value'), { title: 'Summary', get: (r) => r.summary || '—' }],
      a.resolved, { id: 'table-alerts-resolved', empty: 'Nothing resolved recently' }),
  );
  const right = el('div');
  right.append(alertSection('Recent notifications', [
    { title: 'Time', get: (r) => time(r.at) },
    { title: 'Receiver', get: (r) => r.type ? `${r.receiver} (${r.type})` : r.receiver },
    { title: 'Status', get: (r) => badge(r.status, `state-${r.status}`) },
    { title: 'Alerts', get: (r) => { const c = el('span', 'labels', r.alerts.join('; ') || '—'); return c; } },
    { title: 'Outcome', get: (r) => { const s = el('span', `outcome-${r.outcome}`, r.outcome + (r.attempts > 1 ? ` after ${r.attempts} attempts` : '')); if (r.error) s.title = r.error; return s; } },
  ], a.history, { id: 'table-alerts-history', empty: 'No notifications sent yet' }));
  const grid = el('div', 'split');
  grid.append(left, right);
  const nodes = [grid];
  if (a.problem) nodes.unshift(el('p', 'form-error', a.problem));
  box.replaceChildren(...nodes);
}

// Metric formats of the experiments' analysis.
const EXP_FORMAT = {
  reconnects_per_session: fmt.decimal,
  avg_connection_duration_ms: fmt.ms,
  job_completion_rate: fmt.ratio,
  rtt_p50_ms: fmt.ms,
  rtt_p95_ms: fmt.ms,
  heartbeats_per_connection_minute: fmt.decimal,
  throttle_rate: fmt.ratio,
};

const pct = (v) => v == null ? '—' : `${v >= 0 ? '+' : ''}${(v * 100).toFixed(1)}%`;
const pval = (v) => v == null ? '—' : v < 0.001 ? '< 0.001' : v.toFixed(3);

// renderExperiments fills the experiments panel with each experiment's
// arms, verdict and per-metric comparison with the control.
function renderExperiments(x) {
  const box = $('experiments-content');
  if (!x) return;
  const key = JSON.stringify(x);
  if (box.dataset.key === key) return;
  box.dataset.key = key;
  if (!x.configured) {
    box.className = 'placeholder muted';
    box.textContent = 'Experiments are not configured on this node.';
    $('experiments-summary').textContent = '';
    return;
  }
  $('experiments-summary').textContent = x.computedAt ? `results computed ${time(x.computedAt)}` : '';
  if (x.problem || x.experiments.length === 0) {
    box.className = 'placeholder muted';
    box.textContent = x.problem || 'No running or stopped experiments.';
    return;
  }
  box.className = '';
  const blocks = [];
  for (const e of x.experiments) {
    const d = el('div', 'experiment');
    d.dataset.experiment = e.id;
    const head = el('div', 'experiment-head');
    head.append(el('strong', '', e.id), el('span', `state state-${e.status === 'running' ? 'resolved' : 'silenced'}`, e.status),
      el('span', 'muted', `${e.parameter}${e.description ? ' · ' + e.description : ''}${e.startedAt ? ' · since ' + new Date(e.startedAt).toLocaleString() : ''}`));
    d.append(head, el('p', `verdict verdict-${e.verdictKind}`, e.verdict));
    const srm = el('span', `srm-line ${e.srm.flagged ? 'srm-flag' : 'muted'}`,
      e.srm.flagged ? `SRM: sample ratio mismatch (p = ${pval(e.srm.p)})` : `SRM: none (p = ${pval(e.srm.p)})`);
    const arms = wrapTable([
      { title: 'Arm', get: (a) => a.name + (a.name === e.control ? ' (control)' : '') },
      { title: e.parameter, num: true, get: (a) => fmt.count(a.value) },
      { title: 'Units', num: true, get: (a) => fmt.count(a.units) },
      { title: 'Expected share', num: true, get: (a) => fmt.ratio(a.expectedShare) },
      { title: 'Observed share', num: true, get: (a) => fmt.ratio(a.observedShare) },
    ], e.arms, { id: `table-arms-${e.id}`, empty: 'No arms' });
    const cols = [{ title: 'Metric', get: (m) => { const s = el('span', '', m.name); s.title = `${m.description} (${m.test})`; return s; } }];
    const names = e.arms.map((a) => a.name);
    names.forEach((n, i) => cols.push({ title: n, num: true, get: (m) => {
      const am = m.arms[i];
      const f = EXP_FORMAT[m.name] || fmt.decimal;
      const s = el('span', '', am ? f(am.value) : '—');
      if (am) s.title = `95% CI ${f(am.lo)} – ${f(am.hi)} (n = ${am.n})`;
      return s;
    } }));
    names.slice(1).forEach((n, i) => {
      const multi = names.length > 2 ? ` (${n})` : '';
      cols.push({ title: `Lift, 95% CI${multi}`, num: true, get: (m) => {
        const c = m.comparisons[i];
        if (!c) return '—';
        return el('span', c.significant ? 'sig' : '', `${pct(c.lift)} [${pct(c.liftLo)}, ${pct(c.liftHi)}]`);
      } });
      cols.push({ title: `p (Holm)${multi}`, num: true, get: (m) => {
        const c = m.comparisons[i];
        if (!c) return '—';
        const s = el('span', c.significant ? 'sig' : '', pval(c.pAdjusted));
        s.title = `unadjusted p = ${pval(c.p)}`;
        return s;
      } });
    });
    const metricsTable = wrapTable(cols, e.metrics, { id: `table-metrics-${e.id}`, empty: 'No results yet' });
    const grid = el('div', 'split');
    const l = el('div');
    l.append(section('Arms', arms), srm);
    grid.append(l, section('Metrics', metricsTable));
    d.append(grid);
    if (e.warnings && e.warnings.length) d.append(el('p', 'muted small', e.warnings.join(' ')));
    blocks.push(d);
  }
  box.replaceChildren(...blocks);
}

// renderLive shows the live figures: open connections (summed over the
// cluster's nodes) and the jobs this node's connections watch, for the
// inspector.
function renderLive(lu) {
  setKPI('kpi-live-connections', lu.liveConnections, fmt.count);
  // Which nodes the count sums: "open now on 2 nodes: a 12 · b 7".
  const nodes = lu.nodes || [];
  $('kpi-live-nodes').textContent = nodes.length > 1
    ? `open now on ${nodes.length} nodes: ` + nodes.map((n) => `${n.id} ${fmt.count(n.connections)}`).join(' · ')
    : 'open now';
  const lj = $('live-jobs');
  const jobs = lu.liveJobs || [];
  if (lj.dataset.jobs === jobs.join(' ')) return; // keep focus on a job button
  lj.dataset.jobs = jobs.join(' ');
  const items = [];
  if (jobs.length) {
    const s = document.createElement('span');
    s.className = 'muted';
    s.textContent = 'Jobs with open connections:';
    items.push(s);
    for (const id of jobs) {
      const b = document.createElement('button');
      b.type = 'button';
      b.textContent = id;
      b.addEventListener('click', () => { $('job-id').value = id; inspect(id); });
      items.push(b);
    }
  }
  lj.replaceChildren(...items);
}

// renderOptions fills the filter selects with the values seen in the range,
// keeping the current choice even if it is not among them.
function renderOptions(options) {
  for (const f of FILTERS) {
    const sel = $(`filter-${f}`);
    const values = [...(options[f] || [])];
    const cur = state.filters[f] || '';
    if (cur && !values.includes(cur)) values.push(cur);
    const sig = values.join('\u0000');
    if (sel.dataset.sig !== sig) {
      const opts = [new Option('All', '')];
      for (const v of values) opts.push(new Option(label(v), v));
      sel.replaceChildren(...opts);
      sel.dataset.sig = sig;
    }
    sel.value = cur;
  }
}

// Job inspector.
async function inspect(id) {
  const out = $('job-result');
  id = id.trim();
  if (!id) { out.textContent = 'Enter a job id.'; return; }
  out.textContent = 'Loading…';
  let r;
  try {
    r = await fetch(`${API}/jobs/${encodeURIComponent(id)}`, { credentials: 'same-origin' });
  } catch (_) { out.textContent = 'Server unreachable.'; return; }
  if (r.status === 401) return toLogin();
  const body = await r.json();
  if (!r.ok) { out.textContent = body.error ? body.error.message : `Error ${r.status}`; return; }
  renderJob(out, body);
}

function renderJob(out, j) {
  const parts = [];
  const st = document.createElement('div');
  st.className = 'job-state';
  st.id = 'job-state';
  const s = j.state;
  const facts = s ? [
    ['Job', s.jobId], ['Pipeline', s.pipeline], ['Status', s.status], ['Seq', String(s.seq)],
    ['Progress', s.totalCount ? `${nf.format(s.processedCount)} / ${nf.format(s.totalCount)}` : nf.format(s.processedCount)],
    ['Succeeded / failed', `${nf.format(s.successCount)} / ${nf.format(s.failureCount)}`],
    ['Last error', s.lastError ? `${s.lastError.code}${s.lastError.retryable ? ' (retryable)' : ''}` : '—'],
    ['Updated', new Date(s.updatedAt).toLocaleString()],
  ] : [['Job', j.jobId], ['State', 'not in the job store (removed by retention?)']];
  for (const [k, v] of facts) {
    const d = document.createElement('div');
    const a = document.createElement('span');
    a.className = 'kpi-label';
    a.textContent = k;
    const b = document.createElement('strong');
    b.textContent = v;
    d.append(a, b);
    st.append(d);
  }
  parts.push(st);

  const h1 = document.createElement('h3');
  h1.textContent = `Open connections (${j.connections.length})`;
  const c = document.createElement('div');
  c.className = 'table-wrap';
  table(c, [
    { title: 'Connection', get: (r) => r.connectionId },
    { title: 'Since', get: (r) => new Date(r.connectedAt).toLocaleTimeString() },
    { title: 'Network', get: (r) => r.client.networkType || '—' },
    { title: 'App', get: (r) => r.client.appVersion || '—' },
    { title: 'Resumed', get: (r) => r.resumed ? 'yes' : 'no' },
    { title: 'RTT', num: true, get: (r) => r.heartbeats ? fmt.ms(r.lastRttMs) : '—' },
    { title: 'Sent', num: true, get: (r) => fmt.count(r.messagesSent) },
  ], j.connections, { id: 'job-connections', empty: 'No open connections' });
  parts.push(h1, c);

  const h2 = document.createElement('h3');
  h2.textContent = `Event timeline (${j.timeline.length}${j.truncated ? ', latest only' : ''})`;
  const tl = document.createElement('div');
  tl.className = 'table-wrap timeline';
  table(tl, [
    { title: 'Time', get: (r) => new Date(r.ts).toLocaleTimeString(undefined, { hour12: false }) + '.' + String(new Date(r.ts).getMilliseconds()).padStart(3, '0') },
    { title: 'Event', get: (r) => { const s = document.createElement('span'); s.className = `ev-${r.event}`; s.textContent = r.event; return s; } },
    { title: 'Connection', get: (r) => r.connId || '—' },
    { title: 'Details', get: (r) => details(r) },
  ], j.timeline, { id: 'job-timeline', empty: 'No telemetry events for this job' });
  parts.push(h2, tl);
  out.replaceChildren(...parts);
}

function details(r) {
  const d = [];
  if (r.errorCode) d.push(r.errorCode + (r.provider ? ` (${r.provider})` : '') + (r.retryable ? ', retryable' : ''));
  if (r.reason) d.push(`reason ${r.reason}`);
  if (r.closeCode) d.push(`close ${r.closeCode}`);
  if (r.event === 'heartbeat') d.push(`RTT ${fmt.ms(r.rttMs)}`);
  if (r.durationMs) d.push(`lasted ${fmt.ms(r.durationMs)}`);
  if (r.messagesSent) d.push(`${nf.format(r.messagesSent)} messages`);
  if (r.networkType) d.push(r.networkType);
  if (r.appVersion) d.push(`app ${r.appVersion}`);
  return d.join(' · ');
}

// Controls.
function syncControls() {
  for (const b of document.querySelectorAll('#ranges button')) {
    b.setAttribute('aria-pressed', String(b.dataset.range === state.range));
  }
  for (const f of FILTERS) $(`filter-${f}`).value = state.filters[f] || '';
}

function init() {
  syncControls();
  writeURL();
  for (const b of document.querySelectorAll('#ranges button')) {
    b.addEventListener('click', () => {
      state.range = b.dataset.range;
      syncControls();
      writeURL();
      connect();
    });
  }
  for (const f of FILTERS) {
    $(`filter-${f}`).addEventListener('change', (e) => {
      if (e.target.value) state.filters[f] = e.target.value; else delete state.filters[f];
      writeURL();
      setStatus('connecting', 'Updating…');
      connect();
    });
  }
  $('inspector-form').addEventListener('submit', (e) => { e.preventDefault(); inspect($('job-id').value); });
  window.addEventListener('popstate', () => { state = readURL(); syncControls(); connect(); });
  connect();
}

init();
