// The API as the page calls it: relative URLs (same origin, as the server's check of the
// Origin header wants), the session cookie sent by fetch's defaults. A 401 shows the login
// form, and the call is tried again once a token was accepted.

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

let loggingIn = null;

/** fetch(path), logging in first whenever the server answers 401. */
export async function api(path, options = {}) {
  for (;;) {
    const response = await fetch(path, options);
    if (response.status !== 401) return response;
    await login();
  }
}

/** The JSON a call answers; an error answer throws an ApiError with its problem. */
export async function json(path, options) {
  const response = await api(path, options);
  if (!response.ok) throw await failure(response);
  return response.status === 204 ? null : response.json();
}

/** A state-changing call with a JSON body (or none). */
export function send(method, path, body, headers = {}) {
  const options = { method, headers: { ...headers } };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  return api(path, options);
}

export async function failure(response) {
  let problem = {};
  try {
    problem = await response.json();
  } catch {
    problem = { detail: `${response.status} ${response.statusText}` };
  }
  return new ApiError(response.status, problem);
}

/** Who this is: `{role, auth}`; a server without logins (404) lets everyone do everything. */
export async function whoami() {
  const response = await api("/api/v1/whoami");
  if (response.status === 404) return { role: null, auth: false };
  if (!response.ok) throw await failure(response);
  return response.json();
}

export async function logout() {
  await fetch("/api/v1/logout", { method: "POST" });
  location.reload();
}

/** Shows the login form until a token is accepted (one form for all the calls waiting). */
function login() {
  loggingIn ??= new Promise((resolve) => {
    const dialog = document.getElementById("login");
    const form = document.getElementById("login-form");
    const error = document.getElementById("login-error");
    error.textContent = "";
    form.onsubmit = async (event) => {
      event.preventDefault();
      const token = form.elements.token.value;
      const response = await fetch("/api/v1/login", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ token }),
      });
      if (response.ok) {
        form.reset();
        dialog.close();
        loggingIn = null;
        resolve();
      } else {
        error.textContent = response.status === 401 ? "This token is not valid." : (await failure(response)).message;
      }
    };
    if (!dialog.open) dialog.showModal();
  });
  return loggingIn;
}

/**
 * Follows a Server-Sent Events stream (after the seq `after`, or null): `onEvent(data, event)` for each message, `onEnd(data)`
 * on an `end` event. The browser reconnects by itself after a dropped connection (with
 * Last-Event-ID); a refused one (401 after the session expired) is asked again after a
 * login. Returns a function that stops it.
 */
export function follow(path, after, onEvent, onEnd) {
  let source = null;
  let stopped = false;
  let last = after;
  let pause = 1000;
  const open = () => {
    const url = last === null ? path : `${path}?after=${last}`;
    source = new EventSource(url);
    source.onopen = () => (pause = 1000);
    source.onmessage = (event) => {
      if (event.lastEventId) last = event.lastEventId;
      onEvent(JSON.parse(event.data), event);
    };
    source.addEventListener("end", (event) => {
      source.close();
      stopped = true;
      onEnd?.(JSON.parse(event.data));
    });
    source.onerror = async () => {
      if (source.readyState !== EventSource.CLOSED || stopped) return;
      await whoami().catch(() => {});
      setTimeout(() => stopped || open(), pause);
      pause = Math.min(30000, pause * 2); // a stream refused again and again is asked less often
    };
  };
  open();
  return () => {
    stopped = true;
    source?.close();
  };
}

/** Text made safe to put in HTML. */
export function esc(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A value as a person reads it: strings bare, the rest as JSON. */
export function shown(value) {
  if (value === undefined || value === null) return "";
  return typeof value === "string" ? value : JSON.stringify(value, null, 2);
}
