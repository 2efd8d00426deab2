// A phone on the LAN, played by headless Chromium: the server listens on a non-loopback
// address inside a network namespace that tests/e2e/phone.sh made (PHONE_ADDR, never a
// real LAN address), and this whole test runs inside that namespace. Over HTTPS, with
// the box's CA trusted through an NSS database as a phone owner would after checking the
// fingerprint, the page is a secure context: log in, chat, and hold the microphone button
// (Chromium's fake capture device plays tests/data/speech_kitchen.wav): the transcript and
// a spoken reply arrive. Over plain HTTP the same button explains why it cannot record.

import test, { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Server, launchBrowser, fakeMicrophone, ROOT, SHOTS } from './harness.mjs';

const ADDR = process.env.PHONE_ADDR;
const WAV = path.join(ROOT, 'tests/data/speech_kitchen.wav');
const SPEECH_ENV = { HEARTH_STT_MODEL: 'whisper-tiny-en', HEARTH_TTS_VOICE: 'piper-joe' };
const PASSWORD = 'correct horse battery';
const TIMEOUT = 30_000;

let home;
const servers = [];
const browsers = [];

before(() => {
  assert.ok(ADDR && !ADDR.startsWith('127.'), 'run through tests/e2e/phone.sh, which makes the network namespace');
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-phone-'));
  fs.mkdirSync(SHOTS, { recursive: true });
});

after(async () => {
  for (const b of browsers) await b.close();
  for (const s of servers) {
    if (process.exitCode) console.error(s.log());
    await s.stop();
  }
  fs.rmSync(home, { recursive: true, force: true });
});

/** Trusts `pem` in a fresh NSS database under `home`, where Chromium looks. */
function trustInNss(pem) {
  const db = path.join(home, '.pki/nssdb');
  fs.mkdirSync(db, { recursive: true });
  const file = path.join(home, 'hearth-ca.crt');
  fs.writeFileSync(file, pem);
  try {
    execFileSync('certutil', ['-N', '-d', `sql:${db}`, '--empty-password']);
    execFileSync('certutil', ['-A', '-d', `sql:${db}`, '-t', 'C,,', '-n', 'Hearth local CA', '-i', file]);
  } catch (e) {
    throw new Error(`certutil failed (apt-get install libnss3-tools): ${e.message}`);
  }
}

/** Logs in on a fresh page at `url` (the first visit creates the administrator). */
async function signIn(browser, server, url, fingerprint = null) {
  const context = await browser.newContext({ viewport: { width: 412, height: 860 }, reducedMotion: 'reduce', isMobile: true, hasTouch: true });
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  await page.goto(url);
  await page.getByRole('heading', { name: 'Set up Hearth' }).waitFor();
  if (fingerprint) {
    // The setup page shows the CA's fingerprint, to compare on each device.
    await page.locator('.ca-note .fingerprint', { hasText: fingerprint }).waitFor();
    await page.screenshot({ path: path.join(SHOTS, 'phone-setup-fingerprint.png'), animations: 'disabled' });
  }
  await page.getByLabel('Setup code').fill(server.setupCode());
  await page.getByLabel('Administrator name').fill('root');
  await page.getByLabel('Password (at least 8 characters)').fill(PASSWORD);
  await page.getByLabel('Repeat the password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Create administrator' }).click();
  await page.locator('#mic').waitFor();
  return page;
}

test('over HTTPS with the trusted CA: log in, chat, and talk with the microphone', async () => {
  const server = await Server.start({ env: SPEECH_ENV, host: ADDR, tls: true });
  servers.push(server);

  // What a phone owner does: fetch the CA over plain HTTP, compare its fingerprint with
  // the one the box printed, trust it.
  const response = await fetch(`${server.plainUrl}/ca.crt`);
  assert.equal(response.status, 200);
  const pem = await response.text();
  const fingerprint = new crypto.X509Certificate(pem).fingerprint256;
  assert.ok(server.log().includes(fingerprint), `the box printed the fingerprint ${fingerprint}`);
  trustInNss(pem);

  const browser = await launchBrowser(fakeMicrophone(WAV), { ...process.env, HOME: home });
  browsers.push(browser);
  // The plain address redirects to HTTPS; the certificate is trusted (goto fails otherwise).
  const page = await signIn(browser, server, `${server.plainUrl}/`, fingerprint);
  assert.equal(new URL(page.url()).protocol, 'https:');
  assert.equal(await page.evaluate(() => window.isSecureContext), true);
  const health = await (await fetch(`${server.plainUrl}/api/health`)).json();
  assert.equal(health.components.tls.ca_fingerprint, fingerprint);

  await page.locator('#prompt').fill('Say hello in one short sentence.');
  await page.locator('#prompt').press('Enter');
  const typed = page.locator('.msg.assistant').last();
  await typed.locator('.meta', { hasText: 'tokens' }).waitFor({ timeout: 120_000 });
  assert.ok((await typed.locator('.body').textContent()).trim().length > 0, 'a typed reply');

  // Push-to-talk: speech up, transcript and spoken reply down.
  const speech = await (await fetch(`${server.plainUrl}/api/health`)).json();
  for (const part of ['speech_to_text', 'text_to_speech']) {
    assert.notEqual(speech.components[part]?.state, 'failed', JSON.stringify(speech.components[part]));
  }
  let audioBytes = 0;
  page.on('websocket', (ws) => ws.on('framereceived', (f) => { if (typeof f.payload !== 'string') audioBytes += f.payload.length; }));
  const deadline = Date.now() + 120_000;
  while (!(await page.locator('#mic:enabled').count()) && Date.now() < deadline) await page.waitForTimeout(250);
  const mic = page.locator('#mic');
  await mic.hover();
  await page.mouse.down();
  await page.locator('#voice-bar[data-state=listening]').waitFor();
  await page.waitForTimeout(4000);
  await page.mouse.up();
  const user = page.locator('.msg.user').last();
  await user.getByText(/kitchen/i).waitFor({ timeout: 120_000 });
  const reply = page.locator('.msg.assistant').last();
  await reply.locator('.meta', { hasText: 'spoken' }).waitFor({ timeout: 240_000 });
  assert.ok(audioBytes > 22050, `spoken audio came back: ${audioBytes} bytes`);
  await page.screenshot({ path: path.join(SHOTS, 'phone-https-voice.png'), animations: 'disabled' });
});

test('over plain HTTP on the LAN address the microphone button explains instead', async () => {
  const server = await Server.start({ env: SPEECH_ENV, host: ADDR, tls: false });
  servers.push(server);
  const browser = await launchBrowser(fakeMicrophone(WAV), { ...process.env, HOME: home });
  browsers.push(browser);
  const page = await signIn(browser, server, `${server.url}/`);
  assert.equal(await page.evaluate(() => window.isSecureContext), false);
  await page.locator('#mic').hover();
  await page.mouse.down();
  await page.locator('#voice-bar.error', { hasText: 'secure page' }).waitFor();
  await page.mouse.up();
  await page.screenshot({ path: path.join(SHOTS, 'phone-http-insecure.png'), animations: 'disabled' });
});
