// The onboarding and login forms shown before anyone is signed in.

import { api } from './api.js';
import { h, field } from './dom.js';

function card(title, intro, fields, submitText, onSubmit) {
  const error = h('p', { class: 'form-error', role: 'alert', hidden: true });
  const button = h('button', { type: 'submit', class: 'primary wide', text: submitText });
  const form = h('form', { class: 'card', 'aria-label': title },
    h('h1', { text: title }), intro, fields, error, button);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.hidden = true;
    button.disabled = true;
    try {
      await onSubmit();
    } catch (e) {
      error.textContent = e.message;
      error.hidden = false;
    } finally {
      button.disabled = false;
    }
  });
  return h('div', { class: 'center' }, form);
}

/** The local CA's fingerprint, to compare on each phone before trusting the CA. */
function caNote(fingerprint) {
  if (!fingerprint) return null;
  return h('p', { class: 'ca-note' },
    'This box signs its own HTTPS certificate. On each phone or computer, install ',
    h('a', { href: '/ca.crt', text: 'its certificate authority' }),
    ' once and check that the device shows this SHA-256 fingerprint (the box prints it too):',
    h('code', { class: 'fingerprint', text: fingerprint }));
}

/** Encryption at rest is chosen on the box, before the first administrator exists. */
function encryptionNote(encrypted) {
  if (encrypted === undefined) return null;
  if (encrypted) return h('p', { class: 'encryption-note', text: 'This box keeps its data encrypted at rest.' });
  return h('p', { class: 'encryption-note' },
    'This box\'s data is not encrypted at rest. To encrypt it before setting up, stop Hearth and run ',
    h('code', { text: 'hearth onboard --encrypt' }), ' on the box (see docs/encryption.md).');
}

/** Languages whisper hears well, in their own names; others can be set in the config. */
const LANGUAGES = [['en', 'English'], ['de', 'Deutsch'], ['fr', 'Français'], ['es', 'Español'], ['it', 'Italiano'],
  ['nl', 'Nederlands'], ['pt', 'Português'], ['pl', 'Polski'], ['sv', 'Svenska'], ['da', 'Dansk'], ['no', 'Norsk'],
  ['fi', 'Suomi'], ['cs', 'Čeština'], ['tr', 'Türkçe'], ['ru', 'Русский'], ['uk', 'Українська'], ['zh', '中文'],
  ['ja', '日本語'], ['ko', '한국어'], ['ar', 'العربية'], ['hi', 'हिन्दी']];

/** The language people will speak to the box, offered with the box's locale first. */
function languageField(language) {
  if (!language || language.configured) return [null, null];
  const known = LANGUAGES.some(([code]) => code === language.default);
  const options = [...(known ? [] : [[language.default, language.default]]), ...LANGUAGES, ['auto', 'Detect each time (slower)']]
    .map(([code, name]) => h('option', { value: code, text: name, selected: code === language.default }));
  return field('Language you will speak to Hearth', { tag: 'select', name: 'language' }, options);
}

/** First run: create the administrator with the setup code from the box's setup-code file. */
export function onboardPage(done, status = {}) {
  const caFingerprint = status.ca_fingerprint;
  const [codeField, code] = field('Setup code', { name: 'code', required: true, autocomplete: 'off', placeholder: 'XXXX-XXXX-XXXX', spellcheck: 'false' });
  const [nameField, name] = field('Administrator name', { name: 'username', required: true, autocomplete: 'username', value: 'admin' });
  const [passField, pass] = field('Password (at least 8 characters)', { name: 'password', type: 'password', required: true, minlength: 8, autocomplete: 'new-password' });
  const [againField, again] = field('Repeat the password', { name: 'password2', type: 'password', required: true, autocomplete: 'new-password' });
  // The code is never shown in logs (issue 25): it lives in a private file on the box.
  const intro = h('p', {},
    'Welcome! Create the administrator account. The one-time setup code is in the file ',
    h('code', { text: 'setup-code' }), ' in Hearth\'s data directory on the box (usually ',
    h('code', { text: 'sudo cat /var/lib/hearth/setup-code' }), '; the server log says where), or run ',
    h('code', { text: 'hearth onboard' }), ' on the box for a new one. Only the newest code works.');
  const [langField, lang] = languageField(status.language);
  const fields = [codeField, nameField, passField, againField, langField, caNote(caFingerprint),
    encryptionNote(status.encrypted)].filter(Boolean);
  return card('Set up Hearth', intro, fields, 'Create administrator', async () => {
    if (pass.value !== again.value) throw new Error('The two passwords differ.');
    const body = { code: code.value, name: name.value.trim(), password: pass.value };
    if (lang) body.language = lang.value;
    const res = await api('POST', '/api/onboard', body);
    done(res.user);
  });
}

/** Name and password. */
export function loginPage(done) {
  const [nameField, name] = field('Name', { name: 'username', required: true, autocomplete: 'username' });
  const [passField, pass] = field('Password', { name: 'password', type: 'password', required: true, autocomplete: 'current-password' });
  return card('Log in to Hearth', null, [nameField, passField], 'Log in', async () => {
    try {
      const res = await api('POST', '/api/login', { name: name.value.trim(), password: pass.value });
      done(res.user);
    } catch (e) {
      pass.value = '';
      pass.focus();
      throw e;
    }
  });
}
