// Unit tests of the voice pieces that need no browser: the 16 kHz downsampler the
// microphone worklet runs, s16le conversion and the playback clock. node --test
import test from 'node:test';
import assert from 'node:assert/strict';
import { Downsampler, toS16, rms } from '../../web/voice-worklet.js';
import { pcmToFloat, Schedule, voiceErrorText } from '../../web/voice.js';

function sine(rate, hz, seconds, amplitude = 0.5) {
  const x = new Float32Array(Math.round(rate * seconds));
  for (let i = 0; i < x.length; i++) x[i] = amplitude * Math.sin(2 * Math.PI * hz * i / rate);
  return x;
}

/** Runs input through in uneven chunks, as the audio thread's 128-sample quanta and restarts would. */
function downsample(input, rate, chunks = [128, 128, 37, 500, 1]) {
  const d = new Downsampler(rate);
  const out = [];
  for (let i = 0, c = 0; i < input.length; c++) {
    const n = chunks[c % chunks.length];
    out.push(...d.process(input.subarray(i, i + n)));
    i += n;
  }
  return Float32Array.from(out);
}

/** Frequency from rising zero crossings (interpolated), over the steady middle. */
function frequency(x, rate) {
  const crossings = [];
  for (let i = 1; i < x.length; i++) {
    if (x[i - 1] < 0 && x[i] >= 0) crossings.push(i - 1 + x[i - 1] / (x[i - 1] - x[i]));
  }
  const mid = crossings.slice(5, -5);
  return (rate * (mid.length - 1)) / (mid[mid.length - 1] - mid[0]);
}

for (const rate of [48000, 44100, 96000, 16000]) {
  test(`a 1 kHz tone at ${rate} Hz comes out as 1 kHz at 16 kHz, same level and length`, () => {
    const out = downsample(sine(rate, 1000, 1), rate);
    assert.ok(Math.abs(out.length - 16000) <= 40, `length ${out.length}`);
    const f = frequency(out, 16000);
    assert.ok(Math.abs(f - 1000) < 1, `frequency ${f}`);
    const level = rms(out.subarray(200, -200));
    assert.ok(Math.abs(level - 0.5 / Math.SQRT2) < 0.01, `rms ${level}`);
  });
}

test('tones above 8 kHz are filtered out instead of folding back into speech (no aliasing)', () => {
  for (const [rate, hz] of [[48000, 8500], [48000, 12000], [44100, 8600], [44100, 15000], [96000, 30000]]) {
    const out = downsample(sine(rate, hz, 0.5), rate);
    const level = rms(out.subarray(200, -200)) / (0.5 / Math.SQRT2);
    assert.ok(level < 0.01, `${hz} Hz at ${rate} Hz keeps ${(20 * Math.log10(level)).toFixed(1)} dB`);
  }
  // Dropping two samples of three would have kept all of 12 kHz (as 4 kHz):
  const naive = sine(48000, 12000, 0.5).filter((_, i) => i % 3 === 0);
  assert.ok(rms(naive) > 0.3);
});

test('speech-band tones pass nearly untouched', () => {
  for (const hz of [100, 3000, 6000]) {
    const out = downsample(sine(48000, hz, 0.5), 48000);
    const gain = rms(out.subarray(400, -400)) / (0.5 / Math.SQRT2);
    assert.ok(Math.abs(gain - 1) < 0.02, `${hz} Hz gain ${gain}`);
  }
});

test('chunking does not change the output', () => {
  const input = sine(48000, 440, 0.3);
  const a = downsample(input, 48000, [128]);
  const b = downsample(input, 48000, [1, 7, 4000, 3]);
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) < 1e-6);
});

test('s16le conversion clips and is little-endian; decoding keeps an odd trailing byte for later', () => {
  const bytes = new Uint8Array(toS16(Float32Array.from([0, 1, -1, 2, 0.5])));
  assert.deepEqual([...bytes.slice(0, 8)], [0, 0, 0xff, 0x7f, 0x01, 0x80, 0xff, 0x7f]);
  const first = pcmToFloat(bytes.slice(0, 5), null);
  assert.equal(first.samples.length, 2);
  assert.ok(Math.abs(first.samples[1] - 32767 / 32768) < 1e-6);
  const second = pcmToFloat(bytes.slice(5), first.rest);
  assert.equal(second.samples.length, 3);
  assert.ok(Math.abs(second.samples[0] + 32767 / 32768) < 1e-6);
  assert.ok(Math.abs(second.samples[2] - 16384 / 32768) < 1e-3);
  assert.equal(second.rest, null);
});

test('playback is scheduled back to back, and restarts ahead of the clock after a gap', () => {
  const s = new Schedule(0.05);
  assert.equal(s.next(1.0, 0.5), 1.05);
  assert.equal(s.next(1.1, 0.25), 1.55);
  assert.equal(s.next(1.2, 0.25), 1.8);
  assert.equal(s.end, 2.05);
  assert.equal(s.next(3.0, 0.1), 3.05, 'late audio starts just ahead of now, not in the past');
  s.reset();
  assert.equal(s.next(4.0, 0.1), 4.05);
});

test('server error codes and microphone failures read as plain advice', () => {
  assert.match(voiceErrorText({ code: 'model_not_ready' }), /speech/i);
  assert.match(voiceErrorText({ code: 'overloaded' }), /busy/i);
  assert.match(voiceErrorText({ code: 'audio_too_long' }), /too long/i);
  assert.match(voiceErrorText({ name: 'NotAllowedError' }), /permission/i);
  assert.match(voiceErrorText({ name: 'NotFoundError' }), /no microphone/i);
  assert.match(voiceErrorText({ code: 'insecure' }), /localhost.*HTTPS|HTTPS.*localhost/);
  assert.equal(voiceErrorText({ code: 'strange', message: 'Something odd.' }), 'Something odd.');
});
