// Starts the real `hearth serve` (small test model, temporary data dir) and Debian's
// headless Chromium through playwright-core. Nothing is downloaded: the browser is
// /usr/bin/chromium (override with CHROMIUM), the binary target/debug/hearth
// (override with HEARTH_BIN).

import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const TARGET = process.env.CARGO_TARGET_DIR ? path.resolve(ROOT, process.env.CARGO_TARGET_DIR) : path.join(ROOT, 'target');
export const BIN = process.env.HEARTH_BIN || path.join(TARGET, 'debug', 'hearth');
export const SHOTS = path.join(TARGET, 'e2e-screenshots');
const CACHE = process.env.HEARTH_MODEL_CACHE || path.join(os.homedir(), '.cache/hearth/models');
const MODEL = process.env.HEARTH_TEST_SMALL_MODEL || path.join(CACHE, 'SmolLM2-135M-Instruct.Q4_1.gguf');
/** The default chat model, which speaks tools (the small one does not). */
export const DEFAULT_MODEL = process.env.HEARTH_TEST_DEFAULT_MODEL || path.join(CACHE, 'qwen2.5-coder-0.5b-instruct-q4_k_m.gguf');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

function freePort(host = '127.0.0.1') {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, host, () => { const { port } = srv.address(); srv.close(() => resolve(port)); });
    srv.on('error', reject);
  });
}

export class Server {
  /**
   * `env`: more environment for the server (e.g. speech models). `host`: the address to
   * serve on (default 127.0.0.1). `tls`: HTTPS from the server's own CA, with a plain
   * listener beside it (`plainUrl`), which also answers health. `model`: the GGUF to serve
   * (default: the small test model). `prepare(dataDir)`: runs before the server starts
   * (users made with `cli`, workflow files: both are read at start).
   */
  static async start({ env = {}, host = '127.0.0.1', tls = false, model = MODEL, prepare = null } = {}) {
    for (const [what, file] of [['hearth binary', BIN], ['test model', model], ['chromium', CHROMIUM]]) {
      if (!fs.existsSync(file)) throw new Error(`${what} missing at ${file} (run scripts/test.sh, which builds and fetches everything)`);
    }
    const s = new Server();
    s.dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-e2e-'));
    s.logFile = path.join(s.dataDir, 'server.log');
    await prepare?.(s.dataDir);
    const [port, plainPort] = [await freePort(host), await freePort(host)];
    s.url = `${tls ? 'https' : 'http'}://${host}:${port}`;
    s.plainUrl = tls ? `http://${host}:${plainPort}` : null;
    const log = fs.openSync(s.logFile, 'w');
    s.child = spawn(BIN, ['serve', '--listen', `${host}:${port}`, '--http-listen', `${host}:${plainPort}`,
      '--tls', tls ? 'local' : 'off', '--threads', '1', '--data-dir', s.dataDir, '--model', model, '--context-size', '2048'], {
      // hearth.test: the LAN-style name some tests map to the server.
      env: { ...process.env, HEARTH_CONFIG: '/dev/null', HEARTH_ALLOWED_HOSTS: 'hearth.test', HEARTH_LOG_LEVEL: 'info',
        HEARTH_MAX_TOKENS: '200', ...env },
      stdio: ['ignore', log, log],
    });
    await s.waitReady();
    return s;
  }

  async waitReady() {
    const deadline = Date.now() + 180_000;
    while (Date.now() < deadline) {
      if (this.child.exitCode !== null) throw new Error(`hearth exited early:\n${this.log()}`);
      try {
        const health = await (await fetch(`${this.plainUrl ?? this.url}/api/health`)).json();
        const state = health.components.model.state;
        if (state === 'ready') return;
        if (state === 'failed') throw new Error(`model failed to load:\n${this.log()}`);
      } catch (e) {
        if (String(e.message).startsWith('model failed')) throw e;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`hearth did not become ready:\n${this.log()}`);
  }

  log() {
    return fs.readFileSync(this.logFile, 'utf8');
  }

  /** The first-run setup code, from the private file the server keeps it in (never the log). */
  setupCode() {
    const file = path.join(this.dataDir, 'setup-code');
    const code = fs.existsSync(file) ? fs.readFileSync(file, 'utf8').trim() : '';
    if (!/^[A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4}$/.test(code)) {
      throw new Error(`no setup code in ${file}:\n${this.log()}`);
    }
    return code;
  }

  /** Runs SQL on the live database (WAL allows a second writer connection). */
  sql(statement, params) {
    const script = 'import sqlite3, sys, json\n'
      + 'c = sqlite3.connect(sys.argv[1]); c.execute(sys.argv[2], json.loads(sys.argv[3])); c.commit()';
    execFileSync('python3', ['-c', script, path.join(this.dataDir, 'hearth.db'), statement, JSON.stringify(params)]);
  }

  async stop() {
    if (this.child.exitCode === null) {
      this.child.kill('SIGTERM');
      await new Promise((r) => { this.child.once('exit', r); setTimeout(r, 5000); });
    }
    fs.rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/** Runs `hearth <args>` on a data dir (e.g. `users add root --admin`); returns its stdout. */
export function cli(dataDir, args) {
  return execFileSync(BIN, [...args, '--data-dir', dataDir], { env: { ...process.env, HEARTH_CONFIG: '/dev/null' }, encoding: 'utf8' });
}

/**
 * Headless Chromium with a fresh profile, no network beyond the test server. `env`: its
 * environment (HOME decides which NSS certificate database it trusts).
 */
export async function launchBrowser(extraArgs = [], env = undefined) {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    env,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync', ...extraArgs],
  });
}

/** Chromium flags that make `wav` the microphone (played in a loop) and grant its use. */
export function fakeMicrophone(wav) {
  return ['--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream', `--use-file-for-fake-audio-capture=${wav}`];
}
