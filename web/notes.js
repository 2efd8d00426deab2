// The notes page (#/notes): write a note, the list (most recently changed first, more on
// demand), search by words, edit in place, delete after a confirmation. What the server
// refuses (too long, empty) is said in the form that sent it.

import { api } from './api.js';
import { h, set, ago, field } from './dom.js';

/** The server's limits (notes/mod.rs), to warn while typing; the server decides. */
const TEXT_CHARS = 20000;
const TITLE_CHARS = 200;
const PAGE = 50;
/** A note longer than this is shown cut, with "Show all". */
const SHORT = 600;

/** Title and text fields with a length counter and an error line; `save(title, text)`. */
function noteForm(label, note, submitText, save, cancel) {
  const [titleField, title] = field('Title (optional)', { value: note?.title || '', autocomplete: 'off' });
  const [textField, text] = field('Note', { tag: 'textarea', rows: note ? '6' : '4', value: note?.text || '', required: true });
  const count = h('small', { class: 'muted count', 'aria-live': 'polite' });
  const error = h('p', { class: 'form-error', role: 'alert', hidden: true });
  const button = h('button', { type: 'submit', class: 'primary', text: submitText });
  const counted = () => {
    const [n, t] = [[...text.value].length, [...title.value].length];
    count.textContent = `${n.toLocaleString()} / ${TEXT_CHARS.toLocaleString()} characters`;
    count.className = n > TEXT_CHARS || t > TITLE_CHARS ? 'count form-error' : 'muted count';
  };
  text.addEventListener('input', counted);
  title.addEventListener('input', counted);
  counted();
  const form = h('form', { class: 'note-form', 'aria-label': label }, titleField, textField, count, error,
    h('div', { class: 'row-form' }, button,
      cancel && h('button', { type: 'button', text: 'Cancel', onclick: cancel })));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.hidden = true;
    button.disabled = true;
    try {
      await save(title.value, text.value);
    } catch (err) {
      error.textContent = err.message;
      error.hidden = false;
    } finally {
      button.disabled = false;
    }
  });
  form.addEventListener('keydown', (e) => { if (e.key === 'Escape' && cancel) cancel(); });
  return { form, title, text, reset: () => { form.reset(); title.value = ''; text.value = ''; counted(); } };
}

export function notesPage(ctx) {
  const list = h('ul', { class: 'notes', 'aria-label': 'Notes' });
  const status = h('p', { class: 'muted', role: 'status', id: 'notes-status' });
  const more = h('button', { type: 'button', class: 'small', text: 'More notes', hidden: true, onclick: () => load(true) });
  const search = h('input', { type: 'search', id: 'note-search', placeholder: 'Search notes', 'aria-label': 'Search notes',
    oninput: () => { clearTimeout(searchTimer); searchTimer = setTimeout(load, 300); } });
  let searchTimer = null;
  let shown = 0;

  const create = noteForm('New note', null, 'Save note', async (title, text) => {
    await api('POST', '/api/notes', { title: title.trim() || undefined, text });
    create.reset();
    search.value = '';
    await load();
  });

  async function load(append = false) {
    clearTimeout(searchTimer);
    const q = search.value.trim();
    try {
      const offset = append ? shown : 0;
      const { notes } = await api('GET', q ? `/api/notes?q=${encodeURIComponent(q)}`
        : `/api/notes?limit=${PAGE}&offset=${offset}`);
      if (q !== search.value.trim()) return; // typed on meanwhile
      shown = offset + notes.length;
      if (append) list.append(...notes.map(item));
      else set(list, notes.map(item));
      more.hidden = Boolean(q) || notes.length < PAGE;
      status.textContent = q ? (notes.length ? `${notes.length} note(s) mention “${q}”.` : `No note mentions “${q}”.`)
        : shown ? '' : 'No notes yet. Write one above, or ask Hearth in a chat to note something.';
    } catch (e) { ctx.showError(e); }
  }

  function item(note) {
    const li = h('li', { class: 'note', 'data-id': String(note.id) });
    const show = () => {
      const long = note.text.length > SHORT;
      const body = h('p', { class: `note-text${long ? ' cut' : ''}`, text: long ? `${note.text.slice(0, SHORT)}…` : note.text });
      const edited = note.updated_at > note.created_at ? `changed ${ago(note.updated_at)}` : `written ${ago(note.created_at)}`;
      set(li,
        h('h2', { text: note.title }), body,
        h('div', { class: 'note-foot' },
          h('small', { class: 'muted', text: edited }),
          long && h('button', { type: 'button', class: 'small ghost', text: 'Show all',
            onclick: (e) => { body.textContent = note.text; body.classList.remove('cut'); e.target.remove(); } }),
          h('button', { type: 'button', class: 'small', text: 'Edit', 'aria-label': `Edit ${note.title}`, onclick: edit }),
          h('button', { type: 'button', class: 'small danger', text: 'Delete', 'aria-label': `Delete ${note.title}`, onclick: remove })));
    };
    const edit = () => {
      const editor = noteForm(`Edit ${note.title}`, note, 'Save', async (title, text) => {
        note = await api('PATCH', `/api/notes/${note.id}`, { title, text });
        show();
        li.querySelector('button[aria-label^="Edit"]').focus();
      }, () => { show(); li.querySelector('button[aria-label^="Edit"]').focus(); });
      set(li, editor.form);
      editor.text.focus();
    };
    const remove = async () => {
      if (!confirm(`Delete the note "${note.title}"? This cannot be undone.`)) return;
      try {
        await api('DELETE', `/api/notes/${note.id}`);
        li.remove();
        shown -= 1;
        if (!list.children.length) load();
      } catch (e) { ctx.showError(e); }
    };
    show();
    return li;
  }

  const el = h('div', { class: 'page notes-page' }, ctx.topbar(),
    h('main', { class: 'admin-main' }, h('h1', { text: 'Notes' }),
      h('section', { class: 'panel' }, create.form),
      h('section', { class: 'panel', 'aria-label': 'Your notes' }, search, status, list, more)));
  load();
  return { el, destroy: () => clearTimeout(searchTimer) };
}
