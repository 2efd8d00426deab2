// The admin page's audit log in real headless Chromium: onboarding, a failed login from
// another browser and a token made here are in the table with who, from where and how it
// ended; the action filter narrows it; older pages follow.

import test, { before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Server, launchBrowser, SHOTS } from './harness.mjs';

let server;
let browser;
let page;
const pageErrors = [];

before(async () => {
  server = await Server.start();
  browser = await launchBrowser();
  page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
  page.setDefaultTimeout(30_000);
  page.on('pageerror', (e) => pageErrors.push(e.message));
  fs.mkdirSync(SHOTS, { recursive: true });
});

after(async () => {
  await browser?.close();
  if (process.exitCode && server) console.error(server.log());
  await server?.stop();
});

test('an administrator reads and filters the audit log', async () => {
  await page.goto(server.url);
  await page.getByLabel('Setup code').fill(server.setupCode());
  await page.getByLabel('Administrator name').fill('root');
  await page.getByLabel('Password (at least 8 characters)').fill('correct horse battery');
  await page.getByLabel('Repeat the password').fill('correct horse battery');
  await page.getByRole('button', { name: 'Create administrator' }).click();
  await page.locator('#prompt').waitFor();
  // Someone else guesses wrong (as the web UI would send it).
  const failed = await fetch(`${server.url}/api/login`, {
    method: 'POST', headers: { 'Content-Type': 'application/json', 'X-Hearth-CSRF': '1' },
    body: JSON.stringify({ name: 'root', password: 'not the password' }),
  });
  assert.equal(failed.status, 401);

  await page.getByRole('link', { name: 'Admin' }).click();
  await page.getByLabel('Label').fill('laptop');
  await page.getByRole('button', { name: 'Create token' }).click();
  await page.getByText('Copy this token now').waitFor();

  const audit = page.getByRole('region', { name: 'Audit log' });
  const table = audit.getByRole('table', { name: 'Audit log' });
  await table.getByRole('row').filter({ hasText: 'onboarded' }).waitFor();
  // The table loaded before the token was made: filter again to refresh.
  await audit.getByRole('button', { name: 'Filter' }).click();
  const made = table.getByRole('row').filter({ hasText: 'token_created' });
  await made.waitFor();
  assert.match(await made.textContent(), /root.*127\.0\.0\.1.*token_created.*success.*label: laptop/);
  const failure = table.getByRole('row').filter({ hasText: 'login_failed' });
  assert.match(await failure.textContent(), /anonymous.*127\.0\.0\.1.*login_failed.*user:1 root.*failure/);
  await audit.screenshot({ path: path.join(SHOTS, 'admin-audit-log.png'), animations: 'disabled' });

  await audit.getByLabel('Action').selectOption('login_failed');
  await audit.getByRole('button', { name: 'Filter' }).click();
  await table.getByRole('row').filter({ hasText: 'token_created' }).waitFor({ state: 'detached' });
  const rows = await table.locator('tbody tr').allTextContents();
  assert.equal(rows.length, 1, rows.join('\n'));
  assert.match(rows[0], /login_failed/);
});

test('no script errors', () => {
  assert.deepEqual(pageErrors, []);
});
