// The admin page (the "Account" page for plain users): health, live system figures,
// models, users, backups, API tokens, one's conversations as a file, the audit log (audit.js)
// and one's own password.

import { api } from './api.js';
import { h, set, add, ago, bytes, field } from './dom.js';
import { auditSection } from './audit.js';

const THROTTLES = ['under_voltage', 'frequency_capped', 'throttled', 'soft_temperature_limit'];
const SVG = 'http://www.w3.org/2000/svg';

// A sparkline of the sampler's history (oldest first): an SVG polyline, scaled to `max`
// (or the series' own highest point).
function spark(values, max) {
  const v = values.filter((x) => x != null);
  if (v.length < 2) return null;
  const top = max || Math.max(...v) || 1, low = max ? 0 : Math.min(...v);
  const span = top - low || 1;
  const points = v.map((x, i) => `${(i * 100 / (v.length - 1)).toFixed(1)},${(20 - (x - low) * 19 / span).toFixed(1)}`);
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', '0 0 100 21');
  svg.setAttribute('preserveAspectRatio', 'none');
  svg.setAttribute('class', 'spark');
  svg.setAttribute('aria-hidden', 'true');
  const line = document.createElementNS(SVG, 'polyline');
  line.setAttribute('points', points.join(' '));
  svg.append(line);
  return svg;
}

export function adminPage(ctx) {
  const admin = ctx.user.role === 'admin';
  const sections = h('div', { class: 'admin-grid' });
  const el = h('div', { class: 'page admin-page' }, ctx.topbar(),
    h('main', { class: 'admin-main' }, h('h1', { text: admin ? 'Administration' : 'Your account' }), sections));
  let timer = null;

  const section = (title, ...body) => h('section', { class: 'panel', 'aria-label': title }, h('h2', { text: title }), body);
  const table = (head, rows) => h('table', {},
    h('thead', {}, h('tr', {}, head.map((t) => h('th', { scope: 'col', text: t })))),
    h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: String(head.length), class: 'muted', text: 'None.' }))));
  const row = (...cells) => h('tr', {}, cells.map((c) => h('td', {}, c)));
  const stat = (label, value, extra) => h('div', { class: 'stat' }, h('span', { text: label }), h('strong', { text: value }), extra);

  // ---- health and live figures ----
  const health = h('div', { class: 'stats' });
  const system = h('div', { class: 'stats', id: 'system' });
  async function refresh() {
    try {
      const res = await api('GET', '/api/health');
      const c = res.components;
      set(health,
        stat('Status', res.status),
        stat('Database', c.database.ready ? 'ready' : 'down'),
        stat('Model', c.model.state + (c.model.id ? ` (${c.model.id})` : '')),
        stat('Version', res.version),
        stat('Uptime', `${Math.floor(res.uptime_seconds / 60)} min`));
      if (c.model.error) add(health, stat('Model error', c.model.error));
      if (!admin) return;
      const s = await api('GET', '/api/system');
      const m = s.system;
      const hist = (key) => s.history.map((p) => p[key]);
      set(system,
        stat('CPU', `${m.cpu_percent.toFixed(0)} % of ${m.cpus} cores`, spark(hist('cpu_percent'), 100)),
        stat('Memory', `${bytes(m.memory_used_bytes)} / ${bytes(m.memory_total_bytes)}`,
          spark(hist('memory_available_bytes').map((a) => m.memory_total_bytes - a), m.memory_total_bytes)),
        stat('Hearth', bytes(m.process_resident_bytes), spark(hist('process_resident_bytes'))),
        stat('Disk free', `${bytes(m.disk_available_bytes)} / ${bytes(m.disk_total_bytes)}`),
        stat('Load', m.load_average.map((x) => x.toFixed(2)).join(' ')),
        stat('Temperature', m.temperature_celsius == null ? 'n/a' : `${m.temperature_celsius.toFixed(0)} °C`,
          m.temperature_celsius != null && spark(hist('temperature_celsius'))),
        m.throttling && stat('Throttling', THROTTLES.filter((k) => m.throttling[k]).join(', ')
          || (m.throttling.has_occurred ? 'earlier' : 'none')),
        stat('Generation', `${s.engine.tokens_per_second.toFixed(1)} tokens/s`),
        stat('Tokens generated', String(s.engine.tokens_generated)),
        stat('Active / queued', `${s.engine.active_sequences} / ${s.engine.queue_depth}`),
        s.governor && stat('Governor', s.governor.level.replace('_', ' ')
          + (s.governor.level !== 'normal' && s.governor.reason ? ` (${s.governor.reason})` : '')),
        s.governor && s.governor.generation_threads != null
          && stat('Generation threads', String(s.governor.generation_threads)));
    } catch (e) {
      ctx.showError(e);
    }
  }

  // ---- models: what is served; for admins every known model, with downloads ----
  const models = h('div', {});
  let modelTimer = null;
  let shown = true;
  async function loadModels() {
    clearTimeout(modelTimer);
    try {
      const served = await api('GET', '/v1/models');
      if (!admin) {
        set(models, table(['Model', 'Role', 'Loaded'],
          served.data.map((m) => row(m.id, m.role || '', m.loaded ? 'yes' : 'no'))));
        return;
      }
      const loaded = new Set(served.data.filter((m) => m.loaded).map((m) => m.id));
      const res = await api('GET', '/api/admin/models');
      set(models, table(['Model', 'Role', 'Size', 'License', 'State', ''], res.models.map((m) => row(
        h('span', { title: m.description, text: m.name + (m.default ? ' (default)' : '') }),
        m.role, bytes(m.bytes), m.license, modelState(m, loaded),
        !m.installed && m.pull?.state !== 'pulling'
          && h('button', { type: 'button', class: 'small', text: 'Pull', 'aria-label': `Pull ${m.name}`, onclick: () => pull(m) })))));
      // While a download runs, its bar follows it.
      if (shown && res.models.some((m) => m.pull?.state === 'pulling')) modelTimer = setTimeout(loadModels, 1000);
    } catch (e) { ctx.showError(e); }
  }
  const PHASES = { starting: 'Starting…', waiting: 'Waiting for another download…', unpack: 'Unpacking…',
    convert: 'Converting…', verify: 'Verifying…' };
  function modelState(m, loaded) {
    const p = m.pull;
    if (p?.state === 'pulling') {
      const downloading = p.phase === 'download' && p.total > 0;
      // No value: an indeterminate bar for the steps that count no bytes.
      const bar = h('progress', { max: downloading ? String(p.total) : null, value: downloading ? String(p.done) : null,
        'aria-label': `Downloading ${m.name}` });
      const text = downloading ? `Downloading ${bytes(p.done)} of ${bytes(p.total)}` : PHASES[p.phase] || 'Working…';
      return h('div', { class: 'pull' }, bar, h('small', { class: 'muted', text }));
    }
    if (p?.state === 'failed' && !m.installed) return h('span', { class: 'status failed', text: `Download failed: ${p.error}` });
    if (!m.installed) return h('span', { class: 'muted', text: 'not installed' });
    const note = p?.state === 'done' && m.restart_required ? ' (restart Hearth to use it)' : '';
    return (loaded.has(m.name) ? 'loaded' : 'installed') + note;
  }
  async function pull(m) {
    try {
      await api('POST', '/api/admin/models/pull', { name: m.name });
    } catch (e) { ctx.showError(e); }
    loadModels();
  }

  // ---- users (admin) ----
  const users = h('div', {});
  async function loadUsers() {
    try {
      const res = await api('GET', '/api/users');
      set(users, table(['Name', 'Role', 'Web login', 'Created', ''], res.users.map((u) => row(
        u.name, u.role, u.has_password ? 'yes' : 'no', ago(u.created_at),
        [h('button', { type: 'button', class: 'small', text: 'Set password', onclick: () => setPassword(u) }), ' ',
          h('button', { type: 'button', class: 'small', text: 'Skills', 'aria-label': `Skills of ${u.name}`, onclick: () => editSkills(u) })]))));
    } catch (e) { ctx.showError(e); }
  }
  // A user's skills: each on or off for them, or the box's default ([skills] in the config).
  const skillsBox = h('div', { class: 'user-skills', hidden: true });
  async function editSkills(u) {
    const path = `/api/admin/users/${u.id}/skills`;
    const change = async (name, value) => {
      try { await api('PUT', path, { [name]: value }); } catch (e) { ctx.showError(e); }
      editSkills(u);
    };
    try {
      const res = await api('GET', path);
      set(skillsBox, h('h3', { text: `Skills of ${u.name}` }),
        table(['Skill', 'On', 'Box default', ''], res.skills.map((s) => row(
          h('span', { title: s.description || '', text: s.name }),
          h('input', { type: 'checkbox', checked: s.enabled, 'aria-label': `${s.name} for ${u.name}`,
            onchange: (e) => change(s.name, e.target.checked) }),
          s.default ? 'on' : 'off',
          s.setting === null ? h('span', { class: 'muted', text: 'as default' })
            : h('button', { type: 'button', class: 'small', text: 'Use default', onclick: () => change(s.name, null) })))),
        h('button', { type: 'button', class: 'small', text: 'Close', onclick: () => { skillsBox.hidden = true; } }));
      skillsBox.hidden = false;
    } catch (e) { ctx.showError(e); }
  }
  async function setPassword(u) {
    const password = prompt(`New password for ${u.name} (at least 8 characters):`);
    if (!password) return;
    try {
      await api('PUT', `/api/users/${u.id}/password`, { password });
      loadUsers();
    } catch (e) { ctx.showError(e); }
  }
  const [newName, nameInput] = field('Name', { required: true, autocomplete: 'off' });
  const [newPass, passInput] = field('Password', { type: 'password', required: true, minlength: 8, autocomplete: 'new-password' });
  const adminBox = h('input', { type: 'checkbox', id: 'new-admin' });
  const userForm = h('form', { class: 'row-form', 'aria-label': 'Create user' }, newName, newPass,
    h('div', { class: 'field check' }, adminBox, h('label', { for: 'new-admin', text: 'Administrator' })),
    h('button', { type: 'submit', class: 'primary', text: 'Create user' }));
  userForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      await api('POST', '/api/users', { name: nameInput.value.trim(), password: passInput.value, admin: adminBox.checked });
      userForm.reset();
      loadUsers();
    } catch (err) { ctx.showError(err); }
  });

  // ---- tokens ----
  const tokens = h('div', {});
  const secret = h('div', { class: 'secret', role: 'status', hidden: true });
  const allBox = h('input', { type: 'checkbox', id: 'all-tokens', onchange: () => loadTokens() });
  async function loadTokens() {
    try {
      const res = await api('GET', `/api/tokens${allBox.checked ? '?all=true' : ''}`);
      set(tokens, table(['Prefix', 'User', 'Label', 'Created', 'Last used', ''], res.tokens.map((t) => row(
        h('code', { text: t.prefix }), t.user, t.label, ago(t.created_at), t.last_used_at ? ago(t.last_used_at) : 'never',
        t.revoked ? h('span', { class: 'muted', text: 'revoked' })
          : h('button', { type: 'button', class: 'small danger', text: 'Revoke', onclick: () => revoke(t) })))));
    } catch (e) { ctx.showError(e); }
  }
  async function revoke(t) {
    if (!confirm(`Revoke token ${t.prefix} (${t.label})? Programs using it stop working.`)) return;
    try { await api('DELETE', `/api/tokens/${t.id}`); loadTokens(); } catch (e) { ctx.showError(e); }
  }
  const [labelField, labelInput] = field('Label', { required: true, placeholder: 'e.g. laptop', maxlength: '64' });
  const tokenForm = h('form', { class: 'row-form', 'aria-label': 'Create token' }, labelField,
    h('button', { type: 'submit', class: 'primary', text: 'Create token' }));
  tokenForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      const t = await api('POST', '/api/tokens', { label: labelInput.value.trim() });
      tokenForm.reset();
      set(secret, h('p', { text: 'Copy this token now; it is shown only once:' }), h('code', { class: 'token', text: t.token }),
        h('button', { type: 'button', class: 'small', text: 'Copy', onclick: () => navigator.clipboard?.writeText(t.token) }));
      secret.hidden = false;
      loadTokens();
    } catch (err) { ctx.showError(err); }
  });

  // ---- backups (admin) ----
  const backups = h('div', {});
  let backupTimer = null;
  async function loadBackups() {
    clearTimeout(backupTimer);
    try {
      const res = await api('GET', '/api/admin/backups');
      const last = res.last && (res.last.error ? `Last backup failed: ${res.last.error}` : `Last: ${res.last.file}`);
      set(backups,
        table(['Archive', 'Size', 'Made'], res.archives.map((a) => row(h('code', { text: a.file }), bytes(a.bytes), ago(a.created_at)))),
        h('p', { class: 'muted', role: 'status', text: res.running ? 'Backing up…' : (last || '') }),
        h('p', { class: 'muted', text: `In ${res.dir} on the box, the ${res.keep} newest kept. Model files are not in backups.` }),
        !res.running && h('button', { type: 'button', class: 'primary', text: 'Back up now', onclick: backupNow }));
      if (shown && res.running) backupTimer = setTimeout(loadBackups, 1000);
    } catch (e) { ctx.showError(e); }
  }
  async function backupNow() {
    try { await api('POST', '/api/admin/backups'); } catch (e) { ctx.showError(e); }
    loadBackups();
  }

  // ---- own conversations as a file ----
  const importDone = h('p', { class: 'muted', role: 'status' });
  const importFile = h('input', { type: 'file', accept: 'application/json,.json', 'aria-label': 'Import conversations' });
  importFile.addEventListener('change', async () => {
    const file = importFile.files[0];
    if (!file) return;
    try {
      const done = await api('POST', '/api/conversations/import', JSON.parse(await file.text()));
      importDone.textContent = `Imported ${done.conversations} conversations; ${done.skipped} were here already.`;
    } catch (e) { ctx.showError(e); }
    importFile.value = '';
  });
  const exports = h('div', {},
    h('p', {}, 'Download: ',
      h('a', { href: '/api/conversations/export?format=json', download: '', text: 'JSON' }), ' (complete, can be imported) · ',
      h('a', { href: '/api/conversations/export?format=markdown', download: '', text: 'Markdown' })),
    h('div', { class: 'field' }, h('span', { text: 'Import a JSON export: ' }), importFile), importDone);

  // ---- own password ----
  const [curField, cur] = field('Current password', { type: 'password', required: true, autocomplete: 'current-password' });
  const [nextField, next] = field('New password', { type: 'password', required: true, minlength: 8, autocomplete: 'new-password' });
  const passDone = h('p', { class: 'muted', role: 'status' });
  const passForm = h('form', { class: 'row-form', 'aria-label': 'Change password' }, curField, nextField,
    h('button', { type: 'submit', class: 'primary', text: 'Change password' }), passDone);
  passForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      await api('PUT', '/api/me/password', { current: cur.value, new: next.value });
      passForm.reset();
      passDone.textContent = 'Password changed. Other sessions were logged out.';
    } catch (err) { ctx.showError(err); }
  });

  add(sections,
    section('Health', health),
    admin && section('System (live)', system),
    section('Models', models),
    admin && section('Users', users, skillsBox, userForm),
    section('API tokens', admin && h('div', { class: 'field check' }, allBox, h('label', { for: 'all-tokens', text: 'Show every user\'s tokens' })),
      tokens, tokenForm, secret),
    admin && section('Backups', backups),
    section('Your conversations', exports),
    section('Password', passForm),
    admin && h('section', { class: 'panel wide', 'aria-label': 'Audit log' }, h('h2', { text: 'Audit log' }), auditSection(ctx)));

  refresh();
  loadModels();
  loadTokens();
  if (admin) { loadUsers(); loadBackups(); }
  timer = setInterval(() => { if (!document.hidden) refresh(); }, 3000);
  return { el, destroy: () => { shown = false; clearInterval(timer); clearTimeout(modelTimer); clearTimeout(backupTimer); } };
}
