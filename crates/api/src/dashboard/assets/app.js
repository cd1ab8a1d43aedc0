// The hippo dashboard: one small script, no framework. Every tab is drawn
// from hippo's API on this listener (`/api/v1/...`) and redrawn when the
// broker's event stream (`/api/v1/events`) says something changed, or on a
// timer for what has no events (heartbeats, queue lengths).
//
// Safety: text from the server (task names, inputs, logs) only ever goes
// into the page as text nodes (`el` below), never as HTML. Changes carry
// the session's CSRF token from the page's <meta>.
'use strict';

const csrf = document.querySelector('meta[name="csrf-token"]').content;
const view = document.getElementById('view');

// ---- small helpers --------------------------------------------------------

// An element with attributes and children (strings become text nodes).
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// An SVG element (charts).
function svg(tag, attrs, ...children) {
  const node = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
  for (const child of children.flat(Infinity)) if (child) node.append(child);
  return node;
}

function table(headings, rows, attrs) {
  return el('div', { class: 'scroll' },
    el('table', attrs, el('thead', {}, el('tr', {}, headings.map((h) => el('th', {}, h)))),
      el('tbody', {}, rows.length ? rows : el('tr', {}, el('td', { colspan: headings.length, class: 'empty' }, 'nothing here')))));
}

const fmt = {
  time: (ms) => (ms ? new Date(ms).toLocaleString() : '–'),
  ago: (ms) => (ms ? `${Math.max(0, Math.round((Date.now() - ms) / 1000))} s ago` : '–'),
  ms: (v) => (v === undefined || v === null ? '–' : `${Number(v).toFixed(v < 10 ? 2 : 0)} ms`),
  bytes: (b) => (b ? `${(b / 1048576).toFixed(1)} MiB` : '–'),
  pct: (f) => `${(100 * f).toFixed(1)} %`,
  duration: (s) => (s < 120 ? `${Math.round(s)} s` : s < 7200 ? `${Math.round(s / 60)} min` : `${(s / 3600).toFixed(1)} h`),
};

function state(s) {
  return el('span', { class: `state ${String(s).toLowerCase()}` }, s);
}

// A task's failure as one line: its kind and what it says.
function failure(error) {
  const { kind, ...rest } = error;
  return `${kind}: ${rest.message || JSON.stringify(rest)}`;
}

function toast(message, bad) {
  const box = document.getElementById('toast');
  box.textContent = message;
  box.className = bad ? 'show bad' : 'show';
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { box.className = ''; }, 4000);
}

// Calls the API; throws the API's error message.
async function api(method, path, body, raw) {
  const headers = {};
  if (method !== 'GET') headers['X-CSRF-Token'] = csrf;
  let payload;
  if (raw) payload = raw;
  else if (body !== undefined) {
    payload = JSON.stringify(body);
    headers['Content-Type'] = 'application/json';
  }
  const response = await fetch(path, { method, headers, body: payload, credentials: 'same-origin' });
  if (response.status === 401) {
    location.href = '/login';
    throw new Error('logged out');
  }
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = text; }
  if (!response.ok) {
    const error = new Error((data && data.error && data.error.message) || response.statusText);
    error.status = response.status;
    throw error;
  }
  return data;
}

// A button that runs `action`, reports its outcome and redraws the tab.
function action(label, attrs, run) {
  return el('button', {
    ...attrs,
    onclick: async (event) => {
      event.preventDefault();
      const button = event.currentTarget;
      if (button.dataset.confirm && !window.confirm(button.dataset.confirm)) return;
      button.disabled = true;
      try {
        const message = await run();
        toast(message || `${label}: done`);
        redraw();
      } catch (error) {
        toast(`${label}: ${error.message}`, true);
      } finally {
        button.disabled = false;
      }
    },
  }, label);
}

// ---- tabs -----------------------------------------------------------------

const tabs = {};
let current = { tab: 'workers', arg: '' };
let drawing = null;

async function redraw() {
  const draw = tabs[current.tab] || tabs.workers;
  const token = {};
  drawing = token;
  try {
    const content = await draw(current.arg);
    if (drawing !== token) return; // a newer draw won
    view.replaceChildren(content);
  } catch (error) {
    if (drawing === token) view.replaceChildren(el('p', { class: 'error' }, error.message));
  }
}

function route() {
  const [tab, ...rest] = (location.hash.slice(1) || 'workers').split('/');
  current = { tab, arg: decodeURIComponent(rest.join('/')) };
  const active = tab === 'task' ? 'tasks' : tab === 'worker' ? 'workers' : tab;
  for (const link of document.querySelectorAll('#tabs a')) {
    link.classList.toggle('active', link.dataset.tab === active);
  }
  view.replaceChildren(el('p', { class: 'loading' }, 'loading…'));
  redraw();
}

// Redraws at most every `ms`, for bursts of events.
let pending = null;
function soon(ms) {
  if (pending) return;
  pending = setTimeout(() => { pending = null; redraw(); }, ms);
}

// ---- Workers --------------------------------------------------------------

const seenWorkers = new Map();

tabs.workers = async () => {
  const [{ workers }, active] = await Promise.all([
    api('GET', '/api/v1/tasks/inspect/stats'),
    api('GET', '/api/v1/tasks/inspect/active'),
  ]);
  const now = Date.now();
  for (const w of workers) seenWorkers.set(w.name, w);
  const live = new Set(workers.map((w) => w.name));
  const rows = [...seenWorkers.values()].map((w) => {
    const running = (active.active[w.name] || []).length;
    return el('tr', { 'data-worker': w.name },
      el('td', {}, el('a', { href: `#worker/${encodeURIComponent(w.name)}` }, w.name)),
      el('td', {}, live.has(w.name) ? state('online') : state('lost')),
      el('td', {}, w.queues.join(', ')),
      el('td', { class: 'num' }, w.concurrency),
      el('td', { class: 'num' }, running),
      el('td', { class: 'num' }, w.processed),
      el('td', { class: 'num' }, w.succeeded),
      el('td', { class: 'num' }, w.failed),
      el('td', { class: 'num' }, w.retried),
      el('td', { class: 'num' }, `${w.cpu_seconds.toFixed(1)} s`),
      el('td', { class: 'num' }, fmt.bytes(w.rss_bytes)),
      el('td', { class: 'num' }, fmt.duration((now - w.started_ms) / 1000)),
      el('td', {}, fmt.ago(w.heartbeat_ms)));
  });
  return el('section', {},
    el('h2', {}, `Workers (${workers.length} online)`),
    table(['worker', 'status', 'queues', 'concurrency', 'active', 'processed', 'succeeded', 'failed',
      'retried', 'CPU', 'RSS', 'uptime', 'heartbeat'], rows, { id: 'workers' }));
};

tabs.worker = async (name) => {
  const [{ workers }, active] = await Promise.all([
    api('GET', '/api/v1/tasks/inspect/stats'),
    api('GET', '/api/v1/tasks/inspect/active'),
  ]);
  const worker = workers.find((w) => w.name === name);
  const tasks = [...(active.active[name] || []), ...(active.reserved[name] || [])];
  return el('section', {},
    el('h2', {}, 'Worker ', el('code', {}, name), ' ', worker ? state('online') : state('lost')),
    worker && el('p', {}, `${worker.hostname} · pid ${worker.pid} · queues ${worker.queues.join(', ')} · `
      + `started ${fmt.time(worker.started_ms)}`),
    el('h3', {}, 'Its tasks'),
    taskStatusTable(tasks, 'worker-tasks'));
};

function taskStatusTable(tasks, id) {
  return table(['task id', 'name', 'state', 'queue', 'attempt', 'updated'], tasks.map((t) =>
    el('tr', { 'data-task-id': t.task_id },
      el('td', {}, el('a', { href: `#task/${encodeURIComponent(t.task_id)}` }, t.task_id)),
      el('td', {}, t.task), el('td', {}, state(t.status)), el('td', {}, t.queue),
      el('td', { class: 'num' }, t.attempt), el('td', {}, fmt.time(t.updated_ms)))), { id });
}

// ---- Tasks ----------------------------------------------------------------

const filters = { state: '', task: '', queue: '', worker: '', q: '' };

function filterForm() {
  const input = (name, placeholder) => el('input', {
    name, placeholder, value: filters[name],
    onchange: (e) => { filters[name] = e.target.value.trim(); redraw(); },
  });
  const states = ['', 'SUCCESS', 'FAILURE', 'REVOKED', 'RETRY'];
  return el('form', { class: 'filters', onsubmit: (e) => { e.preventDefault(); redraw(); } },
    el('select', { name: 'state', onchange: (e) => { filters.state = e.target.value; redraw(); } },
      states.map((s) => el('option', { value: s, selected: filters.state === s }, s || 'any state'))),
    input('task', 'task name'), input('queue', 'queue'), input('worker', 'worker'),
    input('q', 'search id or name'));
}

function historyQuery(extra) {
  const params = new URLSearchParams({ limit: '50', ...extra });
  for (const [key, value] of Object.entries(filters)) if (value) params.set(key, value);
  return params;
}

function historyRows(entries) {
  return entries.map((t) => {
    const run = [...t.attempts].reverse().find((a) => a.run);
    return el('tr', { 'data-task-id': t.id },
      el('td', {}, el('a', { href: `#task/${encodeURIComponent(t.id)}` }, t.id)),
      el('td', {}, t.task), el('td', {}, state(t.state)), el('td', {}, t.queue),
      el('td', {}, t.worker || '–'),
      el('td', { class: 'num' }, run ? fmt.ms(run.run.stats.wall_time_us / 1000) : '–'),
      el('td', {}, fmt.time(t.updated_ms)));
  });
}

tabs.tasks = async () => {
  const [page, active, stats] = await Promise.all([
    api('GET', `/api/v1/tasks?${historyQuery()}`),
    api('GET', '/api/v1/tasks/inspect/active'),
    api('GET', '/api/v1/stats/tasks?window=1h'),
  ]);
  const running = [...Object.values(active.active), ...Object.values(active.reserved)].flat();
  const body = el('tbody', {}, historyRows(page.tasks));
  let next = page.next;
  const more = el('button', {
    class: 'more',
    hidden: !next,
    onclick: async () => {
      const older = await api('GET', `/api/v1/tasks?${historyQuery({ cursor: next })}`);
      body.append(...historyRows(older.tasks));
      next = older.next;
      more.hidden = !next;
    },
  }, 'older tasks');
  return el('section', {},
    el('h2', {}, 'Running and reserved'),
    taskStatusTable(running, 'running'),
    el('h2', {}, 'Finished'),
    filterForm(),
    el('div', { class: 'scroll' }, el('table', { id: 'history' },
      el('thead', {}, el('tr', {}, ['task id', 'name', 'state', 'queue', 'worker', 'runtime', 'finished']
        .map((h) => el('th', {}, h)))),
      body)),
    more,
    el('h2', {}, 'Per task name, last hour'),
    nameTable(stats));
};

function nameTable(stats) {
  return table(['task', 'total', 'succeeded', 'failed', 'failure rate', 'p50', 'p95', 'max'],
    stats.tasks.map((t) => el('tr', { 'data-task-name': t.task },
      el('td', {}, t.task), el('td', { class: 'num' }, t.total),
      el('td', { class: 'num' }, t.states.SUCCESS || 0), el('td', { class: 'num' }, t.states.FAILURE || 0),
      el('td', { class: 'num' }, fmt.pct(t.failure_rate)), el('td', { class: 'num' }, fmt.ms(t.runtime_ms.p50)),
      el('td', { class: 'num' }, fmt.ms(t.runtime_ms.p95)), el('td', { class: 'num' }, fmt.ms(t.runtime_ms.max)))),
    { id: 'task-names' });
}

async function found(path) {
  try { return await api('GET', path); } catch (error) { if (error.status === 404) return null; throw error; }
}

const FINAL = ['SUCCESS', 'FAILURE', 'REVOKED'];

tabs.task = async (id) => {
  const path = encodeURIComponent(id);
  const [status, entry, logs] = await Promise.all([
    found(`/api/v1/tasks/status/${path}`),
    found(`/api/v1/tasks/${path}/history`),
    found(`/api/v1/tasks/${path}/log`),
  ]);
  if (!status && !entry) return el('p', { class: 'error' }, `no task ${id}`);
  const current = (status && status.status) || entry.state;
  const name = (status && status.task) || entry.task;
  const buttons = el('div', { class: 'buttons' });
  if (!FINAL.includes(current)) {
    buttons.append(action('Revoke', { id: 'revoke', 'data-confirm': `Revoke ${id}?` }, async () => {
      const r = await api('POST', `/api/v1/tasks/cancel/${path}`);
      return `revoke: ${r.outcome || 'sent'}`;
    }));
  }
  if (entry && !entry.input_truncated) {
    buttons.append(action('Retry', { id: 'retry' }, async () => {
      const r = await api('POST', '/api/v1/tasks/submit', { task: name, input: entry.input, queue: entry.queue });
      location.hash = `#task/${encodeURIComponent(r.task_id)}`;
      return `submitted again as ${r.task_id}`;
    }));
  }
  if (current === 'FAILURE') {
    buttons.append(action('Replay', { id: 'replay' }, async () => {
      const r = await api('POST', `/api/v1/tasks/deadletters/${path}/replay`);
      return `replayed as ${r.task_id}`;
    }));
  }
  const outcome = entry ? entry.result ?? entry.error : status.result ?? status.error;
  return el('section', {},
    el('h2', {}, name, ' ', state(current)),
    el('p', { class: 'mono' }, id),
    buttons,
    el('dl', {},
      el('dt', {}, 'queue'), el('dd', {}, (entry || status).queue),
      el('dt', {}, 'worker'), el('dd', {}, (entry || status).worker || '–'),
      el('dt', {}, 'submitted'), el('dd', {}, fmt.time((entry || status).submitted_ms)),
      status && status.progress && [el('dt', {}, 'progress'), el('dd', {}, JSON.stringify(status.progress))]),
    el('h3', {}, 'Input', entry && entry.input_truncated ? ' (cut)' : ''),
    el('pre', { id: 'input' }, entry ? JSON.stringify(entry.input, null, 2) : '(in the history once finished)'),
    el('h3', {}, current === 'FAILURE' ? 'Error' : 'Result'),
    el('pre', { id: 'outcome' }, outcome === undefined || outcome === null ? '–' : JSON.stringify(outcome, null, 2)),
    el('h3', {}, 'Attempts and timeline'),
    entry ? attemptsTable(entry) : el('p', {}, 'running: the attempts are kept once it settles'),
    el('h3', {}, 'Log'),
    logView(logs));
};

function attemptsTable(entry) {
  const rows = [el('tr', {}, el('td', {}, '–'), el('td', {}, 'submitted'), el('td', {}, '–'),
    el('td', {}, fmt.time(entry.submitted_ms)), el('td', {}, ''), el('td', {}, ''), el('td', {}, ''),
    el('td', {}, ''), el('td', {}, ''))];
  for (const a of entry.attempts) {
    const run = a.run;
    rows.push(el('tr', {},
      el('td', { class: 'num' }, a.attempt), el('td', {}, state(a.state)), el('td', {}, run ? run.worker : '–'),
      el('td', {}, run ? fmt.time(run.started_ms) : '–'), el('td', {}, run ? fmt.time(run.finished_ms) : '–'),
      el('td', { class: 'num' }, run ? fmt.ms(run.stats.wall_time_us / 1000) : '–'),
      el('td', { class: 'num' }, run ? run.stats.fuel_used ?? '–' : '–'),
      el('td', { class: 'num' }, run ? fmt.bytes(run.stats.peak_memory_bytes) : '–'),
      el('td', {}, a.error ? failure(a.error) : run ? `v${run.plugin_version}` : '')));
  }
  return table(['#', 'state', 'worker', 'started', 'ended', 'wall time', 'fuel', 'peak memory', 'detail'], rows,
    { id: 'attempts' });
}

function logView(logs) {
  if (!logs || !logs.attempts.length) return el('p', { id: 'log', class: 'empty' }, 'no log');
  return el('div', { id: 'log' }, logs.attempts.map((a) => [
    el('h4', {}, `attempt ${a.attempt}`, a.log.dropped_lines ? ` (${a.log.dropped_lines} lines dropped)` : ''),
    el('pre', { class: 'log' }, a.log.lines.map((l) =>
      el('span', { class: `line ${l.level}` }, `${new Date(l.at_ms).toISOString().slice(11, 23)} `
        + `${l.source.padEnd(6)} ${l.level.padEnd(5)} ${l.message}\n`))),
  ]));
}

// ---- Monitor --------------------------------------------------------------

const monitor = { window: '1h', task: '' };

function bars(buckets, width, height) {
  const max = Math.max(1, ...buckets.map((b) => b.succeeded + b.failed + b.other));
  const w = width / buckets.length;
  const shapes = [];
  buckets.forEach((b, i) => {
    let y = height;
    for (const [count, cls] of [[b.succeeded, 'ok'], [b.failed, 'bad'], [b.other, 'other']]) {
      const h = (count / max) * (height - 4);
      if (h > 0) shapes.push(svg('rect', { x: i * w + 0.5, y: y - h, width: Math.max(1, w - 1), height: h, class: cls }));
      y -= h;
    }
  });
  return svg('svg', { viewBox: `0 0 ${width} ${height}`, class: 'chart', role: 'img' },
    svg('text', { x: 4, y: 12, class: 'label' }, document.createTextNode(`max ${max} / bucket`)), shapes);
}

function lines(buckets, width, height) {
  const max = Math.max(1, ...buckets.map((b) => b.runtime_ms.p95));
  const w = width / Math.max(1, buckets.length - 1);
  const path = (key) => buckets.map((b, i) =>
    `${i ? 'L' : 'M'}${(i * w).toFixed(1)},${(height - (b.runtime_ms[key] / max) * (height - 4)).toFixed(1)}`).join(' ');
  return svg('svg', { viewBox: `0 0 ${width} ${height}`, class: 'chart', role: 'img' },
    svg('path', { d: path('p95'), class: 'p95' }), svg('path', { d: path('p50'), class: 'p50' }),
    svg('text', { x: 4, y: 12, class: 'label' }, document.createTextNode(`p50 / p95, max ${fmt.ms(max)}`)));
}

tabs.monitor = async () => {
  const params = new URLSearchParams({ window: monitor.window });
  if (monitor.task) params.set('task', monitor.task);
  const [stats, all] = await Promise.all([
    api('GET', `/api/v1/stats/tasks?${params}`),
    api('GET', `/api/v1/stats/tasks?window=${monitor.window}`),
  ]);
  const totals = stats.buckets.reduce((t, b) => [t[0] + b.succeeded, t[1] + b.failed], [0, 0]);
  return el('section', {},
    el('h2', {}, 'Monitor'),
    el('form', { class: 'filters' },
      el('select', { name: 'window', onchange: (e) => { monitor.window = e.target.value; redraw(); } },
        ['1m', '1h', '24h'].map((w) => el('option', { value: w, selected: monitor.window === w }, `last ${w}`))),
      el('select', { name: 'task', onchange: (e) => { monitor.task = e.target.value; redraw(); } },
        el('option', { value: '' }, 'every task'),
        all.tasks.map((t) => el('option', { value: t.task, selected: monitor.task === t.task }, t.task)))),
    el('p', { id: 'monitor-totals' }, `${totals[0]} succeeded, ${totals[1]} failed in the last ${monitor.window}`,
      stats.complete ? '' : ` (newest ${stats.scanned} tasks)`),
    el('h3', {}, `Throughput and failures (per ${stats.bucket_s} s)`), bars(stats.buckets, 600, 140),
    el('h3', {}, 'Runtime'), lines(stats.buckets, 600, 140),
    el('h3', {}, 'By task name'), nameTable(stats));
};

// ---- Broker ---------------------------------------------------------------

tabs.broker = async () => {
  const [{ queues }, scheduled, dead] = await Promise.all([
    api('GET', '/api/v1/tasks/inspect/queues'),
    api('GET', '/api/v1/tasks/inspect/scheduled'),
    api('GET', '/api/v1/tasks/deadletters'),
  ]);
  return el('section', {},
    el('h2', {}, 'Queues'),
    table(['queue', 'ready', 'by band (high / normal / low)', 'reserved', 'delayed', ''], queues.map((q) => el('tr', { 'data-queue': q.name },
      el('td', {}, q.name), el('td', { class: 'num ready' }, q.ready),
      el('td', { class: 'num bands' }, `${q.ready_by_band.high} / ${q.ready_by_band.normal} / ${q.ready_by_band.low}`),
      el('td', { class: 'num' }, q.reserved),
      el('td', { class: 'num' }, q.scheduled),
      el('td', {}, action('Purge', { class: 'danger', 'data-confirm': `Drop every waiting task of ${q.name}?` },
        async () => {
          const r = await api('DELETE', `/api/v1/tasks/queues/${encodeURIComponent(q.name)}?confirm=true`);
          return `${r.purged} tasks purged`;
        })))), { id: 'queues' }),
    el('h2', {}, `Delayed (${scheduled.scheduled.length})`),
    taskStatusTable(scheduled.scheduled, 'delayed'),
    el('h2', {}, `Dead letters (${dead.dead_letters.length})`),
    dead.dead_letters.length ? action('Purge all', { class: 'danger', 'data-confirm': 'Drop every dead letter?' },
      async () => {
        const r = await api('DELETE', '/api/v1/tasks/deadletters?confirm=true');
        return `${r.purged} dead letters purged`;
      }) : '',
    table(['task id', 'name', 'queue', 'error', 'failed', ''], dead.dead_letters.map((t) =>
      el('tr', { 'data-task-id': t.task_id },
        el('td', {}, el('a', { href: `#task/${encodeURIComponent(t.task_id)}` }, t.task_id)),
        el('td', {}, t.task), el('td', {}, t.queue),
        el('td', {}, t.error ? failure(t.error) : '–'), el('td', {}, fmt.time(t.updated_ms)),
        el('td', {}, action('Replay', { class: 'replay' }, async () => {
          const r = await api('POST', `/api/v1/tasks/deadletters/${encodeURIComponent(t.task_id)}/replay`);
          return `replayed as ${r.task_id}`;
        })))), { id: 'dead-letters' }));
};

// ---- Schedules ------------------------------------------------------------

tabs.schedules = async () => {
  const { schedules } = await api('GET', '/api/v1/tasks/scheduled');
  const lastStates = await Promise.all(schedules.map((s) =>
    (s.last_task_id ? found(`/api/v1/tasks/status/${encodeURIComponent(s.last_task_id)}`) : null)));
  return el('section', {},
    el('h2', {}, 'Schedules'),
    table(['entry', 'task', 'when', 'next', 'last fired', 'last task', ''], schedules.map((s, i) =>
      el('tr', { 'data-schedule': s.name },
        el('td', {}, s.name, s.enabled ? '' : ' (disabled)'), el('td', {}, s.task),
        el('td', {}, el('code', {}, s.cron), el('br'), s.description),
        el('td', {}, s.next_fire_times.slice(0, 2).join(', ')),
        el('td', {}, s.last_fire_time ? `${s.last_fire_time} (${s.last_trigger})` : '–'),
        el('td', {}, s.last_task_id ? [el('a', { href: `#task/${encodeURIComponent(s.last_task_id)}` },
          s.last_task_id), ' ', lastStates[i] ? state(lastStates[i].status) : ''] : '–'),
        el('td', {}, action('Run now', { class: 'run' }, async () => {
          const r = await api('POST', `/api/v1/tasks/scheduled/${encodeURIComponent(s.name)}/run`);
          return `submitted ${r.task_id}`;
        })))), { id: 'schedules' }));
};

// ---- Plugins --------------------------------------------------------------

function deployForm() {
  const name = el('input', { name: 'name', placeholder: 'deployment name', required: true, pattern: '[a-z0-9_-]+' });
  const wasm = el('input', { name: 'wasm', type: 'file', accept: '.wasm', required: true });
  const manifest = el('input', { name: 'manifest', type: 'file', accept: '.toml' });
  const form = el('form', { class: 'filters', id: 'deploy' }, name, el('label', {}, 'component ', wasm),
    el('label', {}, 'manifest (optional) ', manifest),
    action('Deploy', { type: 'submit' }, async () => {
      if (!name.value || !wasm.files.length) throw new Error('a name and a .wasm file are needed');
      const body = new FormData();
      body.append('wasm', wasm.files[0]);
      if (manifest.files.length) body.append('manifest', manifest.files[0]);
      await api('PUT', `/api/v1/plugins/${encodeURIComponent(name.value)}`, undefined, body);
      return `deployed ${name.value}`;
    }));
  return form;
}

// A task's limits that its plugin sets (the others are the defaults).
function limits(set) {
  const named = Object.entries(set || {}).filter(([, value]) => value !== null);
  return named.length ? ` (${named.map(([key, value]) => `${key} ${value}`).join(', ')})` : '';
}

tabs.plugins = async () => {
  const { plugins, refused } = await api('GET', '/api/v1/plugins');
  return el('section', {},
    el('h2', {}, 'Plugins'),
    table(['deployment', 'plugin', 'version', 'grants', 'tasks (queue, limits)', ''], plugins.map((p) =>
      el('tr', { 'data-plugin': p.deployment },
        el('td', {}, p.deployment), el('td', {}, p.name), el('td', {}, p.version),
        el('td', {}, p.grants.join(', ') || 'none'),
        el('td', {}, el('ul', {}, p.tasks.map((t) => el('li', {}, el('code', {}, t.name), ` on ${t.queue}`,
          limits(t.limits))))),
        el('td', {}, action('Remove', { class: 'danger', 'data-confirm': `Remove ${p.deployment}?` }, async () => {
          await api('DELETE', `/api/v1/plugins/${encodeURIComponent(p.deployment)}`);
          return `removed ${p.deployment}`;
        })))), { id: 'plugins' }),
    refused.length ? [el('h3', {}, 'Refused'), el('ul', {}, refused.map((r) => el('li', {}, `${r.path}: ${r.reason}`)))] : '',
    el('h3', {}, 'Deploy'),
    deployForm());
};

// ---- live updates ---------------------------------------------------------

// Tabs redrawn when a task changes, and how soon at most.
const LIVE = { tasks: 500, monitor: 1000, broker: 500, workers: 1000, worker: 1000, schedules: 1000 };

function follow() {
  const dot = document.getElementById('live');
  const events = new EventSource('/api/v1/events');
  events.onopen = () => dot.classList.add('on');
  events.onerror = () => dot.classList.remove('on');
  events.addEventListener('task', (message) => {
    const event = JSON.parse(message.data);
    if (current.tab === 'task' && current.arg === event.task_id) soon(200);
    else if (LIVE[current.tab]) soon(LIVE[current.tab]);
  });
}

// What has no events (heartbeats, ageing figures) is read again now and then,
// unless the user is typing in a form.
setInterval(() => {
  if (document.hidden || (document.activeElement && document.activeElement.form)) return;
  if (['workers', 'worker', 'broker', 'monitor'].includes(current.tab)) redraw();
}, 5000);

document.getElementById('logout').addEventListener('click', async () => {
  await api('POST', '/logout').catch(() => {});
  location.href = '/login';
});
window.addEventListener('hashchange', route);
route();
follow();
