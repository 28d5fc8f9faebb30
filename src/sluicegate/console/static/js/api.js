// The one way the console talks to the gateway: fetch with the signed-in key as a
// Bearer header (no cookie: nothing for another site to ride on), errors turned into
// ApiError with the API's own code (when it has a word for one) and message.

const KEY = "sluicegate.apiKey";

export const session = {
  get key() {
    return sessionStorage.getItem(KEY);
  },
  signIn(key) {
    sessionStorage.setItem(KEY, key);
  },
  signOut() {
    sessionStorage.removeItem(KEY);
  },
};

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    // A word such as "unknown_topic", or null: a numeric error_code (40401) only repeats
    // the status, and is not shown.
    this.code = code;
  }

  toString() {
    return this.code ? `${this.status} ${this.code}: ${this.message}` : `${this.status}: ${this.message}`;
  }
}

// The dialects name their error fields differently; the admin API's are tried first.
async function errorOf(response) {
  const text = await response.text();
  let code = null;
  let message = text.trim() || response.statusText;
  try {
    const body = JSON.parse(text);
    for (const candidate of [body.error, body.error_code]) {
      if (typeof candidate === "string" && candidate && !/^\d+$/.test(candidate)) {
        code = candidate;
        break;
      }
    }
    message = body.message ?? body.error_message ?? body.title ?? message;
  } catch {
    // not JSON: the text is the message
  }
  return new ApiError(response.status, code, String(message));
}

function urlOf(path, query) {
  const url = new URL(path, location.origin);
  for (const [name, value] of Object.entries(query ?? {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
  }
  return url;
}

// Raw fetch with credentials; the caller reads the body. Throws ApiError on a non-2xx.
export async function request(path, options = {}) {
  const { method = "GET", query, json, body, headers = {}, signal, key = session.key } = options;
  const sent = new Headers(headers);
  if (key) sent.set("Authorization", `Bearer ${key}`);
  let payload = body;
  if (json !== undefined) {
    sent.set("Content-Type", "application/json");
    payload = JSON.stringify(json);
  }
  const response = await fetch(urlOf(path, query), {
    method,
    headers: sent,
    body: payload,
    signal,
    credentials: "omit",
    cache: "no-store",
  });
  if (!response.ok) {
    const error = await errorOf(response);
    if (response.status === 401 && key && key === session.key) {
      // The key stopped working (revoked, expired): the shell signs out and says why.
      window.dispatchEvent(new CustomEvent("sluicegate:unauthenticated", { detail: error }));
    }
    throw error;
  }
  return response;
}

// JSON (or null for an empty answer).
export async function api(path, options = {}) {
  const response = await request(path, options);
  if (response.status === 204) return null;
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

// One page of an admin list: its items and the cursor of the next page, if any.
export async function apiPage(path, options = {}) {
  const response = await request(path, options);
  const items = await response.json();
  const link = response.headers.get("Link") ?? "";
  const match = /<([^>]*)>;\s*rel="next"/.exec(link);
  const next = match ? new URL(match[1], location.origin).searchParams.get("cursor") : null;
  return { items, next };
}
