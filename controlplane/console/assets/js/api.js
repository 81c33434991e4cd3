// The console's one door to the server: the public HTTP API. The browser
// sends the HttpOnly session cookie by itself; this adds the session's CSRF
// token to every request that may change something, and turns the API's
// error envelope into an APIError carrying the server's own message.

let csrf = '';
let onSignedOut = () => {};

export function setCSRF(token) { csrf = token || ''; }

// whenSignedOut registers what to do when the session has ended (a 401).
export function whenSignedOut(fn) { onSignedOut = fn; }

export class APIError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// query builds "?a=1&b=2" from an object, leaving out empty values.
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? '?' + s : '';
}

// api sends one request. token, when given, is sent as a bearer instead
// of the cookie (signing in). It resolves with the decoded JSON body (null
// for 204) and rejects with an APIError.
export async function api(method, path, { body, token } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (token) {
    headers.Authorization = 'Bearer ' + token;
  } else if (method !== 'GET' && method !== 'HEAD' && csrf) {
    headers['X-CSRF-Token'] = csrf;
  }
  let res;
  try {
    res = await fetch(path, {
      method, headers, credentials: 'same-origin', cache: 'no-store',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new APIError(0, 'network', 'The control plane cannot be reached (' + e.message + ').');
  }
  if (res.status === 204) return null;
  const text = await res.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!res.ok) {
    const e = data && data.error;
    const err = new APIError(res.status, (e && e.code) || 'http_' + res.status,
      (e && e.message) || `${res.status} ${res.statusText}`.trim());
    if (res.status === 401 && !token) onSignedOut(err);
    throw err;
  }
  return data;
}
