// The one place that talks to the server. Every request carries the anti-CSRF header
// the server requires from cookie sessions; errors become ApiError with the server's
// stable code, or code 'unreachable' when the box cannot be reached at all.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const UNREACHABLE = 'Cannot reach the Hearth server. Check that it is running and that this device is on its network.';
const expiredListeners = [];

/** Called when a request answers 401 (the session ended). */
export function onSessionExpired(fn) { expiredListeners.push(fn); }

function request(method, path, body, signal) {
  const headers = { 'X-Hearth-CSRF': '1', Accept: 'application/json' };
  const init = { method, headers, credentials: 'same-origin', signal, cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  return fetch(path, init).catch((e) => {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'unreachable', UNREACHABLE);
  });
}

async function failure(res, path) {
  let code = `http_${res.status}`;
  let message = `The server answered ${res.status} ${res.statusText}.`;
  try {
    const body = await res.json();
    code = body.error.code;
    message = body.error.message;
  } catch { /* not our JSON error shape */ }
  if (res.status === 401 && code === 'unauthorized' && !path.startsWith('/api/me')) {
    expiredListeners.forEach((fn) => fn());
  }
  return new ApiError(res.status, code, message);
}

/** A JSON request; resolves to the parsed body (or text for non-JSON answers). */
export async function api(method, path, body, signal) {
  const res = await request(method, path, body, signal);
  if (!res.ok) throw await failure(res, path);
  const type = res.headers.get('content-type') || '';
  return type.includes('json') ? res.json() : res.text();
}

/** POSTs JSON and yields server-sent events as {event, data} with data parsed as JSON. */
export async function* stream(path, body, signal) {
  const res = await request('POST', path, body, signal);
  if (!res.ok) throw await failure(res, path);
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event = parseEvent(block);
      if (event) yield event;
    }
  }
}

export function parseEvent(block) {
  let event = 'message';
  const data = [];
  for (const line of block.split('\n')) {
    if (line.startsWith('event:')) event = line.slice(6).trim();
    else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
  }
  if (!data.length) return null;
  const text = data.join('\n');
  try { return { event, data: JSON.parse(text) }; } catch { return { event, data: text }; }
}
