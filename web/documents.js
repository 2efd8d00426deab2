// The documents page (#/documents): upload with progress, the list with ingest status,
// delete. #/documents/<id> highlights one document (citations link here).

import { api } from './api.js';
import { h, set, ago, bytes } from './dom.js';

/** Uploads files as multipart with progress (fetch cannot report upload progress). */
function upload(files, onProgress) {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    for (const f of files) form.append('file', f, f.name);
    const xhr = new XMLHttpRequest();
    xhr.open('POST', '/api/documents');
    xhr.setRequestHeader('X-Hearth-CSRF', '1');
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
    xhr.onload = () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
      if (xhr.status >= 200 && xhr.status < 300) resolve(body);
      else reject(Object.assign(new Error(body?.error?.message || `Upload failed (${xhr.status}).`), { code: body?.error?.code, status: xhr.status }));
    };
    xhr.onerror = () => reject(Object.assign(new Error('Cannot reach the Hearth server.'), { code: 'unreachable' }));
    xhr.send(form);
  });
}

export function documentsPage(ctx) {
  const focusId = Number(location.hash.split('/')[2]) || null;
  const list = h('tbody', {});
  const input = h('input', { type: 'file', id: 'files', multiple: true, accept: '.txt,.md,.markdown,.pdf,.html,.htm,.csv,.json,text/*,application/pdf' });
  const progress = h('progress', { max: '1', value: '0', hidden: true, 'aria-label': 'Upload progress' });
  const status = h('p', { class: 'muted', role: 'status', id: 'upload-status' });
  const usage = h('p', { class: 'muted', id: 'storage-usage' });
  const button = h('button', { type: 'submit', class: 'primary', text: 'Upload' });
  const form = h('form', { class: 'row-form', 'aria-label': 'Upload documents' },
    h('div', { class: 'field' }, h('label', { for: 'files', text: 'Files (text, Markdown, HTML, PDF)' }), input), button);
  let timer = null;

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!input.files.length) { status.textContent = 'Choose one or more files first.'; return; }
    button.disabled = true;
    progress.hidden = false;
    progress.value = 0;
    status.textContent = 'Uploading…';
    try {
      const res = await upload(input.files, (p) => { progress.value = p; status.textContent = `Uploading… ${Math.round(p * 100)} %`; });
      const dup = res.documents.filter((d) => d.duplicate).length;
      status.textContent = `Uploaded ${res.documents.length} file(s)${dup ? `, ${dup} already known` : ''}; reading them now.`;
      form.reset();
      load();
    } catch (err) {
      status.textContent = err.message;
      if (err.code === 'unreachable') ctx.showError(err);
    } finally {
      button.disabled = false;
      progress.hidden = true;
    }
  });

  async function load() {
    try {
      const { documents, storage } = await api('GET', '/api/documents');
      // The per-user quota (knowledge.user_quota_bytes); null when there is none.
      usage.textContent = storage.quota_bytes
        ? `Using ${bytes(storage.used_bytes)} of your ${bytes(storage.quota_bytes)}.`
        : `Using ${bytes(storage.used_bytes)}.`;
      set(list, documents.length ? documents.map(row) : h('tr', {}, h('td', { colspan: '6', class: 'muted', text: 'No documents yet.' })));
      clearTimeout(timer);
      if (documents.some((d) => d.status === 'pending')) timer = setTimeout(load, 1500);
      if (focusId) list.querySelector(`[data-id="${focusId}"]`)?.scrollIntoView({ block: 'center' });
    } catch (e) {
      ctx.showError(e);
    }
  }

  function row(d) {
    const state = d.status === 'failed' ? `failed: ${d.error || 'unknown error'}` : d.status;
    return h('tr', { 'data-id': String(d.id), id: `doc-${d.id}`, class: d.id === focusId ? 'focus' : null },
      h('td', { text: d.name }), h('td', { text: d.kind }), h('td', { text: bytes(d.size) }),
      h('td', { class: `status ${d.status}`, text: d.status === 'ready' ? `ready (${d.chunk_count} parts)` : state }),
      h('td', { text: ago(d.created_at) }),
      h('td', {}, h('button', { type: 'button', class: 'small danger', 'aria-label': `Delete ${d.name}`, text: 'Delete', onclick: () => remove(d) })));
  }

  async function remove(d) {
    if (!confirm(`Delete the document "${d.name}"? Answers will no longer use it.`)) return;
    try { await api('DELETE', `/api/documents/${d.id}`); load(); } catch (e) { ctx.showError(e); }
  }

  const el = h('div', { class: 'page docs-page' }, ctx.topbar(),
    h('main', { class: 'admin-main' }, h('h1', { text: 'Documents' }),
      h('p', { class: 'muted', text: 'Hearth answers from these when "Use my documents" is on in the chat settings, and cites them.' }),
      h('section', { class: 'panel' }, form, progress, status, usage),
      h('section', { class: 'panel' }, h('table', { 'aria-label': 'Documents' },
        h('thead', {}, h('tr', {}, ['Name', 'Type', 'Size', 'Status', 'Added', ''].map((t) => h('th', { scope: 'col', text: t })))),
        list))));
  load();
  return { el, focus: () => input.focus(), destroy: () => clearTimeout(timer) };
}
