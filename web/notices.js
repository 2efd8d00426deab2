// Notices from the server while the page is open (a timer or reminder that rang, what a
// workflow's notify step says, an announcement sent to the box over MQTT):
// `GET /api/events` as server-sent events. Each one is shown as a toast with a chime, as a
// desktop notification when the browser already allows them, and announced on `window`
// as `hearth:notice` so the chat can show it in the open conversation.

import { h, set } from './dom.js';

let source = null;
const seen = new Set();

/** Starts listening unless it does already; `stop` ends it (on logging out). */
export function listen() {
  if (source && source.readyState !== EventSource.CLOSED) return;
  source = new EventSource('/api/events');
  source.addEventListener('reminder', (e) => {
    let notice;
    try { notice = JSON.parse(e.data); } catch { return; }
    // After a reconnect a notice may come again: it is told once.
    if (seen.has(notice.reminder?.id)) return;
    seen.add(notice.reminder?.id);
    toast(notice.text);
    chime();
    if (window.Notification?.permission === 'granted') {
      try { new Notification('Hearth', { body: notice.text }); } catch { /* not in this context */ }
    }
    window.dispatchEvent(new CustomEvent('hearth:notice', { detail: notice }));
  });
  source.addEventListener('workflow', onWorkflow);
  source.addEventListener('announcement', onAnnouncement);
}

/** An announcement for everyone (the MQTT `announce` command). */
function onAnnouncement(e) {
  let told;
  try { told = JSON.parse(e.data); } catch { return; }
  toast(told.text, '📢');
  chime();
}

/** What a workflow's `notify` step says to its owner. */
function onWorkflow(e) {
  let told;
  try { told = JSON.parse(e.data); } catch { return; }
  toast(`${told.workflow}: ${told.text}`);
  chime();
}

export function stop() {
  source?.close();
  source = null;
}

function toasts() {
  let box = document.getElementById('toasts');
  if (!box) {
    box = h('div', { id: 'toasts', class: 'toasts', role: 'status', 'aria-live': 'polite' });
    document.body.append(box);
  }
  return box;
}

/** A notice that stays until dismissed: a reminder must not slip by unseen. */
function toast(text, icon = '⏰') {
  const item = h('div', { class: 'toast' });
  set(item,
    h('span', { text: `${icon} ${text}` }),
    h('button', { type: 'button', class: 'small', 'aria-label': 'Dismiss', text: '×', onclick: () => item.remove() }));
  toasts().append(item);
}

/** Two soft beeps. Browsers may keep audio off until the page was used; then it is silent. */
function chime() {
  try {
    const ctx = new AudioContext();
    [0, 0.35].forEach((at) => {
      const tone = ctx.createOscillator();
      const gain = ctx.createGain();
      tone.frequency.value = 880;
      gain.gain.setValueAtTime(0.0001, ctx.currentTime + at);
      gain.gain.exponentialRampToValueAtTime(0.2, ctx.currentTime + at + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, ctx.currentTime + at + 0.3);
      tone.connect(gain).connect(ctx.destination);
      tone.start(ctx.currentTime + at);
      tone.stop(ctx.currentTime + at + 0.32);
    });
    setTimeout(() => ctx.close(), 1000);
  } catch { /* no audio here */ }
}
