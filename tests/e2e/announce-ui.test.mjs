// An announcement sent to the box over MQTT (the `announce` command, issue 24) shows in the
// open web UI as a toast, like a reminder. A real mosquitto (apt `mosquitto
// mosquitto-clients`) is started here, on loopback.

import test, { before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { spawn, execFileSync } from 'node:child_process';
import { Server, launchBrowser, SHOTS } from './harness.mjs';

const PASSWORD = 'correct horse battery';

let broker;
let brokerPort;
let server;
let browser;
let page;
const pageErrors = [];

async function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function listening(port) {
  for (let i = 0; i < 300; i++) {
    const up = await new Promise((resolve) => {
      const c = net.connect(port, '127.0.0.1', () => { c.end(); resolve(true); });
      c.on('error', () => resolve(false));
    });
    if (up) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`mosquitto did not listen on ${port}`);
}

before(async () => {
  for (const tool of ['mosquitto', 'mosquitto_pub']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`]);
    } catch {
      throw new Error(`${tool} is missing: sudo apt-get install -y mosquitto mosquitto-clients`);
    }
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-e2e-mqtt-'));
  brokerPort = await freePort();
  const root = process.getuid?.() === 0 ? 'user root\n' : '';
  fs.writeFileSync(path.join(dir, 'mosquitto.conf'), `listener ${brokerPort} 127.0.0.1\nallow_anonymous true\n${root}`);
  broker = spawn('mosquitto', ['-c', path.join(dir, 'mosquitto.conf')], { stdio: 'ignore' });
  await listening(brokerPort);
  server = await Server.start({
    env: {
      HEARTH_MQTT_ENABLED: 'true',
      HEARTH_MQTT_URL: `mqtt://127.0.0.1:${brokerPort}`,
      HEARTH_MQTT_DEVICE_ID: 'e2ebox',
      HEARTH_MQTT_COMMANDS: 'announce',
    },
  });
  browser = await launchBrowser();
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, reducedMotion: 'reduce' });
  page = await context.newPage();
  page.setDefaultTimeout(30_000);
  page.on('pageerror', (e) => pageErrors.push(e.message));
  fs.mkdirSync(SHOTS, { recursive: true });
});

after(async () => {
  await browser?.close();
  if (process.exitCode && server) console.error(server.log());
  await server?.stop();
  broker?.kill();
});

test('an MQTT announcement shows as a toast in the open web UI', async () => {
  await page.goto(server.url);
  await page.getByLabel('Setup code').fill(server.setupCode());
  await page.getByLabel('Administrator name').fill('root');
  await page.getByLabel('Password (at least 8 characters)').fill(PASSWORD);
  await page.getByLabel('Repeat the password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Create administrator' }).click();
  await page.locator('#prompt').waitFor();
  // The page listens to /api/events once signed in; an announcement may come at any moment
  // after, so it is sent until one shows (each is told once, to whoever listens then).
  const toast = page.locator('.toast', { hasText: 'The laundry is done.' });
  for (let i = 0; i < 60 && !(await toast.count()); i++) {
    execFileSync('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(brokerPort), '-q', '1',
      '-t', 'hearth/e2ebox/command/announce', '-m', JSON.stringify({ text: 'The laundry is done.' })]);
    await page.waitForTimeout(500);
  }
  await toast.first().waitFor();
  await page.screenshot({ path: path.join(SHOTS, 'announcement.png'), animations: 'disabled' });
  assert.deepEqual(pageErrors, []);
});
