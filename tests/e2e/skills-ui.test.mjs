// The assistant's skills in the web UI, with the default model (which speaks tools): asked
// the time, the reply is answered from the clock, and the bubble shows what was used
// ("Used clock", the call and its result), live and again when the conversation is reopened.

import test, { before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Server, launchBrowser, SHOTS, DEFAULT_MODEL } from './harness.mjs';

let server;
let browser;
let page;
const pageErrors = [];

before(async () => {
  server = await Server.start({ model: DEFAULT_MODEL, env: { HEARTH_MAX_TOKENS: '60' } });
  browser = await launchBrowser();
  page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
  page.setDefaultTimeout(180_000);
  page.on('pageerror', (e) => pageErrors.push(e.message));
  fs.mkdirSync(SHOTS, { recursive: true });
});

after(async () => {
  await browser?.close();
  if (process.exitCode && server) console.error(server.log());
  await server?.stop();
});

test('asked the time, the reply shows that it used the clock, live and when reopened', async () => {
  await page.goto(server.url);
  await page.getByLabel('Setup code').fill(server.setupCode());
  await page.getByLabel('Administrator name').fill('root');
  await page.getByLabel('Password (at least 8 characters)').fill('correct horse battery');
  await page.getByLabel('Repeat the password').fill('correct horse battery');
  await page.getByRole('button', { name: 'Create administrator' }).click();
  await page.locator('#prompt').fill('What time is it now?');
  await page.locator('#prompt').press('Enter');

  const reply = page.locator('.msg.assistant').last();
  const used = reply.locator('details.tools');
  await used.locator('summary', { hasText: 'Used clock' }).waitFor();
  await reply.locator('.meta', { hasText: 'tokens' }).waitFor();
  const call = await used.locator('li').first().textContent();
  assert.match(call, /^clock\(\{\}\) → It is \d\d:\d\d on /, call);
  const time = call.match(/It is (\d\d:\d\d)/)[1];
  const text = await reply.locator('.body').textContent();
  assert.ok(!text.includes('tool_response') && !text.includes('{'), `words, not an echo: ${text}`);
  const [h, m] = time.split(':').map(Number);
  assert.ok(text.includes(time) || text.includes(`${h % 12 || 12}:${String(m).padStart(2, '0')}`), `${time} in: ${text}`);
  await page.screenshot({ path: path.join(SHOTS, 'chat-used-clock.png'), animations: 'disabled' });

  // Stored with the reply: reopening the conversation shows it again.
  await page.reload();
  await page.locator('.conv-list li').first().click();
  await page.locator('.msg.assistant details.tools summary', { hasText: 'Used clock' }).waitFor();
});

test('no script errors', () => {
  assert.deepEqual(pageErrors, []);
});
