// The chat page: conversation list (open, rename, delete, search), streamed replies
// with a stop button, regenerate, model/temperature settings, and push-to-talk turns
// (voice.js), which are drawn here like typed ones.

import { api, stream } from './api.js';
import { h, set, ago } from './dom.js';
import { render } from './markdown.js';
import { voiceControl } from './voice.js';

const SETTINGS = 'hearth.chat.settings';

function loadSettings() {
  try {
    return { model: '', temperature: 0.7, knowledge: false, ...JSON.parse(localStorage.getItem(SETTINGS) || '{}') };
  } catch {
    return { model: '', temperature: 0.7, knowledge: false };
  }
}

export function chatPage(ctx) {
  const settings = loadSettings();
  const saveSettings = () => localStorage.setItem(SETTINGS, JSON.stringify(settings));
  let conversationId = null;
  let conversations = [];
  let running = null; // the AbortController of the reply being streamed
  let searchOnServer = true;
  let searchTimer = null;

  // Sidebar: new chat, search, conversations.
  const list = h('ul', { class: 'conv-list', 'aria-label': 'Conversations' });
  const results = h('ul', { class: 'conv-list results', 'aria-label': 'Search results', hidden: true });
  const search = h('input', { type: 'search', class: 'search', placeholder: 'Search history', 'aria-label': 'Search history', oninput: onSearch });
  const sidebar = h('aside', { class: 'sidebar', id: 'sidebar' },
    h('button', { type: 'button', class: 'primary wide', id: 'new-chat', text: '+ New chat', onclick: newChat }),
    search, results, list);
  const menu = h('button', {
    type: 'button', class: 'small menu', 'aria-controls': 'sidebar', 'aria-expanded': 'false',
    'aria-label': 'Show conversations', text: '☰', onclick: () => toggleSidebar(),
  });

  // Settings: model and temperature, remembered in this browser.
  const model = h('select', { id: 'model', onchange: () => { settings.model = model.value; saveSettings(); } },
    h('option', { value: '', text: 'Default model' }));
  const tempOut = h('output', { for: 'temperature', text: String(settings.temperature) });
  const temperature = h('input', {
    id: 'temperature', type: 'range', min: '0', max: '2', step: '0.1', value: String(settings.temperature),
    oninput: () => { settings.temperature = Number(temperature.value); tempOut.textContent = temperature.value; saveSettings(); },
  });
  const knowledge = h('input', {
    id: 'knowledge', type: 'checkbox', checked: settings.knowledge,
    onchange: () => { settings.knowledge = knowledge.checked; saveSettings(); },
  });
  const settingsPanel = h('details', { class: 'settings' }, h('summary', { text: 'Settings' }),
    h('div', { class: 'field check' }, knowledge, h('label', { for: 'knowledge', text: 'Use my documents' })),
    h('div', { class: 'field inline' }, h('label', { for: 'model', text: 'Model' }), model),
    h('div', { class: 'field inline' }, h('label', { for: 'temperature', text: 'Temperature' }), temperature, tempOut));

  // Messages and the composer.
  const messages = h('div', { class: 'messages', id: 'messages', role: 'log', 'aria-live': 'polite', 'aria-label': 'Messages' });
  const input = h('textarea', { id: 'prompt', rows: '1', placeholder: 'Message Hearth…', 'aria-label': 'Message (Enter sends, Shift+Enter starts a new line)' });
  const send = h('button', { type: 'submit', class: 'primary', id: 'send', text: 'Send' });
  const stop = h('button', { type: 'button', class: 'danger', id: 'stop', text: 'Stop', hidden: true, onclick: () => running?.abort() });
  const voice = voiceControl({
    conversationId: () => conversationId,
    knowledge: () => settings.knowledge,
    interrupt: () => running?.abort(),
    onEvent: voiceEvent,
  });
  const form = h('form', { class: 'composer', onsubmit: (e) => { e.preventDefault(); submit(); } }, input, voice.button, send, stop);
  // A box without speech models keeps the button, disabled, saying why.
  api('GET', '/api/health').then((health) => {
    const c = health.components || {};
    const off = ['speech_to_text', 'text_to_speech'].filter((k) => c[k]?.state === 'failed');
    if (off.length) voice.unavailable(`Voice is not set up on this box (${off.map((k) => k.replaceAll('_', ' ')).join(', ')}); run hearth doctor there.`);
  }).catch(() => {});
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); submit(); }
  });
  input.addEventListener('input', grow);
  sidebar.addEventListener('keydown', (e) => { if (e.key === 'Escape') { toggleSidebar(false); menu.focus(); } });

  const main = h('main', { class: 'chat-main' }, settingsPanel, messages, voice.bar, form);
  const el = h('div', { class: 'page chat-page' }, ctx.topbar([menu]), h('div', { class: 'chat-layout' }, sidebar, main));

  function grow() {
    input.style.height = 'auto';
    input.style.height = Math.min(input.scrollHeight, 200) + 'px';
  }

  function toggleSidebar(open = !sidebar.classList.contains('open')) {
    sidebar.classList.toggle('open', open);
    menu.setAttribute('aria-expanded', String(open));
  }

  function empty() {
    set(messages, h('div', { class: 'empty' },
      h('h2', { text: 'What can I help with?' }),
      h('p', { text: 'Everything stays on this box: your messages never leave it.' })));
  }

  // ---- conversation list ----

  async function loadList() {
    try {
      conversations = (await api('GET', '/api/conversations?limit=200')).conversations;
      drawList();
    } catch (e) {
      ctx.showError(e);
    }
  }

  function drawList() {
    const q = search.value.trim().toLowerCase();
    const shown = q ? conversations.filter((c) => c.title.toLowerCase().includes(q)) : conversations;
    set(list, shown.length ? shown.map(item) : h('li', { class: 'muted', text: q ? 'No titles match.' : 'No conversations yet.' }));
  }

  function item(c) {
    const open = h('button', {
      type: 'button', class: 'conv-title', title: c.title, 'aria-current': c.id === conversationId ? 'true' : null,
      onclick: () => openConversation(c.id),
    }, h('span', { text: c.title }), h('small', { text: ago(c.updated_at) }));
    const li = h('li', { 'data-id': c.id }, open,
      h('button', { type: 'button', class: 'small ghost', 'aria-label': `Rename "${c.title}"`, text: '✎', onclick: () => rename(c, li) }),
      h('button', { type: 'button', class: 'small ghost', 'aria-label': `Delete "${c.title}"`, text: '×', onclick: () => remove(c) }));
    return li;
  }

  function rename(c, li) {
    const box = h('input', { type: 'text', value: c.title, 'aria-label': 'New title', maxlength: '200' });
    const done = async (save) => {
      if (save && box.value.trim() && box.value.trim() !== c.title) {
        try {
          c.title = (await api('PATCH', `/api/conversations/${encodeURIComponent(c.id)}`, { title: box.value.trim() })).title;
        } catch (e) { ctx.showError(e); }
      }
      drawList();
    };
    box.addEventListener('keydown', (e) => {
      if (e.key === 'Enter') { e.preventDefault(); done(true); }
      if (e.key === 'Escape') done(false);
    });
    box.addEventListener('blur', () => done(true), { once: true });
    set(li, box);
    box.focus();
    box.select();
  }

  async function remove(c) {
    if (!confirm(`Delete the conversation "${c.title}"? This cannot be undone.`)) return;
    try {
      await api('DELETE', `/api/conversations/${encodeURIComponent(c.id)}`);
      if (c.id === conversationId) newChat();
      await loadList();
    } catch (e) { ctx.showError(e); }
  }

  // ---- search: titles here; message text on the server when it offers /api/search ----

  function onSearch() {
    drawList();
    clearTimeout(searchTimer);
    const q = search.value.trim();
    if (!q || !searchOnServer) { results.hidden = true; return; }
    searchTimer = setTimeout(() => searchServer(q), 300);
  }

  async function searchServer(q) {
    try {
      const res = await api('GET', `/api/search?q=${encodeURIComponent(q)}`);
      if (search.value.trim() !== q) return;
      const hits = res.results || res.hits || [];
      set(results, hits.length
        ? hits.slice(0, 20).map((hit) => {
          const doc = hit.kind === 'document';
          const id = hit.conversation_id;
          const note = hit.kind === 'note';
          const label = doc ? `Document · ${hit.document_name || 'untitled'}`
            : note ? `Note · ${hit.note_title || 'untitled'}` : hit.conversation_title || 'Conversation';
          const open = () => (doc ? (location.hash = `#/documents/${hit.document_id}`) : id && openConversation(id));
          return h('li', {}, h('button', { type: 'button', class: 'conv-title', disabled: !doc && !id, onclick: open },
            h('span', { text: label }), h('small', { text: (hit.snippet || '').slice(0, 120) })));
        })
        : h('li', { class: 'muted', text: 'No messages match.' }));
      results.hidden = false;
    } catch (e) {
      if (e.status === 404 || e.status === 405) { searchOnServer = false; results.hidden = true; return; }
      ctx.showError(e);
    }
  }

  // ---- messages ----

  function bubble(role, text) {
    const body = h('div', { class: 'body' });
    const meta = h('div', { class: 'meta' });
    const art = h('article', { class: `msg ${role}`, 'data-role': role },
      h('div', { class: 'who', text: role === 'user' ? 'You' : 'Hearth' }), body, meta);
    fill(body, role, text);
    messages.querySelector('.empty')?.remove();
    messages.append(art);
    return { art, body, meta };
  }

  function fill(body, role, text) {
    if (role === 'user') set(body, h('p', { class: 'plain', text }));
    else set(body, render(text));
  }

  function nearBottom() {
    return messages.scrollHeight - messages.scrollTop - messages.clientHeight < 80;
  }

  function scrollDown() {
    messages.scrollTop = messages.scrollHeight;
  }

  /** Lists the document excerpts a reply was given, numbered as it cites them. */
  function sources(view, citations) {
    if (!Array.isArray(citations) || !citations.length) return;
    view.art.querySelector('.sources')?.remove();
    const items = citations.map((c) => h('li', {},
      h('a', { href: `#/documents/${Number(c.document_id)}`, text: `[${c.n}] ${c.document_name}` }),
      h('span', { class: 'muted', text: ` — ${String(c.snippet || '').slice(0, 140)}` })));
    view.meta.before(h('details', { class: 'sources' }, h('summary', { text: `Sources (${citations.length})` }), h('ol', {}, items)));
  }

  /** Lists the skills a reply used (the clock, the documents...) and what they answered. */
  function tools(view, runs) {
    if (!Array.isArray(runs) || !runs.length) return;
    view.art.querySelector('.tools')?.remove();
    const items = runs.map((r) => h('li', { class: r.ok ? '' : 'failed' },
      h('code', { text: `${r.name}(${JSON.stringify(r.arguments ?? {})})` }),
      h('span', { class: 'muted', text: ` → ${String(r.result || '').slice(0, 200)}` })));
    const names = [...new Set(runs.map((r) => r.name))].join(', ');
    view.meta.before(h('details', { class: 'sources tools' }, h('summary', { text: `Used ${names}` }), h('ol', {}, items)));
  }

  /** Adds Copy and Regenerate to the newest reply (and removes them elsewhere). */
  function actions(view, text, stored) {
    messages.querySelectorAll('.msg .actions').forEach((a) => a.remove());
    const copy = h('button', { type: 'button', class: 'small ghost', text: 'Copy', onclick: () => navigator.clipboard?.writeText(text) });
    const again = h('button', { type: 'button', class: 'small ghost regenerate', text: 'Regenerate', onclick: () => regenerate(view, stored) });
    view.art.append(h('div', { class: 'actions' }, copy, again));
  }

  async function openConversation(id) {
    if (running) running.abort();
    voice.cancel();
    toggleSidebar(false);
    try {
      const c = await api('GET', `/api/conversations/${encodeURIComponent(id)}`);
      conversationId = c.id;
      set(messages);
      let last = null;
      for (const m of c.messages) {
        const view = bubble(m.role, m.content);
        if (m.role === 'assistant') {
          last = { view, text: m.content };
          if (m.model) view.meta.textContent = m.model;
          tools(view, m.tool_calls);
          sources(view, m.citations);
        }
      }
      if (last) actions(last.view, last.text, true);
      if (!c.messages.length) empty();
      drawList();
      scrollDown();
      input.focus();
    } catch (e) {
      ctx.showError(e);
    }
  }

  function newChat() {
    if (running) running.abort();
    voice.cancel();
    conversationId = null;
    empty();
    drawList();
    toggleSidebar(false);
    input.focus();
  }

  async function submit() {
    const text = input.value.trim();
    if (!text || running || voice.busy()) return;
    input.value = '';
    grow();
    bubble('user', text);
    await reply(text);
  }

  /** Streams the reply to `text` into a new bubble. */
  async function reply(text) {
    const view = bubble('assistant', '');
    view.art.classList.add('streaming');
    set(view.body, h('span', { class: 'typing', 'aria-label': 'Hearth is typing' }));
    scrollDown();
    running = new AbortController();
    send.hidden = true;
    stop.hidden = false;
    let answer = '';
    let frame = 0;
    let stored = false;
    const draw = () => {
      frame = 0;
      const follow = nearBottom();
      fill(view.body, 'assistant', answer);
      if (follow) scrollDown();
    };
    const body = { message: text, stream: true, temperature: settings.temperature };
    if (conversationId) body.conversation_id = conversationId;
    body.knowledge = settings.knowledge;
    if (settings.model) body.model = settings.model;
    try {
      for await (const { event, data } of stream('/api/chat', body, running.signal)) {
        if (event === 'token') {
          answer += data.text;
          frame ||= requestAnimationFrame(draw);
        } else if (event === 'tool_call') {
          view.meta.textContent = `Using ${data.name}…`;
        } else if (event === 'done') {
          stored = true;
          const first = !conversationId;
          conversationId = data.conversation_id;
          answer = data.reply;
          const rate = data.timings?.predicted_per_second;
          view.meta.textContent = `${data.model} · ${data.usage.completion_tokens} tokens${rate ? ` · ${rate.toFixed(1)} tokens/s` : ''}`;
          tools(view, data.tool_calls);
          sources(view, data.citations);
          if (first || conversations[0]?.id !== conversationId) loadList();
        } else if (event === 'error') {
          throw Object.assign(new Error(data.error?.message || 'The reply failed.'), { code: data.error?.code });
        }
      }
      if (!stored) throw new Error('The connection closed before the reply was complete.');
    } catch (e) {
      if (e.name === 'AbortError') {
        view.meta.textContent = 'Stopped. A stopped reply is not saved.';
      } else {
        view.art.classList.add('failed');
        view.meta.textContent = e.message;
        if (e.code === 'unreachable') ctx.showError(e);
      }
    } finally {
      cancelAnimationFrame(frame);
      running = null;
      stop.hidden = true;
      send.hidden = false;
      view.art.classList.remove('streaming');
      fill(view.body, 'assistant', answer);
      actions(view, answer, stored);
      input.focus();
    }
  }

  // ---- spoken turns: the transcript, then the reply as it streams (its audio plays in voice.js) ----

  let spoken = null; // {view, answer, frame} of the spoken turn being drawn

  function voiceEvent(type, data) {
    if (type === 'transcript') {
      bubble('user', data.text);
      const view = bubble('assistant', '');
      view.art.classList.add('streaming');
      set(view.body, h('span', { class: 'typing', 'aria-label': 'Hearth is thinking' }));
      spoken = { view, answer: '', frame: 0 };
      scrollDown();
      return;
    }
    if (type === 'done') {
      const first = !conversationId;
      conversationId = data.conversation_id;
      if (first || conversations[0]?.id !== conversationId) loadList();
    }
    const turn = spoken;
    if (!turn) return;
    const { view } = turn;
    if (type === 'tool_call') {
      view.meta.textContent = `Using ${data.name}…`;
      return;
    }
    if (type === 'delta') {
      turn.answer += data.text;
      turn.frame ||= requestAnimationFrame(() => {
        turn.frame = 0;
        const follow = nearBottom();
        fill(view.body, 'assistant', turn.answer);
        if (follow) scrollDown();
      });
      return;
    }
    if (type === 'done') {
      turn.answer = data.reply;
      const wait = data.metrics?.speech_end_to_first_audio_ms;
      view.meta.textContent = `${data.model} · spoken${wait == null ? '' : ` · answered aloud in ${(wait / 1000).toFixed(1)} s`}`;
      tools(view, data.tool_calls);
    } else if (type === 'stopped') {
      view.meta.textContent = 'Stopped. A stopped reply is not saved.';
    } else if (type === 'failed') {
      view.art.classList.add('failed');
      view.meta.textContent = data.message;
    }
    cancelAnimationFrame(turn.frame);
    spoken = null;
    view.art.classList.remove('streaming');
    fill(view.body, 'assistant', turn.answer);
    actions(view, turn.answer, type === 'done');
  }

  /** Asks again: the stored last turn is deleted first, then the same message is re-sent. */
  async function regenerate(view, stored) {
    if (running) return;
    const userView = view.art.previousElementSibling;
    const text = userView?.querySelector('.body')?.textContent;
    if (!text) return;
    try {
      if (stored && conversationId) {
        await api('DELETE', `/api/conversations/${encodeURIComponent(conversationId)}/last-turn`);
      }
      view.art.remove();
      await reply(text);
    } catch (e) {
      ctx.showError(e);
    }
  }

  async function loadModels() {
    try {
      const res = await api('GET', '/v1/models');
      for (const m of res.data.filter((m) => m.role !== 'embedding')) {
        model.append(h('option', { value: m.id, text: m.id }));
      }
      model.value = settings.model;
      if (model.value !== settings.model) { model.value = ''; settings.model = ''; }
    } catch (e) {
      ctx.showError(e);
    }
  }

  // A reminder that rang is written into the conversation it was set in: shown there
  // when that one is open, and the list moves it to the top.
  function onNotice(e) {
    const notice = e.detail;
    if (notice.reminder?.conversation_id && notice.reminder.conversation_id === conversationId) {
      const view = bubble('assistant', notice.text);
      view.art.classList.add('notice');
      view.meta.textContent = 'Reminder';
      scrollDown();
    }
    loadList();
  }
  window.addEventListener('hearth:notice', onNotice);

  empty();
  loadList();
  loadModels();
  return {
    el,
    focus: () => input.focus(),
    destroy: () => {
      running?.abort();
      voice.destroy();
      clearTimeout(searchTimer);
      window.removeEventListener('hearth:notice', onNotice);
    },
  };
}
