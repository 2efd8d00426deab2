// End-to-end tests of the web UI in real headless Chromium against the real server:
// onboarding, a streamed reply, safe rendering of hostile model output, conversation
// management, admin pages, logout and a rejected login. Screenshots of the chat page
// at phone and desktop width land in target/e2e-screenshots/.
//
// The tests run in order and share one server and one browser page.

import test, { before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Server, launchBrowser, SHOTS } from './harness.mjs';

let server;
let browser;
let page;
const pageErrors = [];
const dialogs = [];
const TIMEOUT = 30_000;

before(async () => {
  server = await Server.start();
  browser = await launchBrowser();
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, reducedMotion: 'reduce' });
  page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('dialog', (d) => { dialogs.push(d.message()); d.accept(); });
  fs.mkdirSync(SHOTS, { recursive: true });
});

after(async () => {
  await browser?.close();
  if (process.exitCode && server) console.error(server.log());
  await server?.stop();
});

const messages = () => page.locator('#messages');
const lastReply = () => page.locator('.msg.assistant').last();

test('the UI is served from the binary with caching headers and a strict CSP', async () => {
  const res = await fetch(`${server.url}/`, { headers: { 'Accept-Encoding': 'gzip' } });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('cache-control'), 'no-cache');
  assert.match(res.headers.get('content-security-policy'), /script-src 'self'/);
  const html = await res.text();
  const asset = html.match(/\/assets\/[0-9a-f]+\/app\.js/)[0];
  const js = await fetch(`${server.url}${asset}`);
  assert.match(js.headers.get('cache-control'), /immutable/);
  assert.ok(js.headers.get('etag'));
});

test('onboarding: a wrong setup code is refused, the one in the setup-code file creates the admin', async () => {
  await page.goto(server.url);
  await page.getByRole('heading', { name: 'Set up Hearth' }).waitFor();
  await page.getByLabel('Setup code').fill('AAAA-BBBB-CCCC');
  await page.getByLabel('Administrator name').fill('root');
  await page.getByLabel('Password (at least 8 characters)').fill('correct horse battery');
  await page.getByLabel('Repeat the password').fill('correct horse battery');
  await page.getByRole('button', { name: 'Create administrator' }).click();
  await page.getByText('wrong or expired setup code').waitFor();
  await page.getByText('setup-code', { exact: true }).waitFor();
  await page.screenshot({ path: path.join(SHOTS, 'onboarding.png'), animations: 'disabled' });

  await page.getByLabel('Setup code').fill(server.setupCode().toLowerCase());
  await page.getByRole('button', { name: 'Create administrator' }).click();
  await page.locator('#prompt').waitFor();
  const cookie = (await page.context().cookies()).find((c) => c.name === 'hearth_session');
  assert.ok(cookie, 'session cookie set');
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.sameSite, 'Strict');
  assert.equal(await page.evaluate(() => document.cookie), '', 'scripts cannot read the session');
  assert.ok(!server.log().includes('correct horse battery'), 'the password never reaches the log');
});

test('a reply streams in token by token and is stored', async () => {
  // Record every length the reply's text takes while it streams.
  await page.evaluate(() => {
    window.__lengths = [];
    new MutationObserver(() => {
      const body = document.querySelector('.msg.assistant.streaming .body');
      if (body) window.__lengths.push(body.textContent.length);
    }).observe(document.getElementById('messages'), { childList: true, subtree: true, characterData: true });
  });
  await page.locator('#prompt').fill('Write one short sentence about the sea.');
  await page.locator('#prompt').press('Enter');
  await page.locator('.msg.user').getByText('Write one short sentence about the sea.').waitFor();
  await lastReply().locator('.meta', { hasText: 'tokens' }).waitFor();
  const text = (await lastReply().locator('.body').textContent()).trim();
  assert.ok(text.length > 0, 'the reply has text');
  const lengths = await page.evaluate(() => window.__lengths.filter((n) => n > 0));
  assert.ok(new Set(lengths).size >= 2, `the reply grew in steps while streaming: ${lengths}`);
  await page.locator('.conv-list li').first().waitFor();
  assert.equal(await page.locator('.conv-list li').count(), 1);
});

test('regenerate replaces the last reply instead of adding a turn', async () => {
  const before = await lastReply().locator('.meta').textContent();
  await lastReply().evaluate((el) => { el.dataset.old = '1'; });
  await lastReply().getByRole('button', { name: 'Regenerate' }).click();
  await page.locator('.msg.assistant[data-old]').waitFor({ state: 'detached' });
  await page.locator('.msg.assistant:not(.streaming) .meta', { hasText: 'tokens' }).waitFor();
  assert.equal(await page.locator('.msg.assistant').count(), 1);
  const stored = await page.evaluate(async () => {
    const list = await (await fetch('/api/conversations')).json();
    const convo = await (await fetch(`/api/conversations/${list.conversations[0].id}`)).json();
    return { conversations: list.conversations.length, messages: convo.messages.length };
  });
  assert.deepEqual(stored, { conversations: 1, messages: 2 }, `was: ${before}`);
});

test('the stop button ends a long reply, which is then not stored', async () => {
  // Ask for a long answer: the UI sends no max_tokens, so add one on the way out.
  await page.route('**/api/chat', (route) => route.continue({
    postData: JSON.stringify({ ...route.request().postDataJSON(), max_tokens: 200, temperature: 0 }),
  }));
  await page.locator('#prompt').fill('Count from 1 to 300, separated by commas.');
  await page.locator('#prompt').press('Enter');
  await page.waitForFunction(() => document.querySelector('.msg.assistant.streaming .body')?.textContent.length > 0);
  await page.locator('#stop').click();
  await lastReply().locator('.meta', { hasText: 'Stopped' }).waitFor();
  await page.unroute('**/api/chat');
  assert.ok(await page.locator('#send').isVisible(), 'ready for the next message');
  await page.waitForTimeout(500);
  const stored = await page.evaluate(async () => {
    const list = await (await fetch('/api/conversations')).json();
    return (await (await fetch(`/api/conversations/${list.conversations[0].id}`)).json()).messages.length;
  });
  assert.equal(stored, 2, 'the stopped turn left no trace');
});

test('history search finds messages on the server and opens their conversation', async () => {
  await page.locator('#new-chat').click();
  await page.getByLabel('Search history').fill('sea');
  const hit = page.locator('.results .conv-title').first();
  await hit.waitFor();
  await hit.click();
  await page.locator('.msg.user', { hasText: 'about the sea' }).waitFor();
  await page.getByLabel('Search history').fill('');
  assert.ok(await page.locator('.results').isHidden());
});

test('screenshots of the chat page at phone and desktop width', async () => {
  await page.screenshot({ path: path.join(SHOTS, 'chat-desktop.png'), animations: 'disabled' });
  await page.setViewportSize({ width: 360, height: 740 });
  await page.locator('#prompt').waitFor();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(overflow <= 360, `no sideways scrolling on a phone (width ${overflow})`);
  assert.ok(await page.locator('.menu').isVisible(), 'the conversation list is behind a menu button');
  await page.screenshot({ path: path.join(SHOTS, 'chat-phone.png'), animations: 'disabled' });
  await page.locator('.menu').click();
  await page.locator('#sidebar.open').waitFor();
  await page.screenshot({ path: path.join(SHOTS, 'chat-phone-menu.png'), animations: 'disabled' });
  await page.setViewportSize({ width: 1280, height: 800 });
});

const HOSTILE = [
  'Sure: <script>window.__xss = "script"</script>',
  '',
  '<img src=x onerror="window.__xss = \'img\'">',
  '',
  '[a link](javascript:window.__xss=\'link\') and **<b onmouseover=alert(1)>bold</b>**',
  '',
  '```html',
  '<iframe src="javascript:window.__xss=\'iframe\'"></iframe>',
  '```',
].join('\n');

async function assertInert() {
  const m = messages();
  await m.getByText('<img src=x onerror=', { exact: false }).waitFor();
  assert.equal(await m.locator('script, img, iframe, b').count(), 0, 'no markup from the model became elements');
  assert.equal(await m.locator('a[href^="javascript"]').count(), 0);
  const text = await m.textContent();
  assert.ok(text.includes('<script>window.__xss = "script"</script>'), 'the script tag is shown as text');
  await m.locator('code', { hasText: '<iframe' }).waitFor();
  await page.waitForTimeout(300);
  assert.equal(await page.evaluate(() => window.__xss), undefined, 'nothing ran');
}

test('hostile model output in stored history is shown as text, never run', async () => {
  const me = await page.evaluate(async () => (await (await fetch('/api/me')).json()).user.id);
  const id = 'e2e-hostile-history';
  const now = Math.floor(Date.now() / 1000);
  server.sql('INSERT INTO conversations (id, user_id, title, created_at, updated_at) VALUES (?, ?, ?, ?, ?)',
    [id, me, '<img src=x onerror=alert(1)> title', now, now + 10]);
  server.sql("INSERT INTO messages (conversation_id, role, content, created_at) VALUES (?, 'user', ?, ?)",
    [id, 'Echo this: <script>alert(1)</script>', now]);
  server.sql("INSERT INTO messages (conversation_id, role, content, model, created_at) VALUES (?, 'assistant', ?, 'm', ?)",
    [id, HOSTILE, now]);
  await page.reload();
  await page.locator('.conv-title', { hasText: 'title' }).first().click();
  await assertInert();
  assert.equal(await page.locator('.sidebar img').count(), 0, 'titles are text too');
});

test('hostile text arriving in a stream is shown as text, never run', async () => {
  await page.locator('#new-chat').click();
  const events = HOSTILE.match(/[\s\S]{1,7}/g).map((t) => `event: token\ndata: ${JSON.stringify({ text: t })}\n\n`);
  const done = { conversation_id: 'e2e-fake', message_id: 1, reply: HOSTILE, model: 'm', finish_reason: 'stop',
    usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 }, timings: {}, dropped_messages: 0 };
  await page.route('**/api/chat', (route) => route.fulfill({
    status: 200, headers: { 'content-type': 'text/event-stream' },
    body: events.join('') + `event: done\ndata: ${JSON.stringify(done)}\n\n`,
  }));
  await page.locator('#prompt').fill('Repeat after me');
  await page.locator('#send').click();
  await assertInert();
  await page.unroute('**/api/chat');
  await page.locator('#new-chat').click();
});

test('conversations can be renamed and deleted', async () => {
  const first = page.locator('.conv-list:not(.results) li').filter({ hasText: 'sea' });
  await first.getByRole('button', { name: /^Rename/ }).click();
  const box = page.getByLabel('New title');
  await box.fill('Ocean notes');
  await box.press('Enter');
  await page.locator('.conv-title', { hasText: 'Ocean notes' }).waitFor();
  const renamed = page.locator('.conv-list li').filter({ hasText: 'Ocean notes' });
  await renamed.getByRole('button', { name: /^Delete/ }).click();
  await renamed.waitFor({ state: 'detached' });
  assert.ok(dialogs.some((d) => d.startsWith('Delete the conversation')), 'deleting asks first');
});

test('documents: upload with progress, a cited answer, delete', async () => {
  await page.getByRole('link', { name: 'Documents' }).click();
  await page.getByRole('heading', { name: 'Documents' }).waitFor();
  await page.locator('#files').setInputFiles({
    name: 'lighthouse.txt', mimeType: 'text/plain',
    buffer: Buffer.from('Lighthouse notes.\n\nThe launch code of the old lighthouse is PELICAN-42. Keep it safe.\n'),
  });
  await page.getByRole('button', { name: 'Upload' }).click();
  await page.locator('#upload-status', { hasText: 'Uploaded 1 file' }).waitFor();
  const row = page.locator('tbody tr', { hasText: 'lighthouse.txt' });
  await row.locator('.status', { hasText: 'ready' }).waitFor();
  await page.locator('#storage-usage', { hasText: 'of your 1.0 GiB' }).waitFor();

  await page.getByRole('link', { name: 'Chat' }).click();
  await page.locator('#new-chat').click();
  await page.locator('.settings summary').click();
  await page.getByLabel('Use my documents').check();
  await page.locator('#prompt').fill('What is the launch code of the old lighthouse?');
  await page.locator('#prompt').press('Enter');
  await lastReply().locator('.meta', { hasText: 'tokens' }).waitFor();
  const source = lastReply().locator('.sources a', { hasText: 'lighthouse.txt' });
  await lastReply().locator('.sources summary').click();
  await page.screenshot({ path: path.join(SHOTS, 'chat-citations.png'), animations: 'disabled' });
  await source.click();
  await page.locator('tr.focus', { hasText: 'lighthouse.txt' }).waitFor();

  await row.getByRole('button', { name: 'Delete lighthouse.txt' }).click();
  await row.waitFor({ state: 'detached' });
  await page.getByRole('link', { name: 'Chat' }).click();
  await page.locator('.settings summary').click();
  await page.getByLabel('Use my documents').uncheck();
});

test('admin page: health, live figures, users and API tokens', async () => {
  await page.getByRole('link', { name: 'Admin' }).click();
  await page.getByRole('heading', { name: 'Administration' }).waitFor();
  await page.locator('.stat', { hasText: 'Model' }).getByText('ready').first().waitFor();
  await page.locator('#system .stat', { hasText: 'Memory' }).waitFor();
  // The sampler's history as sparklines (the server has run long enough for two samples).
  await page.locator('#system .stat', { hasText: 'CPU' }).locator('svg.spark polyline').waitFor();
  assert.match(await page.locator('#system svg.spark polyline').first().getAttribute('points'), /^[\d.]+,[\d.]+( [\d.]+,[\d.]+)+$/);
  await page.locator('#system').screenshot({ path: path.join(SHOTS, 'admin-system.png'), animations: 'disabled' });
  const users = page.getByRole('form', { name: 'Create user' });
  await users.getByLabel('Name').fill('bob');
  await users.getByLabel('Password').fill('bob password 1');
  await users.getByRole('button', { name: 'Create user' }).click();
  await page.getByRole('cell', { name: 'bob', exact: true }).waitFor();

  // Bob's skills: the clock turned off for him alone, then back to the box's default.
  const clockOfBob = async () => page.evaluate(async () => {
    const bob = (await (await fetch('/api/users')).json()).users.find((u) => u.name === 'bob');
    const res = await (await fetch(`/api/admin/users/${bob.id}/skills`)).json();
    return res.skills.find((s) => s.name === 'clock');
  });
  await page.getByRole('button', { name: 'Skills of bob' }).click();
  const clock = page.getByRole('checkbox', { name: 'clock for bob' });
  assert.equal(await clock.isChecked(), true, 'on by default');
  await clock.uncheck();
  await page.getByRole('button', { name: 'Use default' }).waitFor();
  assert.equal(await clock.isChecked(), false);
  assert.deepEqual(await clockOfBob().then((c) => [c.default, c.setting, c.enabled]), [true, false, false]);
  await page.getByRole('button', { name: 'Use default' }).click();
  await page.getByRole('button', { name: 'Use default' }).waitFor({ state: 'detached' });
  assert.deepEqual(await clockOfBob().then((c) => [c.setting, c.enabled]), [null, true]);
  assert.equal(await clock.isChecked(), true);

  const tokens = page.getByRole('form', { name: 'Create token' });
  await tokens.getByLabel('Label').fill('e2e');
  await tokens.getByRole('button', { name: 'Create token' }).click();
  const secret = (await page.locator('.secret code.token').textContent()).trim();
  assert.match(secret, /^hth_[0-9a-f]{64}$/);
  const me = await fetch(`${server.url}/api/me`, { headers: { Authorization: `Bearer ${secret}` } });
  assert.equal(me.status, 200, 'a token made in the UI works for API clients');
  assert.equal((await me.json()).auth, 'token');
  // A backup made from the page lands in the list; one's conversations download as a file.
  const backups = page.getByRole('region', { name: 'Backups' });
  await backups.getByRole('button', { name: 'Back up now' }).click();
  await backups.getByRole('cell', { name: /^hearth-backup-\d{8}T\d{6}Z(-\d+)?\.tar\.gz$/ }).waitFor();
  await backups.getByRole('button', { name: 'Back up now' }).waitFor();
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'Markdown' }).click()]);
  assert.match(download.suggestedFilename(), /^hearth-conversations-.+\.md$/);
  await page.screenshot({ path: path.join(SHOTS, 'admin-desktop.png'), fullPage: true, animations: 'disabled' });
  await page.setViewportSize({ width: 360, height: 740 });
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth) <= 360, 'admin page fits a phone');
  await page.screenshot({ path: path.join(SHOTS, 'admin-phone.png'), fullPage: true, animations: 'disabled' });
  await page.setViewportSize({ width: 1280, height: 800 });
});

test('logout ends the session', async () => {
  await page.locator('#logout').click();
  await page.getByRole('heading', { name: 'Log in to Hearth' }).waitFor();
  const status = await page.evaluate(async () => (await fetch('/api/me')).status);
  assert.equal(status, 401);
});

test('a bad login is rejected; the right password logs in', async () => {
  await page.getByLabel('Name').fill('bob');
  await page.getByLabel('Password').fill('not the password');
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByText('wrong user name or password').waitFor();
  assert.equal(await page.locator('#prompt').count(), 0);
  await page.getByLabel('Password').fill('bob password 1');
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.locator('#prompt').waitFor();
  await page.getByRole('link', { name: 'Account' }).waitFor();
  assert.equal(await page.getByRole('link', { name: 'Admin' }).count(), 0, 'bob is not an admin');
});

test('an unreachable server is reported in a banner', async () => {
  server.child.kill('SIGKILL');
  await new Promise((r) => server.child.once('exit', r));
  await page.getByRole('link', { name: 'Documents' }).click();
  await page.locator('#banner', { hasText: 'Cannot reach the Hearth server' }).waitFor();
  assert.equal(await page.locator('#banner').getAttribute('role'), 'alert');
});

test('no script errors on any page', () => {
  assert.deepEqual(pageErrors, []);
});
