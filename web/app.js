// Entry point: decides between onboarding, login, chat and admin, owns the error
// banner and the top bar shared by the pages. Pages: #/ (chat), #/notes, #/documents,
// #/workflows, #/admin.

import { api, onSessionExpired, ApiError } from './api.js';
import { h, set } from './dom.js';
import { loginPage, onboardPage } from './auth.js';
import { chatPage } from './chat.js';
import { adminPage } from './admin.js';
import { documentsPage } from './documents.js';
import { notesPage } from './notes.js';
import { workflowsPage } from './workflows.js';
import * as notices from './notices.js';

const root = document.getElementById('app');
const banner = document.getElementById('banner');
let user = null;
let page = null;
let reconnecting = null;
/** The pages besides the chat (#/), by the start of their hash. */
const PAGES = [['#/notes', notesPage], ['#/documents', documentsPage], ['#/workflows', workflowsPage], ['#/admin', adminPage]];

/** Shows a request's failure in the banner at the top. */
function showError(error) {
  const message = error instanceof Error ? error.message : String(error);
  set(banner,
    h('span', { text: message }),
    h('button', { type: 'button', class: 'small', 'aria-label': 'Dismiss', text: '×', onclick: clearError }));
  banner.className = 'banner error';
  banner.hidden = false;
  if (error?.code === 'unreachable' && !reconnecting) reconnecting = setInterval(probe, 5000);
}

function clearError() {
  banner.hidden = true;
  set(banner);
}

/** While the server is unreachable, checks every few seconds and says when it is back. */
async function probe() {
  try {
    await api('GET', '/api/health');
    clearInterval(reconnecting);
    reconnecting = null;
    set(banner, h('span', { text: 'Connection to Hearth restored.' }));
    banner.className = 'banner ok';
    setTimeout(() => { if (banner.className === 'banner ok') clearError(); }, 3000);
  } catch { /* still down */ }
}

function topbar(extra = []) {
  const admin = user.role === 'admin';
  const at = (prefix) => (location.hash.startsWith(prefix) ? 'page' : null);
  const onChat = !PAGES.some(([prefix]) => location.hash.startsWith(prefix));
  return h('header', { class: 'topbar' },
    extra,
    h('a', { class: 'brand', href: '#/', text: 'Hearth' }),
    h('nav', { 'aria-label': 'Main' },
      h('a', { href: '#/', 'aria-current': onChat ? 'page' : null, text: 'Chat' }),
      h('a', { href: '#/notes', 'aria-current': at('#/notes'), text: 'Notes' }),
      h('a', { href: '#/documents', 'aria-current': at('#/documents'), text: 'Documents' }),
      h('a', { href: '#/workflows', 'aria-current': at('#/workflows'), text: 'Workflows' }),
      h('a', { href: '#/admin', 'aria-current': at('#/admin'), text: admin ? 'Admin' : 'Account' })),
    h('span', { class: 'who', text: user.name }),
    h('button', { type: 'button', class: 'small', id: 'logout', text: 'Log out', onclick: logout }));
}

async function logout() {
  try { await api('POST', '/api/logout'); } catch (e) { if (e.code === 'unreachable') return showError(e); }
  await signIn();
}

async function signIn() {
  user = null;
  notices.stop();
  page?.destroy?.();
  page = null;
  let status = { needed: false };
  try {
    status = await api('GET', '/api/onboard');
  } catch (e) {
    showError(e);
  }
  set(root, status.needed ? onboardPage(signedIn, status) : loginPage(signedIn));
  root.querySelector('input')?.focus();
}

function signedIn(who) {
  user = who;
  clearError();
  if (location.hash !== '#/') history.replaceState(null, '', '#/');
  route();
}

function route() {
  if (!user) return;
  notices.listen();
  page?.destroy?.();
  const ctx = { user, showError, clearError, topbar };
  const hash = location.hash;
  page = (PAGES.find(([prefix]) => hash.startsWith(prefix))?.[1] || chatPage)(ctx);
  set(root, page.el);
  page.focus?.();
}

async function boot() {
  try {
    user = (await api('GET', '/api/me')).user;
    route();
  } catch (e) {
    if (e.status === 401) return signIn();
    showError(e);
    set(root, h('div', { class: 'center' },
      h('p', { text: 'Hearth could not start its interface.' }),
      h('button', { type: 'button', class: 'primary', text: 'Try again', onclick: () => { clearError(); boot(); } })));
  }
}

window.addEventListener('hashchange', route);
onSessionExpired(() => {
  if (!user) return;
  signIn().then(() => showError(new ApiError(401, 'unauthorized', 'Your session has ended. Please log in again.')));
});
boot();
