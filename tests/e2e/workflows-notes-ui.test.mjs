// The Workflows and Notes pages in real headless Chromium against the real server (small
// test model). Workflow files are written into the server's workflows folder before it
// starts, with their owner made by `hearth users add`: a scheduled one is listed with its
// trigger in words, turned off and on (from the keyboard), run now, and its run's steps
// shown with their results; one that reads its input asks for it; a broken file is shown
// to the admin; a user with none sees the empty state. A note is written, found by
// search, edited, refused when too long, and deleted. Screenshots of both pages at
// desktop and phone width land in target/e2e-screenshots/.
//
// The tests run in order and share one server and one browser page.

import test, { before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Server, launchBrowser, cli, SHOTS } from './harness.mjs';
import { triggerWords } from '../../web/workflows.js';

const MORNING = `name: morning
description: Says the time
owner: root
trigger:
  every: 1h
steps:
  - id: time
    skill: clock
  - notify: "Good morning! {{ steps.time.output }}"
`;
const ECHO = `name: echo
owner: root
trigger:
  phrase: echo this
steps:
  - id: answer
    reply: "You said: {{ input.text }}"
`;
const BROKEN = `name: broken
owner: root
trigger:
  every: soon
steps:
  - skill: clock
`;
const PASSWORD = 'correct horse battery';

let server;
let browser;
let page;
const pageErrors = [];
const dialogs = [];

before(async () => {
  server = await Server.start({
    prepare: (dataDir) => {
      // Owners are resolved when the files are read, at start: root exists before.
      cli(dataDir, ['users', 'add', 'root', '--admin']);
      const dir = path.join(dataDir, 'workflows');
      fs.mkdirSync(dir);
      fs.writeFileSync(path.join(dir, 'morning.yaml'), MORNING);
      fs.writeFileSync(path.join(dir, 'echo.yaml'), ECHO);
      fs.writeFileSync(path.join(dir, 'broken.yaml'), BROKEN);
    },
  });
  browser = await launchBrowser();
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, reducedMotion: 'reduce' });
  page = await context.newPage();
  page.setDefaultTimeout(30_000);
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('dialog', (d) => { dialogs.push(d.message()); d.accept(); });
  fs.mkdirSync(SHOTS, { recursive: true });
});

after(async () => {
  await browser?.close();
  if (process.exitCode && server) console.error(server.log());
  await server?.stop();
});

const card = (name) => page.locator(`article.wf[data-name="${name}"]`);

/** The page fits the screen's width: nothing to scroll sideways. */
async function fitsWidth() {
  const [scroll, width] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
  assert.ok(scroll <= width, `the page is ${scroll} px wide on a ${width} px screen`);
}

async function shoot(name) {
  await page.screenshot({ path: path.join(SHOTS, `${name}-desktop.png`), animations: 'disabled', fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  await fitsWidth();
  await page.screenshot({ path: path.join(SHOTS, `${name}-phone.png`), animations: 'disabled', fullPage: true });
  await page.setViewportSize({ width: 1280, height: 900 });
}

test('schedules, webhooks and phrases are said in words', () => {
  const words = (trigger, trigger_detail) => triggerWords({ trigger, trigger_detail, owner: 'ann' });
  assert.equal(words('schedule', 'every 3600 s'), 'Every hour');
  assert.equal(words('schedule', 'every 7200 s'), 'Every 2 hours');
  assert.equal(words('schedule', 'every 90 s'), 'Every 90 seconds');
  assert.equal(words('schedule', 'at 07:30'), 'Every day at 07:30');
  assert.equal(words('schedule', 'cron 30 7 * * 1-5'), 'On the schedule “30 7 * * 1-5” (cron)');
  assert.equal(words('webhook', 'deploy'), 'When the webhook “deploy” is called');
  assert.equal(words('phrase', 'good night'), 'When ann says “good night” in a chat');
});

test('the administrator made before start sets a password in onboarding', async () => {
  await page.goto(server.url);
  await page.getByLabel('Setup code').fill(server.setupCode());
  await page.getByLabel('Administrator name').fill('root');
  await page.getByLabel('Password (at least 8 characters)').fill(PASSWORD);
  await page.getByLabel('Repeat the password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Create administrator' }).click();
  await page.locator('#prompt').waitFor();
});

test('the workflows are listed with their triggers in words; the broken file is named to the admin', async () => {
  // From the keyboard: the navigation's link is reached and followed.
  const link = page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Workflows' });
  await link.focus();
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: 'Workflows', level: 1 }).waitFor();
  assert.equal(await link.getAttribute('aria-current'), 'page');

  await card('morning').waitFor();
  assert.deepEqual(await page.locator('article.wf h2').allTextContents(), ['echo', 'morning']);
  const morning = card('morning');
  assert.match(await morning.locator('.wf-desc').textContent(), /^Says the time$/);
  assert.match(await morning.locator('.wf-trigger').textContent(), /^Every hour · next /);
  assert.match(await morning.locator('.wf-last').textContent(), /Last run: never/);
  assert.equal(await morning.getByLabel('Enabled').isChecked(), true);
  assert.match(await card('echo').locator('.wf-trigger').textContent(), /When root says “echo this” in a chat/);

  const errors = page.getByRole('region', { name: 'Workflow files left out' });
  const text = await errors.textContent();
  assert.match(text, /broken\.yaml:4: trigger\.every: /, text);
});

test('a workflow is turned off and on from the keyboard, and that stays', async () => {
  const toggle = card('morning').getByLabel('Enabled');
  await toggle.focus();
  await page.keyboard.press('Space');
  await card('morning').locator('.wf-trigger', { hasNotText: 'next' }).waitFor();
  assert.equal(await card('morning').getByLabel('Enabled').isChecked(), false);
  assert.equal(await page.evaluate(() => document.activeElement.id), 'wf-on-morning', 'the focus stays on the switch');

  await page.reload();
  await card('morning').waitFor();
  assert.equal(await card('morning').getByLabel('Enabled').isChecked(), false, 'off after a reload');
  await card('morning').getByLabel('Enabled').check();
  await card('morning').locator('.wf-trigger', { hasText: 'next' }).waitFor();
  const listed = await page.evaluate(async () => (await fetch('/api/workflows', { headers: { 'X-Hearth-CSRF': '1' } })).json());
  assert.equal(listed.workflows.find((w) => w.name === 'morning').enabled, true);
});

test('run now shows each step with its result and time, then the last run', async () => {
  const morning = card('morning');
  await morning.getByRole('button', { name: 'Run now' }).click();
  const run = morning.locator('section.run[data-state="done"]');
  await run.waitFor();
  const steps = run.locator('li.step');
  assert.equal(await steps.count(), 2);
  const time = steps.nth(0);
  assert.equal(await time.locator('strong').textContent(), 'time');
  assert.match(await time.locator('.step-head').textContent(), /skill · \d+ ms/);
  assert.match(await time.locator('.step-in').textContent(), /Given: clock\(\{\}\)/);
  const said = await time.locator('pre.out').textContent();
  assert.match(said, /^It is \d\d:\d\d on /, said);
  assert.equal(await steps.nth(1).locator('pre.out').textContent(), `Good morning! ${said}`, 'the template filled');
  assert.equal(await run.locator('.run-result pre').textContent(), `Good morning! ${said}`);
  await run.screenshot({ path: path.join(SHOTS, 'workflows-run.png'), animations: 'disabled' });
  // The notify step told the owner live, as a toast.
  await page.locator('.toast', { hasText: 'morning: Good morning! It is' }).waitFor();

  // The list now tells the last run, and the run is among the recent ones.
  await morning.locator('.wf-last', { hasText: 'done by hand' }).waitFor();
  await morning.locator('summary', { hasText: 'Recent runs' }).click();
  await morning.locator('.runs li', { hasText: 'done' }).first().waitFor();
  await shoot('workflows');
});

test('a workflow that reads its input asks for it, and a failing step shows its error', async () => {
  const echo = card('echo');
  await echo.getByLabel('Input: text').fill('hello there');
  await echo.getByRole('button', { name: 'Run now' }).click();
  const run = echo.locator('section.run[data-state="done"]');
  await run.waitFor();
  assert.equal(await run.locator('li.step pre.out').textContent(), 'You said: hello there');

  // Started without the input its template reads: the step fails and its record says why.
  await page.evaluate(async () => {
    await fetch('/api/workflows/echo/run', { method: 'POST', headers: { 'X-Hearth-CSRF': '1', 'Content-Type': 'application/json' },
      body: JSON.stringify({ input: { other: 1 } }) });
  });
  await page.reload();
  await card('echo').locator('.wf-last', { hasText: 'failed' }).waitFor();
  await card('echo').getByRole('button', { name: 'Details of the last run of echo' }).click();
  const failed = card('echo').locator('section.run[data-state="failed"]');
  await failed.waitFor();
  assert.match(await failed.locator('li.step.failed .status').textContent(), /^Error: template: /);
  assert.match(await failed.locator('.run-error').textContent(), /step 'answer' failed/);
});

test('a user without workflows sees how to add one', async () => {
  const created = await page.evaluate(async () => (await fetch('/api/users', {
    method: 'POST', headers: { 'X-Hearth-CSRF': '1', 'Content-Type': 'application/json' },
    body: JSON.stringify({ name: 'bob', password: 'bob password 1', admin: false }),
  })).status);
  assert.equal(created, 201);
  const bob = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
  bob.on('pageerror', (e) => pageErrors.push(e.message));
  await bob.goto(`${server.url}/#/workflows`);
  await bob.getByLabel('Name').fill('bob');
  await bob.getByLabel('Password').fill('bob password 1');
  await bob.getByRole('button', { name: 'Log in' }).click();
  await bob.getByRole('link', { name: 'Workflows' }).click();
  const empty = bob.locator('#wf-empty');
  await empty.waitFor();
  const text = await empty.textContent();
  assert.ok(text.includes('No workflows yet') && text.includes(path.join(server.dataDir, 'workflows')), text);
  assert.match(await empty.locator('pre').textContent(), /owner: bob\n/);
  assert.equal(await bob.locator('article.wf').count(), 0, 'root\'s workflows are not bob\'s');
  assert.equal(await bob.getByRole('region', { name: 'Workflow files left out' }).isHidden(), true);
  await bob.screenshot({ path: path.join(SHOTS, 'workflows-empty.png'), animations: 'disabled' });
  await bob.context().close();
});

test('a note is written, found, edited, refused when too long, and deleted', async () => {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Notes' }).click();
  await page.getByRole('heading', { name: 'Notes', level: 1 }).waitFor();
  await page.locator('#notes-status', { hasText: 'No notes yet' }).waitFor();

  const form = page.getByRole('form', { name: 'New note' });
  await form.getByLabel('Title (optional)').fill('Wifi');
  await form.getByLabel('Note').fill('The guest password is marmalade-42');
  await form.getByRole('button', { name: 'Save note' }).click();
  await page.locator('li.note h2', { hasText: 'Wifi' }).waitFor();
  await form.getByLabel('Note').fill('Black bin goes out on Thursdays\nGreen one every other week');
  await form.getByRole('button', { name: 'Save note' }).click();
  await page.locator('li.note h2', { hasText: 'Black bin goes out on Thursdays' }).waitFor();
  assert.deepEqual(await page.locator('li.note h2').allTextContents(), ['Black bin goes out on Thursdays', 'Wifi'],
    'the newest first; no title: the first line');
  assert.equal(await form.getByLabel('Note').inputValue(), '', 'the form is emptied');

  await page.getByLabel('Search notes').fill('passwords');
  await page.locator('#notes-status', { hasText: '1 note(s) mention “passwords”.' }).waitFor();
  assert.deepEqual(await page.locator('li.note h2').allTextContents(), ['Wifi']);

  await page.getByRole('button', { name: 'Edit Wifi' }).click();
  const editor = page.getByRole('form', { name: 'Edit Wifi' });
  await editor.getByLabel('Note').fill('The guest password is now jam-7');
  await editor.getByRole('button', { name: 'Save' }).click();
  await page.locator('li.note .note-text', { hasText: 'The guest password is now jam-7' }).waitFor();
  assert.equal(await page.getByRole('button', { name: 'Edit Wifi' }).evaluate((b) => b === document.activeElement), true);
  await page.getByLabel('Search notes').fill('marmalade');
  await page.locator('#notes-status', { hasText: 'No note mentions “marmalade”.' }).waitFor();
  await page.getByLabel('Search notes').fill('jam');
  await page.locator('#notes-status', { hasText: '1 note(s) mention “jam”.' }).waitFor();
  await page.getByLabel('Search notes').fill('');
  await page.locator('li.note').nth(1).waitFor();

  // Too long: the counter warns while typing, the server's refusal is said in the form.
  await form.getByLabel('Note').fill('x'.repeat(20_001));
  assert.match(await form.locator('.count').textContent(), /^20,001 \/ 20,000 characters$/);
  assert.equal(await form.locator('.count').getAttribute('class'), 'count form-error');
  await form.getByRole('button', { name: 'Save note' }).click();
  const error = form.getByRole('alert');
  await error.waitFor();
  assert.match(await error.textContent(), /at most 20000 characters/);
  assert.equal(await page.locator('li.note').count(), 2, 'nothing saved');
  await form.getByLabel('Note').fill('');

  await shoot('notes');

  await page.getByRole('button', { name: 'Delete Wifi' }).click();
  await page.locator('li.note h2', { hasText: 'Wifi' }).waitFor({ state: 'detached' });
  assert.match(dialogs.at(-1), /Delete the note "Wifi"\?/);
  await page.reload();
  await page.locator('li.note').first().waitFor();
  assert.deepEqual(await page.locator('li.note h2').allTextContents(), ['Black bin goes out on Thursdays'], 'deleted for good');
});

test('no script errors', () => {
  assert.deepEqual(pageErrors, []);
});
