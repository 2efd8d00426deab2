// The admin page's audit log: who did what, from where, and how it ended; newest first,
// filtered by actor, action and outcome, a page at a time (GET /api/audit).

import { api } from './api.js';
import { h, set, field } from './dom.js';

const ACTIONS = ['login', 'login_failed', 'logout', 'onboarded', 'user_created', 'user_disabled', 'user_enabled',
  'user_deleted', 'password_reset', 'password_changed', 'token_created', 'token_revoked', 'skills_changed',
  'workflows_reloaded', 'admin_read', 'admin_address_refused', 'config_changed', 'export', 'backup', 'restore',
  'retention_deleted'];
const PAGE = 25;

// A short, readable form of an entry's detail object.
function detail(d) {
  if (!d || typeof d !== 'object') return String(d ?? '');
  return Object.entries(d).map(([k, v]) => `${k}: ${typeof v === 'object' ? JSON.stringify(v) : v}`).join(', ');
}

export function auditSection(ctx) {
  const [actorField, actorInput] = field('Actor', { placeholder: 'name, cli, anonymous', autocomplete: 'off' });
  const select = (label, values) => field(label, { tag: 'select' },
    [h('option', { value: '', text: 'any' }), values.map((v) => h('option', { value: v, text: v }))]);
  const [actionField, actionInput] = select('Action', ACTIONS);
  const [outcomeField, outcomeInput] = select('Outcome', ['success', 'failure', 'refused']);
  const form = h('form', { class: 'row-form', 'aria-label': 'Filter the audit log' }, actorField, actionField, outcomeField,
    h('button', { type: 'submit', class: 'primary', text: 'Filter' }));
  const body = h('div', { class: 'audit-table' });
  const pager = h('div', { class: 'row-form' });
  // The `before` cursors of the pages shown so far (the first page has none).
  let cursors = [null];

  async function load() {
    const q = new URLSearchParams({ limit: String(PAGE) });
    const before = cursors[cursors.length - 1];
    if (before) q.set('before', String(before));
    if (actorInput.value.trim()) q.set('actor', actorInput.value.trim());
    if (actionInput.value) q.set('action', actionInput.value);
    if (outcomeInput.value) q.set('outcome', outcomeInput.value);
    try {
      const res = await api('GET', `/api/audit?${q}`);
      const rows = res.entries.map((e) => h('tr', { class: `audit-${e.outcome}` },
        h('td', { text: new Date(e.at * 1000).toLocaleString() }),
        h('td', { text: e.actor }),
        h('td', { text: e.address || '—' }),
        h('td', {}, h('code', { text: e.action })),
        h('td', { text: e.target || '—' }),
        h('td', {}, h('span', { class: `status ${e.outcome === 'success' ? '' : 'failed'}`, text: e.outcome })),
        h('td', { class: 'muted', text: detail(e.detail) })));
      const head = ['Time', 'Actor', 'Address', 'Action', 'Target', 'Outcome', 'Detail'];
      set(body, h('table', { 'aria-label': 'Audit log' },
        h('thead', {}, h('tr', {}, head.map((t) => h('th', { scope: 'col', text: t })))),
        h('tbody', {}, rows.length ? rows
          : h('tr', {}, h('td', { colspan: String(head.length), class: 'muted', text: 'No entries.' })))));
      set(pager,
        cursors.length > 1 && h('button', { type: 'button', class: 'small', text: 'Newer', onclick: () => { cursors.pop(); load(); } }),
        res.next_before && h('button', { type: 'button', class: 'small', text: 'Older',
          onclick: () => { cursors.push(res.next_before); load(); } }));
    } catch (e) { ctx.showError(e); }
  }
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    cursors = [null];
    load();
  });
  load();
  return [form, body, pager];
}
