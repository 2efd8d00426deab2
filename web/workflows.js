// The workflows page (#/workflows): the caller's workflows (an admin's: everyone's), each
// with its trigger in words, on/off, its last run and "Run now" (asking for the input its
// steps read); a workflow's recent runs and one run's steps (result or error, time taken),
// followed live while it runs. Admins also see the files that could not be read.

import { api } from './api.js';
import { h, set, ago, field } from './dom.js';

const UNITS = [[86400, 'day'], [3600, 'hour'], [60, 'minute'], [1, 'second']];

/** "every 3600 s" → "Every hour"; "at 07:30" → "Every day at 07:30". */
export function triggerWords(w) {
  const d = w.trigger_detail;
  if (w.trigger === 'webhook') return `When the webhook “${d}” is called`;
  if (w.trigger === 'phrase') return `When ${w.owner} says “${d}” in a chat`;
  const every = d.match(/^every (\d+) s$/);
  if (every) {
    const secs = Number(every[1]);
    const [size, unit] = UNITS.find(([s]) => secs % s === 0);
    const n = secs / size;
    return n === 1 ? `Every ${unit}` : `Every ${n} ${unit}s`;
  }
  if (d.startsWith('at ')) return `Every day ${d}`;
  return `On the schedule “${d.replace(/^cron /, '')}” (cron)`;
}

const STATES = { done: 'done', failed: 'failed', running: 'running…', interrupted: 'interrupted' };
const HOW = { manual: 'by hand', schedule: 'on schedule', webhook: 'by its webhook', phrase: 'by its phrase' };
const when = (s) => new Date(s * 1000).toLocaleString([], { weekday: 'short', day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit' });
const took = (ms) => (ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`);
const outcome = (state) => h('span', { class: `status ${state}`, text: STATES[state] || state });

function example(owner) {
  return `name: morning
description: The time, every morning
owner: ${owner}
trigger:
  at: "07:30"
steps:
  - id: time
    skill: clock
  - notify: "Good morning! {{ steps.time.output }}"
`;
}

export function workflowsPage(ctx) {
  const admin = ctx.user.role === 'admin';
  const errors = h('section', { class: 'panel errors', 'aria-label': 'Workflow files left out', hidden: true });
  const list = h('div', { class: 'wf-list' });
  const el = h('div', { class: 'page wf-page' }, ctx.topbar(),
    h('main', { class: 'admin-main' }, h('h1', { text: 'Workflows' }),
      h('p', { class: 'muted', text: 'Steps Hearth runs by itself: on a schedule, when a webhook is called or a phrase is said.' }),
      errors, list));
  const timers = new Set();
  let alive = true;
  const later = (fn, ms) => { const t = setTimeout(() => { timers.delete(t); if (alive) fn(); }, ms); timers.add(t); };

  async function load() {
    try {
      const res = await api('GET', '/api/workflows');
      const bad = res.errors || [];
      errors.hidden = !bad.length;
      set(errors, h('h2', { text: 'Files left out' }),
        h('p', { class: 'muted' }, 'These files have errors; fix them and restart Hearth (',
          h('code', { text: 'hearth workflows check' }), ' checks them first).'),
        h('ul', {}, bad.map((e) => h('li', {}, h('code', { class: 'status failed', text: e })))));
      set(list, res.workflows.length ? res.workflows.map(card) : empty(res.dir));
    } catch (e) { ctx.showError(e); }
  }

  function empty(dir) {
    return h('section', { class: 'panel empty-state', id: 'wf-empty' },
      h('h2', { text: 'No workflows yet' }),
      h('p', {}, admin ? 'Put YAML files in ' : 'Ask an administrator to put YAML files in ', h('code', { text: dir }),
        ' and restart Hearth. For example, ', h('code', { text: 'morning.yaml' }), ':'),
      h('pre', { class: 'example', text: example(ctx.user.name) }));
  }

  // What stays open across reloads of the list: a workflow's run shown, its runs.
  const views = new Map();
  function view(name) {
    if (!views.has(name)) {
      const detail = h('div', { class: 'run-detail' });
      const runs = h('ul', { class: 'runs' });
      const history = h('details', { class: 'wf-runs', ontoggle: () => history.open && loadRuns(name, runs, detail) },
        h('summary', { text: 'Recent runs' }), runs);
      views.set(name, { detail, runs, history });
    }
    return views.get(name);
  }

  function card(w) {
    const { detail, runs, history } = view(w.name);
    if (history.open) loadRuns(w.name, runs, detail);
    const toggle = h('input', { type: 'checkbox', role: 'switch', id: `wf-on-${w.name}`, checked: w.enabled,
      onchange: () => setEnabled(w, toggle) });
    const last = w.last_run;
    return h('article', { class: 'panel wf', 'aria-label': w.name, 'data-name': w.name },
      h('div', { class: 'wf-head' }, h('h2', { text: w.name }),
        h('div', { class: 'field check' }, toggle, h('label', { for: toggle.id, text: 'Enabled' }))),
      w.description && h('p', { class: 'wf-desc', text: w.description }),
      h('p', { class: 'wf-trigger' }, triggerWords(w),
        w.next_run && h('span', { class: 'muted', text: ` · next ${when(w.next_run)}` }),
        admin && w.owner !== ctx.user.name && h('span', { class: 'muted', text: ` · runs as ${w.owner}` })),
      h('p', { class: 'wf-last' }, 'Last run: ', last
        ? [outcome(last.state), ` ${HOW[last.trigger] || last.trigger}, ${ago(last.started_at)} `,
          h('button', { type: 'button', class: 'small', text: 'Details', 'aria-label': `Details of the last run of ${w.name}`,
            onclick: () => showRun(last.id, detail) })]
        : h('span', { class: 'muted', text: 'never' })),
      last?.error && h('p', { class: 'status failed', text: last.error }),
      runForm(w, detail), history, detail);
  }

  function runForm(w, detail) {
    const inputs = w.inputs.map((key) => field(`Input: ${key}`, { name: key, autocomplete: 'off',
      placeholder: key === 'json' ? '{"key": "value"}' : null }));
    const button = h('button', { type: 'submit', class: 'primary', text: 'Run now' });
    const form = h('form', { class: 'row-form', 'aria-label': `Run ${w.name}` }, inputs.map(([f]) => f), button);
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const input = {};
      for (const [, box] of inputs) {
        if (box.name !== 'json') { input[box.name] = box.value; continue; }
        try { input.json = box.value.trim() ? JSON.parse(box.value) : null; } catch {
          return ctx.showError(new Error('Input: json is not valid JSON.'));
        }
      }
      button.disabled = true;
      try {
        const res = await api('POST', `/api/workflows/${encodeURIComponent(w.name)}/run`, { input });
        showRun(res.run_id, detail, true);
      } catch (err) { ctx.showError(err); } finally { button.disabled = false; }
    });
    return form;
  }

  async function setEnabled(w, toggle) {
    try {
      const listed = await api('PATCH', `/api/workflows/${encodeURIComponent(w.name)}`, { enabled: toggle.checked });
      toggle.checked = listed.enabled;
      await load();
      // The list was drawn anew: the keyboard stays on the switch.
      document.getElementById(toggle.id)?.focus();
    } catch (e) { toggle.checked = !toggle.checked; ctx.showError(e); }
  }

  async function loadRuns(name, runs, detail) {
    try {
      const res = await api('GET', `/api/workflows/${encodeURIComponent(name)}/runs`);
      set(runs, res.runs.length ? res.runs.map((r) => h('li', {},
        h('button', { type: 'button', class: 'small ghost', onclick: () => showRun(r.id, detail) },
          outcome(r.state), ` #${r.id} ${HOW[r.trigger] || r.trigger}, ${ago(r.started_at)}`)))
        : h('li', { class: 'muted', text: 'It has not run yet.' }));
    } catch (e) { ctx.showError(e); }
  }

  /** Shows a run's steps; while it runs, again every second, and the list once it ended. */
  async function showRun(id, detail, followed = false) {
    detail.dataset.run = String(id);
    let run;
    try { run = await api('GET', `/api/workflow-runs/${id}`); } catch (e) { return ctx.showError(e); }
    if (detail.dataset.run !== String(id)) return; // closed, or another run chosen meanwhile
    const steps = Array.isArray(run.steps) ? run.steps : [];
    const seconds = run.finished_at ? run.finished_at - run.started_at : null;
    set(detail, h('section', { class: 'run', 'aria-label': `Run ${id}`, 'data-state': run.state },
      h('div', { class: 'wf-head' },
        h('h3', {}, `Run #${id} `, outcome(run.state)),
        h('button', { type: 'button', class: 'small ghost', 'aria-label': 'Close the run', text: '×',
          onclick: () => { set(detail); delete detail.dataset.run; } })),
      h('p', { class: 'muted', text: `Started ${HOW[run.trigger] || run.trigger} ${when(run.started_at)}`
        + (seconds === null ? '' : `, took ${seconds} s`) }),
      h('ol', { class: 'steps' }, steps.map(step),
        run.state === 'running' && h('li', { class: 'step muted typing', text: 'Running' })),
      run.state !== 'running' && !steps.length && !run.error && h('p', { class: 'muted', text: 'No step ran.' }),
      run.error && h('p', { class: 'status failed run-error', text: run.error }),
      run.state === 'done' && run.output != null && h('div', { class: 'run-result' },
        h('strong', { text: 'Result' }), h('pre', { class: 'out', text: run.output }))));
    if (run.state === 'running') later(() => showRun(id, detail, true), 1000);
    else if (followed) load();
  }

  function step(s) {
    // No input recorded: the step failed before it had one (its template).
    const given = s.input == null ? null : s.kind === 'skill' ? `${s.input.skill}(${JSON.stringify(s.input.args ?? {})})`
      : typeof s.input === 'string' ? s.input : JSON.stringify(s.input);
    return h('li', { class: `step ${s.error ? 'failed' : 'done'}`, 'data-step': s.id },
      h('div', { class: 'step-head' }, h('strong', { text: s.id }),
        h('span', { class: 'muted', text: ` ${s.kind} · ${took(s.ms)}` })),
      // A notify or reply step gives what it was given: said once.
      given && given !== s.output && h('div', { class: 'step-in' }, h('span', { class: 'muted', text: 'Given: ' }), h('code', { text: given })),
      s.error ? h('p', { class: 'status failed', text: `Error: ${s.error}` }) : h('pre', { class: 'out', text: s.output ?? '' }));
  }

  load();
  return {
    el,
    destroy: () => { alive = false; timers.forEach(clearTimeout); },
  };
}
