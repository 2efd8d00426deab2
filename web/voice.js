// Push-to-talk: hold the microphone button (mouse, touch, or Space/Enter while it has
// focus), speak, let go. The microphone goes through an AudioWorklet (voice-worklet.js)
// that makes 16 kHz s16le frames for /api/ws; the spoken answer comes back as PCM and
// is played gaplessly with Web Audio. chat.js draws the turn through `onEvent`.

import { h, set } from './dom.js';

const PTT_SILENCE_MS = 5000; // the longest pause the server allows; the release ends the utterance
const MAX_QUEUED = 1500; // frames held while (re)connecting: 60 s of audio
const LEAD_S = 0.05; // how far ahead of the clock playback starts

/** s16le bytes (with `rest`, an odd byte left from the previous chunk) to floats. */
export function pcmToFloat(bytes, rest) {
  let data = bytes;
  if (rest) {
    data = new Uint8Array(rest.length + bytes.length);
    data.set(rest);
    data.set(bytes, rest.length);
  }
  const n = data.length >> 1;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const samples = new Float32Array(n);
  for (let i = 0; i < n; i++) samples[i] = view.getInt16(2 * i, true) / 32768;
  return { samples, rest: data.length & 1 ? data.slice(-1) : null };
}

/** When each chunk of the answer plays: right after the previous one, never in the past. */
export class Schedule {
  constructor(lead = LEAD_S) {
    this.lead = lead;
    this.end = 0;
  }

  next(now, duration) {
    const start = Math.max(this.end, now + this.lead);
    this.end = start + duration;
    return start;
  }

  reset() { this.end = 0; }
}

const ERRORS = {
  insecure: 'The browser only allows the microphone on a secure page. Open Hearth as localhost on this device, or set up HTTPS for it.',
  NotAllowedError: 'Microphone permission was denied. Allow the microphone for this site in the browser settings, then try again.',
  SecurityError: 'Microphone permission was denied. Allow the microphone for this site in the browser settings, then try again.',
  NotFoundError: 'No microphone was found.',
  OverconstrainedError: 'No microphone was found.',
  NotReadableError: 'The microphone is unavailable (is another app using it?).',
  unsupported: 'This browser cannot record audio here (it lacks Web Audio worklets).',
  model_not_ready: 'Hearth\'s speech models are not ready (still loading, or not installed).',
  overloaded: 'Hearth is busy answering someone else. Try again in a moment.',
  audio_too_long: 'That was too long to transcribe. Keep it shorter and try again.',
  offline: 'Cannot reach Hearth\'s voice service. Reconnecting…',
  dropped: 'The connection dropped while you were talking. Try again.',
};

/** A short, useful sentence for a microphone failure or a server error code. */
export function voiceErrorText(e) {
  return ERRORS[e?.code] || ERRORS[e?.name] || e?.message || 'Voice failed.';
}

/**
 * The microphone button and the voice status bar.
 * hooks: conversationId(), knowledge(), interrupt() (stop a typed reply),
 * onEvent(type, data) with type transcript | delta | done | stopped | failed.
 */
export function voiceControl(hooks) {
  const level = h('span', { class: 'level', 'aria-hidden': 'true' }, h('span'));
  const status = h('span', { class: 'voice-status', id: 'voice-status', role: 'status' });
  const stopSpeaking = h('button', {
    type: 'button', class: 'small danger', id: 'voice-stop', text: 'Stop speaking', hidden: true, onclick: () => cancel(),
  });
  const bar = h('div', { class: 'voice-bar', id: 'voice-bar', hidden: true, 'data-state': 'idle', 'data-audio-samples': '0' },
    level, status, stopSpeaking);
  const button = h('button', {
    type: 'button', class: 'mic', id: 'mic', 'aria-pressed': 'false', 'aria-label': 'Hold to talk',
    'aria-describedby': 'voice-status', title: 'Hold to talk (or hold Space)',
  });

  let ws = null;
  let ready = false; // the server said "ready" on this socket
  let retry = 0;
  let retryTimer = null;
  let closed = false; // the page went away
  const outbox = []; // messages waiting for the socket (or for a cancelled turn to end)
  let holding = false;
  let mic = null; // the open microphone: {stream, source, node, live, sent, ended, flushed}
  let turn = null; // {cancelSent}: from the release until done, cancelled, no_speech or error
  let ctx = null;
  let rate = 22050;
  let carry = null;
  const schedule = new Schedule();
  const playing = new Set();
  let audioEnded = true;
  let samples = 0;

  function show(state, text, error = false) {
    bar.hidden = state === 'idle' && !text;
    bar.dataset.state = state;
    button.dataset.state = state;
    bar.classList.toggle('error', error);
    status.textContent = text || '';
    stopSpeaking.hidden = !(state === 'thinking' || state === 'speaking');
    if (state !== 'listening') meter(0);
  }

  function fail(e) {
    show('idle', voiceErrorText(e), true);
  }

  function meter(rms) {
    const db = rms > 0 ? 20 * Math.log10(rms) : -100;
    level.firstChild.style.transform = `scaleX(${Math.max(0, Math.min(1, (db + 60) / 50))})`;
  }

  // ---- the socket ----

  function connect() {
    if (closed || ws) return;
    clearTimeout(retryTimer);
    ready = false;
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    ws = new WebSocket(`${scheme}//${location.host}/api/ws`);
    ws.binaryType = 'arraybuffer';
    ws.onmessage = (e) => (typeof e.data === 'string' ? onText(e.data) : onAudio(e.data));
    ws.onclose = () => {
      ws = null;
      ready = false;
      if (closed) return;
      if (turn || mic?.sent) {
        // What was said (or the answer) is lost with the connection.
        if (turn && !turn.cancelSent) hooks.onEvent('failed', { message: ERRORS.dropped });
        turn = null;
        release(true);
        outbox.length = 0;
        stopPlayback();
        fail({ code: 'dropped' });
      } else if (holding || outbox.length) {
        show('connecting', ERRORS.offline);
      }
      retry = Math.min(retry + 1, 5);
      retryTimer = setTimeout(connect, 500 * 2 ** (retry - 1)); // 0.5 s … 8 s
    };
  }

  /** Sends in order; holds messages while the socket is down or a stopped turn winds down. */
  function post(message) {
    if (!(message instanceof ArrayBuffer) || outbox.length < MAX_QUEUED) outbox.push(message);
    flush();
  }

  function flush() {
    while (outbox.length && ready && !turn?.cancelSent && ws?.readyState === WebSocket.OPEN) {
      const message = outbox.shift();
      if (message instanceof ArrayBuffer) {
        ws.send(message);
        if (mic) mic.sent++;
      } else {
        ws.send(message === START ? startMessage() : JSON.stringify(message));
      }
    }
  }

  // `start` is written when sent: a turn that ends meanwhile may create the conversation.
  const START = {};
  function startMessage() {
    return JSON.stringify({
      type: 'start', conversation_id: hooks.conversationId() || null, voice: null,
      knowledge: hooks.knowledge(), vad_silence_ms: PTT_SILENCE_MS,
    });
  }

  function onText(text) {
    let m;
    try { m = JSON.parse(text); } catch { return; }
    switch (m.type) {
      case 'ready':
        ready = true;
        retry = 0;
        if (holding && mic) show('listening', 'Listening… let go to send.');
        flush();
        break;
      case 'vad':
        if (m.event === 'speech_end' && holding) {
          // The server heard a long pause and is answering already.
          if (mic) mic.ended = true;
          release();
        }
        break;
      case 'transcript':
        if (!turn) break;
        hooks.onEvent('transcript', { text: m.text });
        show('thinking', 'Thinking…');
        break;
      case 'tool_call':
        if (turn && !turn.cancelSent) hooks.onEvent('tool_call', { name: m.name });
        break;
      case 'notice':
        // A reminder that rang, spoken between turns (the page shows it from /api/events).
        if (!turn) turn = { notice: true };
        break;
      case 'reply_delta':
        if (turn && !turn.cancelSent) hooks.onEvent('delta', { text: m.text });
        break;
      case 'audio_start':
        if (!turn || turn.cancelSent) break;
        rate = Number(m.rate) || 22050;
        carry = null;
        audioEnded = false;
        schedule.reset();
        break;
      case 'notice_end':
        if (!turn?.notice) break;
        turn = null;
        if (!holding && !playing.size) show('idle');
        flush();
        break;
      case 'audio_end':
        audioEnded = true;
        if (!playing.size && !turn && !holding) show('idle');
        break;
      case 'no_speech':
        turn = null;
        show('idle', 'I didn\'t catch that. Hold the button while you speak.');
        flush();
        break;
      case 'done': {
        const stopped = turn?.cancelSent;
        turn = null;
        hooks.onEvent('done', m);
        if (!holding && (stopped || (!playing.size && audioEnded))) show('idle');
        flush();
        break;
      }
      case 'cancelled':
        if (!turn?.cancelSent) break; // a turn that had already finished
        turn = null;
        if (!holding) show('idle');
        flush();
        break;
      case 'error':
        if (turn?.cancelSent) { turn = null; flush(); break; } // how a stopped answer ended
        if (turn) hooks.onEvent('failed', { message: voiceErrorText(m) });
        turn = null;
        if (holding) release(true);
        stopPlayback();
        fail(m);
        flush();
        break;
      default:
    }
  }

  // ---- playback ----

  function onAudio(data) {
    if (!turn || turn.cancelSent || !ctx) return;
    const decoded = pcmToFloat(new Uint8Array(data), carry);
    carry = decoded.rest;
    const n = decoded.samples.length;
    if (!n) return;
    const buffer = ctx.createBuffer(1, n, rate);
    buffer.copyToChannel(decoded.samples, 0);
    const source = ctx.createBufferSource();
    source.buffer = buffer;
    source.connect(ctx.destination);
    source.onended = () => {
      playing.delete(source);
      if (!playing.size && audioEnded && !turn && !holding) show('idle');
    };
    source.start(schedule.next(ctx.currentTime, buffer.duration));
    playing.add(source);
    samples += n;
    bar.dataset.audioSamples = String(samples);
    bar.dataset.audioRate = String(rate);
    if (!holding) show('speaking', 'Speaking…');
  }

  function stopPlayback() {
    for (const source of playing) {
      source.onended = null;
      try { source.stop(); } catch { /* not started */ }
    }
    playing.clear();
    schedule.reset();
    audioEnded = true;
  }

  /** Stops the answer: the server stops generating, and nothing more is played. */
  function cancel() {
    if (turn && !turn.cancelSent) {
      hooks.onEvent('stopped');
      if (ready && ws?.readyState === WebSocket.OPEN) {
        turn.cancelSent = true; // later messages wait until the server confirms
        ws.send(JSON.stringify({ type: 'cancel' }));
      } else {
        turn = null;
      }
    }
    stopPlayback();
    if (!holding) show('idle');
  }

  // ---- the microphone ----

  async function openMic() {
    if (!ctx) {
      ctx = new AudioContext({ latencyHint: 'interactive' });
      ctx.loaded = ctx.audioWorklet.addModule(new URL('./voice-worklet.js', import.meta.url));
    }
    ctx.resume();
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 },
    });
    try {
      await ctx.loaded;
      const source = ctx.createMediaStreamSource(stream);
      const node = new AudioWorkletNode(ctx, 'hearth-capture', { numberOfInputs: 1, numberOfOutputs: 0 });
      const m = { stream, source, node, live: true, sent: 0, ended: false, flushed: null };
      node.port.onmessage = (e) => {
        if (e.data.pcm) {
          if (m.live) post(e.data.pcm);
          meter(e.data.level);
        } else if (e.data.flushed) {
          m.flushed?.();
        }
      };
      source.connect(node);
      return m;
    } catch (e) {
      stream.getTracks().forEach((t) => t.stop());
      throw e;
    }
  }

  function closeMic(m) {
    m.source.disconnect();
    m.node.port.onmessage = null;
    m.stream.getTracks().forEach((t) => t.stop());
  }

  async function press() {
    if (holding || closed) return;
    if (!window.isSecureContext || !navigator.mediaDevices?.getUserMedia) return fail({ code: 'insecure' });
    if (!window.AudioWorkletNode) return fail({ code: 'unsupported' });
    holding = true;
    button.setAttribute('aria-pressed', 'true');
    hooks.interrupt?.();
    cancel(); // talking over the answer stops it
    show('connecting', 'Starting the microphone…');
    connect();
    post(START);
    let m;
    try {
      m = await openMic();
    } catch (e) {
      holding = false;
      button.setAttribute('aria-pressed', 'false');
      outbox.length = 0;
      fail(e);
      return;
    }
    if (!holding) {
      closeMic(m);
      outbox.length = 0;
      show('idle', 'Hold the button while you speak.');
      return;
    }
    mic = m;
    show(ready ? 'listening' : 'connecting', ready ? 'Listening… let go to send.' : 'Connecting…');
  }

  /** The button was let go (or the server ended the utterance, or failed: `abandon`). */
  async function release(abandon = false) {
    if (!holding) return;
    holding = false;
    button.setAttribute('aria-pressed', 'false');
    const m = mic;
    mic = null;
    if (!m) return; // still opening: press() tidies up
    if (abandon) {
      m.live = false;
      closeMic(m);
      outbox.length = 0;
      return;
    }
    turn = { cancelSent: false };
    show('thinking', ready ? 'Transcribing…' : 'Connecting…');
    // The worklet hands over its last partial frame before `stop` goes out.
    await new Promise((resolve) => {
      m.flushed = resolve;
      m.node.port.postMessage('flush');
      setTimeout(resolve, 300);
    });
    m.live = false;
    closeMic(m);
    if (!m.ended) post({ type: 'stop' });
    if (!ready) {
      setTimeout(() => {
        if (turn && !ready) { turn = null; outbox.length = 0; fail({ code: 'offline' }); }
      }, 10_000);
    }
  }

  button.addEventListener('pointerdown', (e) => {
    if (e.button !== 0) return;
    e.preventDefault();
    button.setPointerCapture?.(e.pointerId);
    button.focus();
    press();
  });
  for (const type of ['pointerup', 'pointercancel', 'lostpointercapture']) button.addEventListener(type, () => release());
  button.addEventListener('keydown', (e) => {
    if (e.key !== ' ' && e.key !== 'Enter') return;
    e.preventDefault();
    if (!e.repeat) press();
  });
  button.addEventListener('keyup', (e) => {
    if (e.key !== ' ' && e.key !== 'Enter') return;
    e.preventDefault();
    release();
  });
  button.addEventListener('blur', () => release());
  button.addEventListener('contextmenu', (e) => e.preventDefault());
  button.addEventListener('pointerenter', connect, { once: true });
  button.addEventListener('focus', connect, { once: true });

  return {
    button,
    bar,
    /** Speech is not installed: the button stays, disabled, with the reason. */
    unavailable(reason) {
      button.disabled = true;
      button.title = reason;
      button.setAttribute('aria-label', reason);
    },
    /** A spoken turn is being answered. */
    busy: () => Boolean(turn || holding),
    cancel,
    destroy() {
      closed = true;
      clearTimeout(retryTimer);
      if (mic) closeMic(mic);
      ws?.close();
      ctx?.close();
      set(bar);
    },
  };
}
