// Microphone capture on the audio thread: an AudioWorklet that low-passes and
// resamples whatever rate the browser records at to 16 kHz mono, and posts s16le
// frames (40 ms) with their level to the page. Loaded with audioWorklet.addModule()
// from our own origin (CSP script-src 'self'); the exports are for the unit tests.

/** The sample rate the server's speech recognizer takes. */
export const SPEECH_RATE = 16000;

/**
 * Streaming band-limited resampler (windowed sinc, Blackman window, 16 zero crossings).
 * The cutoff (-6 dB) sits at 90 % of the lower Nyquist frequency: going down to 16 kHz,
 * speech up to 6.5 kHz passes within 0.5 dB and what lies above 8.5 kHz, which would
 * fold back into the speech band, is some 75 dB down. The kernel is tabulated for 64
 * sub-sample phases; each phase sums to 1 (no DC gain change).
 */
export class Downsampler {
  constructor(inRate, outRate = SPEECH_RATE, zeros = 16, phases = 64) {
    this.step = inRate / outRate;
    const fc = 0.45 * Math.min(1, outRate / inRate); // cycles per input sample
    const half = Math.ceil(zeros / (2 * fc));
    const taps = 2 * half;
    this.half = half;
    this.taps = taps;
    this.phases = phases;
    this.table = new Float32Array((phases + 1) * taps);
    for (let p = 0; p <= phases; p++) {
      const row = this.table.subarray(p * taps, (p + 1) * taps);
      let sum = 0;
      for (let j = 0; j < taps; j++) {
        const d = j - half + 1 - p / phases; // input sample minus output time
        const x = 2 * fc * d;
        const sinc = x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x);
        const c = Math.PI * d / half;
        const w = Math.abs(d) >= half ? 0 : 0.42 + 0.5 * Math.cos(c) + 0.08 * Math.cos(2 * c);
        row[j] = sinc * w;
        sum += row[j];
      }
      for (let j = 0; j < taps; j++) row[j] /= sum;
    }
    // Input kept for the kernel; starts with silence before the first sample.
    this.buf = new Float32Array(4096);
    this.len = half - 1;
    this.base = -(half - 1); // index in the input stream of buf[0]
    this.n = 0; // outputs produced so far
    this.out = new Float32Array(1024);
  }

  /** Feeds input samples; returns the new output samples (a view, valid until the next call). */
  process(input) {
    if (this.len + input.length > this.buf.length) {
      const bigger = new Float32Array(2 * (this.len + input.length));
      bigger.set(this.buf.subarray(0, this.len));
      this.buf = bigger;
    }
    this.buf.set(input, this.len);
    this.len += input.length;
    const { buf, table, taps, half, phases, step } = this;
    const most = Math.ceil(this.len / step) + 1;
    if (this.out.length < most) this.out = new Float32Array(2 * most);
    let count = 0;
    for (;;) {
      const t = this.n * step;
      const i0 = Math.floor(t);
      if (i0 + half >= this.base + this.len) break;
      const row = Math.round((t - i0) * phases) * taps;
      const at = i0 - half + 1 - this.base;
      let acc = 0;
      for (let j = 0; j < taps; j++) acc += table[row + j] * buf[at + j];
      this.out[count++] = acc;
      this.n++;
    }
    const drop = Math.floor(this.n * step) - half + 1 - this.base;
    if (drop > 0) {
      buf.copyWithin(0, drop, this.len);
      this.len -= drop;
      this.base += drop;
    }
    return this.out.subarray(0, count);
  }
}

/** Float samples to s16le bytes (clipped). */
export function toS16(samples) {
  const bytes = new ArrayBuffer(samples.length * 2);
  const view = new DataView(bytes);
  for (let i = 0; i < samples.length; i++) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    view.setInt16(2 * i, Math.round(s * 32767), true);
  }
  return bytes;
}

/** Root mean square of samples, 0..1. */
export function rms(samples) {
  let sum = 0;
  for (let i = 0; i < samples.length; i++) sum += samples[i] * samples[i];
  return samples.length ? Math.sqrt(sum / samples.length) : 0;
}

if (typeof registerProcessor === 'function') {
  const FRAME = SPEECH_RATE / 25; // 40 ms

  // Posts {pcm: ArrayBuffer, level} per frame; on 'flush' posts the partial frame and
  // {flushed: true}, then stops.
  registerProcessor('hearth-capture', class extends AudioWorkletProcessor {
    constructor() {
      super();
      this.down = new Downsampler(sampleRate);
      this.frame = new Float32Array(FRAME);
      this.fill = 0;
      this.live = true;
      this.port.onmessage = (e) => {
        if (e.data !== 'flush' || !this.live) return;
        this.send();
        this.live = false;
        this.port.postMessage({ flushed: true });
      };
    }

    send() {
      if (!this.fill) return;
      const samples = this.frame.subarray(0, this.fill);
      const pcm = toS16(samples);
      this.port.postMessage({ pcm, level: rms(samples) }, [pcm]);
      this.fill = 0;
    }

    process(inputs) {
      if (!this.live) return false;
      const channels = inputs[0];
      if (channels && channels.length) {
        let mono = channels[0];
        if (channels.length > 1) {
          mono = new Float32Array(mono.length);
          for (const ch of channels) for (let i = 0; i < ch.length; i++) mono[i] += ch[i] / channels.length;
        }
        const out = this.down.process(mono);
        for (let i = 0; i < out.length; i++) {
          this.frame[this.fill++] = out[i];
          if (this.fill === FRAME) this.send();
        }
      }
      return true;
    }
  });
}
