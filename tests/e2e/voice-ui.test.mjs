// End-to-end tests of push-to-talk in headless Chromium. Chromium's fake microphone
// plays tests/data/speech_kitchen.wav ("Please turn on the kitchen light at seven
// o'clock.", 16 kHz mono s16le; Chromium converts any PCM WAV to its capture rate and
// loops it).
//
// First the client against a scripted /api/ws (Playwright's WebSocket routing), for what
// real models cannot make happen on cue: a cancelled answer, error codes, a dropped
// socket. Then the real thing: `hearth serve` with whisper-tiny-en and piper-joe, a held
// button, the transcript, the spoken reply played and the turn stored.

import test, { before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Server, launchBrowser, fakeMicrophone, ROOT, SHOTS } from './harness.mjs';

const WAV = path.join(ROOT, 'tests/data/speech_kitchen.wav');
const CACHE = process.env.HEARTH_MODEL_CACHE || path.join(os.homedir(), '.cache/hearth/models');
const SPEECH_ENV = { HEARTH_STT_MODEL: 'whisper-tiny-en', HEARTH_TTS_VOICE: 'piper-joe' };
const TIMEOUT = 30_000;
const PASSWORD = 'correct horse battery';

let server;
let browser;
const pageErrors = [];

before(async () => {
  server = await Server.start({ env: SPEECH_ENV });
  browser = await launchBrowser(fakeMicrophone(WAV));
  fs.mkdirSync(SHOTS, { recursive: true });
});

after(async () => {
  await browser?.close();
  if (process.exitCode && server) console.error(server.log());
  await server?.stop();
});

/** A fresh page, logged in (the first call creates the administrator). */
async function newPage(setup, { using = browser, url = server.url } = {}) {
  const context = await using.newContext({ viewport: { width: 1280, height: 800 }, reducedMotion: 'reduce' });
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  page.on('pageerror', (e) => pageErrors.push(e.message));
  // Every buffer the page schedules for playback: when and how long.
  await page.addInitScript(() => {
    window.__played = [];
    const start = AudioBufferSourceNode.prototype.start;
    AudioBufferSourceNode.prototype.start = function (when = 0, ...rest) {
      window.__played.push({ when, duration: this.buffer.duration, rate: this.buffer.sampleRate });
      return start.call(this, when, ...rest);
    };
  });
  await setup?.(page);
  await page.goto(url);
  const onboarding = page.getByRole('heading', { name: 'Set up Hearth' });
  const login = page.getByRole('heading', { name: 'Log in to Hearth' });
  await onboarding.or(login).waitFor();
  if (await onboarding.isVisible()) {
    await page.getByLabel('Setup code').fill(server.setupCode());
    await page.getByLabel('Administrator name').fill('root');
    await page.getByLabel('Password (at least 8 characters)').fill(PASSWORD);
    await page.getByLabel('Repeat the password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Create administrator' }).click();
  } else {
    await page.getByLabel('Name').fill('root');
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Log in' }).click();
  }
  await page.locator('#mic').waitFor();
  return page;
}

/** Holds the microphone button with the mouse for `ms` once it is listening. */
async function holdMic(page, ms, shot) {
  const mic = page.locator('#mic');
  await mic.hover();
  await page.mouse.down();
  assert.equal(await mic.getAttribute('aria-pressed'), 'true');
  await page.locator('#voice-bar[data-state=listening]').waitFor();
  if (shot) {
    await page.waitForTimeout(Math.min(ms, 800)); // let the level meter move
    await page.screenshot({ path: path.join(SHOTS, shot), animations: 'disabled' });
    ms -= Math.min(ms, 800);
  }
  await page.waitForTimeout(ms);
  await page.mouse.up();
  assert.equal(await mic.getAttribute('aria-pressed'), 'false');
}

function pcm(rate, seconds, hz = 440) {
  const n = Math.round(rate * seconds);
  const out = Buffer.alloc(2 * n);
  for (let i = 0; i < n; i++) out.writeInt16LE(Math.round(8000 * Math.sin(2 * Math.PI * hz * i / rate)), 2 * i);
  return out;
}

/**
 * A scripted /api/ws: `script(ws, message)` answers each client message; every socket
 * and message is recorded.
 */
function fakeSocket(page, script) {
  const log = { sockets: 0, text: [], binary: [] };
  const route = page.routeWebSocket('**/api/ws', (ws) => {
    log.sockets++;
    ws.send(JSON.stringify({ type: 'ready', rate: 16000, format: 's16le' }));
    ws.onMessage((message) => {
      if (typeof message === 'string') log.text.push(JSON.parse(message));
      else log.binary.push(message.length);
      script.current(ws, typeof message === 'string' ? JSON.parse(message) : null, log);
    });
  });
  return { log, route };
}

const REPLY = ['The kitchen light ', 'will turn on ', 'at seven.'];

/** Answers a `stop` like the server: transcript, reply deltas, audio, done. */
function answer(ws, m, { audio = [0.2, 0.2, 0.15], id = 'conv-1' } = {}) {
  if (m?.type !== 'stop') return;
  ws.send(JSON.stringify({ type: 'transcript', text: 'Turn on the kitchen light at seven.' }));
  for (const text of REPLY) ws.send(JSON.stringify({ type: 'reply_delta', text }));
  ws.send(JSON.stringify({ type: 'audio_start', rate: 22050, channels: 1, format: 's16le' }));
  for (const seconds of audio) ws.send(pcm(22050, seconds));
  ws.send(JSON.stringify({ type: 'audio_end' }));
  ws.send(JSON.stringify({
    type: 'done', conversation_id: id, message_id: 2, reply: REPLY.join(''), model: 'fake-model',
    metrics: { speech_end_to_transcript_ms: 100, transcript_to_first_token_ms: 50, first_token_to_first_audio_ms: 80, speech_end_to_first_audio_ms: 230 },
  }));
}

let mock;
let mockPage;
const script = { current: () => {} };

test('the capture worklet turns a 48 kHz tone into 16 kHz frames of the same tone', async () => {
  mockPage = await newPage(async (page) => { mock = fakeSocket(page, script); await mock.route; });
  const result = await mockPage.evaluate(async () => {
    const url = new URL('voice-worklet.js', document.querySelector('script[src$="app.js"]').src);
    const run = async (hz) => {
      const ctx = new OfflineAudioContext(1, 48000, 48000);
      await ctx.audioWorklet.addModule(url);
      const node = new AudioWorkletNode(ctx, 'hearth-capture', { numberOfOutputs: 0 });
      const frames = [];
      node.port.onmessage = (e) => { if (e.data.pcm) frames.push(new Int16Array(e.data.pcm)); };
      const tone = new OscillatorNode(ctx, { frequency: hz });
      const gain = new GainNode(ctx, { gain: 0.5 });
      tone.connect(gain).connect(node);
      tone.start();
      await ctx.startRendering();
      await new Promise((r) => setTimeout(r, 200)); // the last messages from the audio thread
      const samples = frames.flatMap((f) => [...f]).map((s) => s / 32768);
      const middle = samples.slice(1000, -1000);
      const rms = Math.sqrt(middle.reduce((a, s) => a + s * s, 0) / middle.length);
      let rising = 0;
      for (let i = 1; i < middle.length; i++) if (middle[i - 1] < 0 && middle[i] >= 0) rising++;
      return { frames: frames.length, frameLength: frames[0]?.length, samples: samples.length, rms, hz: rising * 16000 / middle.length };
    };
    return { tone: await run(1000), alias: await run(12000) };
  });
  assert.equal(result.tone.frameLength, 640, '40 ms frames at 16 kHz');
  assert.ok(result.tone.samples >= 15360 && result.tone.samples <= 16000, `1 s of input gave ${result.tone.samples} samples`);
  assert.ok(Math.abs(result.tone.hz - 1000) < 5, `frequency ${result.tone.hz}`);
  assert.ok(Math.abs(result.tone.rms - 0.5 / Math.SQRT2) < 0.02, `rms ${result.tone.rms}`);
  assert.ok(result.alias.rms < 0.004, `12 kHz does not fold back to 4 kHz (rms ${result.alias.rms})`);
});

test('a spoken turn (scripted server): 16 kHz frames out, transcript and reply in, audio played back to back', async () => {
  const page = mockPage;
  script.current = (ws, m) => answer(ws, m);
  await holdMic(page, 1000, 'voice-listening.png');
  await page.locator('.msg.user', { hasText: 'kitchen light' }).waitFor();
  const reply = page.locator('.msg.assistant').last();
  await reply.locator('.meta', { hasText: 'spoken' }).waitFor();
  assert.equal((await reply.locator('.body').textContent()).trim(), REPLY.join(''));
  assert.match(await reply.locator('.meta').textContent(), /fake-model · spoken · answered aloud in 0\.2 s/);

  const [start, ...rest] = mock.log.text;
  assert.deepEqual(start, { type: 'start', conversation_id: null, voice: null, knowledge: false, vad_silence_ms: 5000 });
  assert.deepEqual(rest, [{ type: 'stop' }]);
  const bytes = mock.log.binary.reduce((a, b) => a + b, 0);
  assert.ok(mock.log.binary.every((n) => n % 2 === 0 && n <= 3200), `s16 frames of at most 100 ms: ${mock.log.binary}`);
  assert.ok(bytes > 0.9 * 32000 && bytes < 1.6 * 32000, `about a second of 16 kHz s16le: ${bytes} bytes`);

  const bar = page.locator('#voice-bar');
  assert.equal(await bar.getAttribute('data-audio-samples'), String(Math.round(22050 * 0.55)));
  const played = await page.evaluate(() => window.__played);
  assert.equal(played.length, 3);
  assert.ok(played.every((p) => p.rate === 22050));
  for (let i = 1; i < played.length; i++) {
    assert.ok(Math.abs(played[i].when - (played[i - 1].when + played[i - 1].duration)) < 1e-6, `gapless: ${JSON.stringify(played)}`);
  }
  await page.locator('#voice-bar[data-state=speaking]').or(page.locator('#voice-bar[hidden]')).waitFor();
  await page.locator('#voice-bar').waitFor({ state: 'hidden' });
});

test('the next turn continues the same conversation; Space on the focused button talks too', async () => {
  const page = mockPage;
  mock.log.text.length = 0;
  await page.locator('#mic').focus();
  await page.keyboard.down('Space');
  await page.locator('#voice-bar[data-state=listening]').waitFor();
  assert.equal(await page.locator('#mic').getAttribute('aria-pressed'), 'true');
  await page.waitForTimeout(300);
  await page.keyboard.up('Space');
  await page.locator('.msg.assistant .meta', { hasText: 'spoken' }).nth(1).waitFor();
  assert.equal(mock.log.text[0].conversation_id, 'conv-1');
  assert.equal(await page.locator('.msg').count(), 4);
});

test('Stop speaking cancels the answer: the server is told, playback stops, the reply is marked', async () => {
  const page = mockPage;
  script.current = (ws, m) => {
    if (m?.type === 'stop') {
      ws.send(JSON.stringify({ type: 'transcript', text: 'Tell me a long story.' }));
      ws.send(JSON.stringify({ type: 'reply_delta', text: 'Once upon a time ' }));
      ws.send(JSON.stringify({ type: 'audio_start', rate: 22050, channels: 1, format: 's16le' }));
      ws.send(pcm(22050, 5));
    } else if (m?.type === 'cancel') {
      ws.send(JSON.stringify({ type: 'cancelled' }));
    }
  };
  mock.log.text.length = 0;
  await holdMic(page, 300);
  await page.locator('#voice-bar[data-state=speaking]').waitFor();
  await page.screenshot({ path: path.join(SHOTS, 'voice-speaking.png'), animations: 'disabled' });
  await page.getByRole('button', { name: 'Stop speaking' }).click();
  await page.locator('.msg.assistant .meta', { hasText: 'Stopped' }).last().waitFor();
  assert.deepEqual(mock.log.text.map((m) => m.type), ['start', 'stop', 'cancel']);
  await page.locator('#voice-bar').waitFor({ state: 'hidden' });
});

test('talking over an answer cancels it first; new audio waits until the server confirms', async () => {
  const page = mockPage;
  let confirm;
  script.current = (ws, m) => {
    if (m?.type === 'stop' && !confirm) {
      ws.send(JSON.stringify({ type: 'transcript', text: 'Count to a thousand.' }));
      ws.send(JSON.stringify({ type: 'reply_delta', text: 'One, two, ' }));
      confirm = () => ws.send(JSON.stringify({ type: 'cancelled' }));
    } else {
      answer(ws, m, { id: 'conv-1' });
    }
  };
  mock.log.text.length = 0;
  const stopped = page.locator('.msg.assistant .meta', { hasText: 'Stopped' });
  const stoppedBefore = await stopped.count();
  await holdMic(page, 300);
  await page.locator('.msg.user', { hasText: 'Count to a thousand' }).waitFor();
  const mic = page.locator('#mic');
  await mic.hover();
  await page.mouse.down();
  await page.waitForTimeout(500);
  assert.deepEqual(mock.log.text.map((m) => m.type), ['start', 'stop', 'cancel'], 'nothing new before the cancel is confirmed');
  const held = mock.log.binary.length;
  confirm();
  await page.waitForTimeout(300);
  assert.equal(await page.locator('#voice-bar').getAttribute('data-state'), 'listening', 'still listening');
  await page.mouse.up();
  await stopped.nth(stoppedBefore).waitFor();
  await page.locator('.msg.assistant').last().locator('.meta', { hasText: 'spoken' }).waitFor();
  assert.deepEqual(mock.log.text.map((m) => m.type), ['start', 'stop', 'cancel', 'start', 'stop']);
  assert.ok(mock.log.binary.length > held, 'the held audio went out after the confirmation');
});

test('server errors are explained in the voice bar', async () => {
  const page = mockPage;
  const cases = [
    ['model_not_ready', /speech models are not ready/],
    ['overloaded', /busy/],
    ['audio_too_long', /too long/],
  ];
  for (const [code, text] of cases) {
    script.current = (ws, m) => {
      if (m?.type === 'stop') ws.send(JSON.stringify({ type: 'error', code, message: 'server words' }));
    };
    await holdMic(page, 200);
    await page.locator('#voice-bar.error', { hasText: text }).waitFor();
  }
  script.current = (ws, m) => {
    if (m?.type === 'stop') ws.send(JSON.stringify({ type: 'no_speech' }));
  };
  await holdMic(page, 200);
  await page.locator('#voice-bar', { hasText: 'didn\'t catch that' }).waitFor();
  await page.waitForTimeout(200);
  assert.ok(!(await page.locator('#voice-bar').getAttribute('class')).includes('error'));
  await page.screenshot({ path: path.join(SHOTS, 'voice-no-speech.png'), animations: 'disabled' });
});

test('a dropped socket is reconnected, and the next turn works', async () => {
  const page = mockPage;
  const before = mock.log.sockets;
  script.current = (ws, m) => {
    if (m?.type === 'stop') ws.close({ code: 1011, reason: 'gone' });
  };
  await holdMic(page, 200);
  await page.locator('#voice-bar.error', { hasText: 'connection dropped' }).waitFor();
  await new Promise((r) => { const t = setInterval(() => { if (mock.log.sockets > before) { clearInterval(t); r(); } }, 50); });
  script.current = (ws, m) => answer(ws, m, { id: 'conv-1' });
  const replies = await page.locator('.msg.assistant .meta', { hasText: 'spoken' }).count();
  await holdMic(page, 200);
  await page.locator('.msg.assistant .meta', { hasText: 'spoken' }).nth(replies).waitFor();
});

test('microphone problems are explained: permission refused, or a page that is not secure', async () => {
  // No --use-fake-ui-for-media-stream: headless Chromium refuses the permission prompt.
  const other = await launchBrowser(['--use-fake-device-for-media-stream', '--host-resolver-rules=MAP hearth.test 127.0.0.1']);
  try {
    const refused = await newPage(null, { using: other });
    await refused.locator('#mic').hover();
    await refused.mouse.down();
    await refused.locator('#voice-bar.error', { hasText: 'Microphone permission was denied' }).waitFor();
    await refused.mouse.up();
    assert.equal(await refused.locator('#mic').getAttribute('aria-pressed'), 'false');

    // A LAN-style name over plain HTTP is not a secure context (localhost is).
    const lan = await newPage(null, { using: other, url: server.url.replace('127.0.0.1', 'hearth.test') });
    assert.equal(await lan.evaluate(() => window.isSecureContext), false);
    await lan.locator('#mic').hover();
    await lan.mouse.down();
    await lan.locator('#voice-bar.error', { hasText: 'secure page' }).waitFor();
    await lan.mouse.up();
    assert.match(await lan.locator('#voice-status').textContent(), /localhost.*HTTPS/);
    await lan.screenshot({ path: path.join(SHOTS, 'voice-insecure.png'), animations: 'disabled' });
  } finally {
    await other.close();
  }
});

test('a box without speech models shows the button disabled, saying why', async () => {
  const main = server;
  server = await Server.start({ env: { HEARTH_STT_MODEL: '/nowhere/ggml-none.bin' } });
  try {
    const page = await newPage(null, { url: server.url });
    const mic = page.locator('#mic');
    await page.locator('#mic:disabled').waitFor();
    assert.match(await mic.getAttribute('title'), /not set up on this box \(speech to text\).*hearth doctor/);
  } finally {
    await server.stop();
    server = main;
  }
});

/** Why the real speech test cannot run here, or null. */
function speechMissing() {
  const have = fs.existsSync(CACHE) ? fs.readdirSync(CACHE) : [];
  const need = [['ggml-tiny.en.bin', /^ggml-tiny\.en\.bin$/], ['en_US-joe-medium.onnx', /^en_US-joe-medium\.onnx$/],
    ['libonnxruntime.so', /^libonnxruntime\.so/]];
  const missing = need.filter(([, re]) => !have.some((f) => re.test(f))).map(([name]) => name);
  return missing.length
    ? `${missing.join(', ')} not in ${CACHE}: run python3 models/fetch.py whisper-tiny-en piper-joe onnxruntime`
    : null;
}

/** Waits until the server hears and speaks. */
async function speechReady() {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const { components } = await (await fetch(`${server.url}/api/health`)).json();
    const parts = [components.speech_to_text, components.text_to_speech];
    if (parts.every((p) => p?.state === 'ready')) return;
    if (parts.some((p) => p?.state === 'failed') || Date.now() > deadline) {
      throw new Error(`speech not ready: ${JSON.stringify(parts)}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

test('real speech: hold the button and say it; the transcript, a spoken reply, and the turn stored', async () => {
  // Missing speech models fail the test and say how to fetch them (never a skip).
  assert.equal(speechMissing(), null);
  await speechReady();
  const page = await newPage();
  const seen = { sent: 0, audioBytes: 0, events: [] };
  page.on('websocket', (ws) => {
    ws.on('framesent', (f) => { if (typeof f.payload !== 'string') seen.sent += f.payload.length; });
    ws.on('framereceived', (f) => {
      if (typeof f.payload === 'string') seen.events.push(JSON.parse(f.payload));
      else seen.audioBytes += f.payload.length;
    });
  });
  await page.evaluate(() => {
    window.__states = [];
    const bar = document.getElementById('voice-bar');
    new MutationObserver(() => {
      if (window.__states.at(-1) !== bar.dataset.state) window.__states.push(bar.dataset.state);
    }).observe(bar, { attributes: true, attributeFilter: ['data-state'] });
  });

  // On a failure, say what the socket and the voice bar showed.
  const explain = async (e) => {
    const status = await page.locator('#voice-bar').textContent().catch(() => '?');
    const log = server.log().split('\n').filter((l) => !/whisper_|llama|ggml|print_info|load_tensors/.test(l)).slice(-30);
    e.message += `\nvoice bar: ${status}\nevents: ${JSON.stringify(seen.events).slice(0, 2000)}\nsent ${seen.sent} bytes`
      + `\nserver log:\n${log.join('\n')}`;
    throw e;
  };
  await holdMic(page, 4000, 'voice-real-listening.png');
  const user = page.locator('.msg.user').last();
  await user.waitFor({ timeout: 60_000 }).catch(explain);
  const transcript = (await user.textContent()).trim();
  assert.match(transcript, /kitchen/i, `transcript: ${transcript}`);
  const reply = page.locator('.msg.assistant').last();
  await reply.locator('.meta', { hasText: 'spoken' }).waitFor({ timeout: 240_000 }).catch(explain);
  const replyText = (await reply.locator('.body').textContent()).trim();
  assert.ok(replyText.length > 0, 'the reply has text');
  await page.screenshot({ path: path.join(SHOTS, 'voice-real.png'), animations: 'disabled' });

  assert.ok(seen.sent > 3 * 32000 && seen.sent < 5 * 32000, `about 4 s of 16 kHz s16le went up: ${seen.sent} bytes`);
  const types = seen.events.map((e) => e.type);
  for (const type of ['ready', 'transcript', 'reply_delta', 'audio_start', 'audio_end', 'done']) {
    assert.ok(types.includes(type), `${type} in ${types}`);
  }
  assert.ok(types.indexOf('transcript') < types.indexOf('reply_delta') && types.indexOf('audio_end') < types.indexOf('done'));
  const done = seen.events.find((e) => e.type === 'done');
  const start = seen.events.find((e) => e.type === 'audio_start');
  assert.equal(typeof done.metrics.speech_end_to_transcript_ms, 'number');
  assert.equal(typeof done.metrics.speech_end_to_first_audio_ms, 'number');
  const samples = Number(await page.locator('#voice-bar').getAttribute('data-audio-samples'));
  assert.equal(samples, seen.audioBytes / 2, 'every sample received was scheduled for playback');
  assert.ok(samples > start.rate / 2, `at least half a second of speech: ${samples} samples at ${start.rate} Hz`);
  await page.locator('#voice-bar').waitFor({ state: 'hidden', timeout: 120_000 }); // played to the end
  const states = await page.evaluate(() => window.__states);
  for (const state of ['listening', 'thinking', 'speaking', 'idle']) assert.ok(states.includes(state), `${state} in ${states}`);

  // Stored like a typed turn: in the list, and there after a reload.
  const stored = await page.evaluate(async () => {
    const list = await (await fetch('/api/conversations')).json();
    const convo = await (await fetch(`/api/conversations/${list.conversations[0].id}`)).json();
    return { count: list.conversations.length, id: convo.id, messages: convo.messages.map((m) => [m.role, m.content]) };
  });
  assert.equal(stored.count, 1);
  assert.equal(stored.id, done.conversation_id);
  assert.deepEqual(stored.messages.map(([role]) => role), ['user', 'assistant']);
  assert.match(stored.messages[0][1], /kitchen/i);
  assert.equal(stored.messages[1][1].trim(), done.reply.trim());
  await page.reload();
  await page.locator('.conv-list li').first().locator('.conv-title').click();
  await page.locator('.msg.user', { hasText: /kitchen/i }).waitFor();
  assert.equal(await page.locator('.msg').count(), 2);
  await page.context().close();
});

test('no script errors on the page', () => {
  assert.deepEqual(pageErrors, []);
});
