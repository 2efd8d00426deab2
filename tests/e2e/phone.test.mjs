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
import dgram from 'node:dgram';
import tls from 'node:tls';
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

/** A DNS name in wire format at `offset` (following compression pointers), and the end. */
function readName(buf, offset) {
  const labels = [];
  let end = null;
  for (let guard = 0; guard < 64; guard++) {
    const len = buf[offset];
    if (len === 0) { end ??= offset + 1; break; }
    if ((len & 0xc0) === 0xc0) { end ??= offset + 2; offset = ((len & 0x3f) << 8) | buf[offset + 1]; continue; }
    labels.push(buf.toString('latin1', offset + 1, offset + 1 + len));
    offset += 1 + len;
  }
  return [labels.join('.').toLowerCase(), end];
}

/** Every resource record in an mDNS message: { name, type, data }. */
function records(buf) {
  const count = (i) => buf.readUInt16BE(i);
  let offset = 12;
  for (let q = 0; q < count(4); q++) offset = readName(buf, offset)[1] + 4;
  const out = [];
  const total = count(6) + count(8) + count(10);
  for (let r = 0; r < total && offset < buf.length; r++) {
    const [name, end] = readName(buf, offset);
    const type = buf.readUInt16BE(end);
    const length = buf.readUInt16BE(end + 8);
    const start = end + 10;
    let data = buf.subarray(start, start + length);
    if (type === 1) data = [...data].join('.');
    else if (type === 12) data = readName(buf, start)[0];
    out.push({ name, type, data });
    offset = start + length;
  }
  return out;
}

/** Asks the LAN (this namespace) by mDNS for `hearth.local` and `_https._tcp.local`. */
async function mdnsAnswers(from) {
  const question = (name, type) => Buffer.concat([
    ...name.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])),
    Buffer.from([0, 0, type, 0, 1]),
  ]);
  const query = Buffer.concat([Buffer.from([0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0]),
    question('hearth.local', 1), question('_https._tcp.local', 12)]);
  const socket = dgram.createSocket({ type: 'udp4', reuseAddr: true });
  const seen = [];
  socket.on('message', (msg) => { if (msg[2] & 0x80) seen.push(...records(msg)); });
  await new Promise((resolve) => socket.bind(5353, resolve));
  socket.addMembership('224.0.0.251', from);
  socket.setMulticastInterface(from);
  for (let i = 0; i < 4 && !seen.some((r) => r.type === 1); i++) {
    socket.send(query, 5353, '224.0.0.251');
    await new Promise((r) => setTimeout(r, 1000));
  }
  socket.close();
  return seen;
}

test('the box is found by mDNS and re-certifies a new address while serving', async () => {
  const server = servers[0];
  const port = Number(new URL(server.url).port);
  const seen = await mdnsAnswers('10.77.0.2');
  const a = seen.filter((r) => r.name === 'hearth.local' && r.type === 1).map((r) => r.data);
  assert.ok(a.includes(ADDR), `hearth.local resolves to ${ADDR}: ${JSON.stringify(seen)}`);
  const ptr = seen.filter((r) => r.name === '_https._tcp.local' && r.type === 12).map((r) => r.data);
  assert.ok(ptr.some((p) => p.startsWith('hearth on ')), `an _https._tcp service: ${JSON.stringify(seen)}`);

  // A new address on the box: within seconds its certificate covers it too.
  const ca = fs.readFileSync(path.join(server.dataDir, 'tls/ca.crt'));
  execFileSync('ip', ['addr', 'add', '10.77.0.9/24', 'dev', 'veth0']);
  const verified = () => new Promise((resolve) => {
    // The server listens on ADDR; the certificate it serves must name the new address.
    const checkServerIdentity = (_, cert) => tls.checkServerIdentity('10.77.0.9', cert);
    const socket = tls.connect({ host: ADDR, port, ca, checkServerIdentity }, () => {
      resolve(socket.authorized);
      socket.end();
    });
    socket.on('error', () => resolve(false));
  });
  const deadline = Date.now() + 60_000;
  while (!(await verified())) {
    assert.ok(Date.now() < deadline, `10.77.0.9 never verified:\n${server.log().slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 500));
  }
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
