// The management API, called with the session key kept in sessionStorage (see docs/ui.md).

const KEY = 'llmgate.session';

export const session = {
  get() {
    try { return JSON.parse(sessionStorage.getItem(KEY) || 'null'); } catch { return null; }
  },
  set(s) { sessionStorage.setItem(KEY, JSON.stringify(s)); },
  clear() { sessionStorage.removeItem(KEY); },
};

/** An error answer: its status and the OpenAI error JSON's message. */
export class ApiError extends Error {
  constructor(status, message, param) {
    super(message);
    this.status = status;
    this.param = param;
  }
}

/** Calls `path` (GET without a body, POST with one); the parsed JSON, or throws ApiError. */
export async function api(path, body, { method } = {}) {
  const s = session.get();
  const headers = {};
  if (s && s.key) headers.Authorization = `Bearer ${s.key}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let resp;
  try {
    resp = await fetch(path, {
      method: method || (body === undefined ? 'GET' : 'POST'),
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
    });
  } catch (e) {
    throw new ApiError(0, `The server cannot be reached (${e.message}).`);
  }
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!resp.ok) {
    const err = (data && data.error) || {};
    const msg = typeof err === 'string' ? err : err.message || (data && (data.detail || data.message)) || `${resp.status} ${resp.statusText}`;
    if (resp.status === 401 && path !== '/v2/login') window.dispatchEvent(new CustomEvent('llmgate:unauthorized'));
    throw new ApiError(resp.status, String(msg), err.param);
  }
  return data;
}

/** Like api(), but a 404 (the server has no such route) is `null` instead of an error. */
export async function optional(path, body) {
  try {
    return await api(path, body);
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) return null;
    throw e;
  }
}

/** Signs in through /v2/login; stores and returns the session. */
export async function signIn(username, password) {
  const r = await api('/v2/login', { username, password });
  const s = { key: r.key, user_id: r.user_id, user_role: r.user_role, user_email: r.user_email, expires: r.expires };
  session.set(s);
  return s;
}

/** Deletes the session's key on the server, then forgets it here. */
export async function signOut() {
  try { await api('/logout', {}); } catch { /* signed out here anyway */ }
  session.clear();
}

/** Moves a form sign-in's `token` cookie (LiteLLM's /login hand-off) into the session. */
export async function adoptCookie() {
  const m = document.cookie.match(/(?:^|;\s*)token=([^;]+)/);
  if (!m) return false;
  document.cookie = 'token=; Path=/ui; Max-Age=0; SameSite=Strict';
  const key = decodeURIComponent(m[1]);
  session.set({ key });
  try {
    const who = await api('/key/info');
    const info = who.info || who;
    session.set({ key, user_id: info.user_id, user_role: info.user_id === 'default_user_id' ? 'proxy_admin' : undefined });
  } catch { /* kept; the pages show what the key may see */ }
  return true;
}
