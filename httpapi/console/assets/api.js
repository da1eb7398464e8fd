// api.js: the one way the console talks to onsale. The token lives in
// sessionStorage (gone when the tab closes), travels only in the
// Authorization header, and never in a URL or a cookie.

const tokenKey = "onsale.console.token";

export function token() {
  return sessionStorage.getItem(tokenKey) || "";
}

export function setToken(t) {
  if (t) sessionStorage.setItem(tokenKey, t);
  else sessionStorage.removeItem(tokenKey);
}

// api sends one request and reads its answer. It never throws for an HTTP
// status: the caller looks at res.ok, res.status and res.problem (the
// application/problem+json body: code, detail). A network failure comes
// back as status 0 with a problem that says so.
export async function api(method, path, { body, headers = {}, as = "json", auth = true } = {}) {
  const h = { ...headers };
  if (auth && token()) h["Authorization"] = "Bearer " + token();
  let payload;
  if (body !== undefined) {
    payload = typeof body === "string" ? body : JSON.stringify(body);
    h["Content-Type"] = "application/json";
  }
  let r;
  try {
    r = await fetch(path, { method, headers: h, body: payload, credentials: "omit", cache: "no-store" });
  } catch (e) {
    return { ok: false, status: 0, problem: { code: "network", detail: "the server did not answer: " + e.message } };
  }
  const res = { ok: r.ok, status: r.status, headers: r.headers };
  const type = r.headers.get("Content-Type") || "";
  if (type.startsWith("application/problem+json")) {
    res.problem = await r.json().catch(() => ({ code: "internal", detail: "unreadable problem" }));
  } else if (as === "blob") {
    res.data = await r.blob();
  } else if (as === "text" || !type.startsWith("application/json")) {
    res.data = await r.text();
  } else {
    res.data = await r.json().catch(() => null);
  }
  if (!r.ok && !res.problem) res.problem = { code: "http_" + r.status, detail: "HTTP " + r.status };
  return res;
}

// notAvailable is true for an answer that says the route does not exist on
// this server (a feature this build does not have).
export function notAvailable(res) {
  return res.status === 404 && res.problem && res.problem.code === "not_found";
}

// problemText is a problem as one line for the user.
export function problemText(res) {
  const p = res.problem || {};
  return (p.code ? p.code + ": " : "") + (p.detail || p.title || "HTTP " + res.status);
}

// newKey is a fresh Idempotency-Key.
export function newKey(prefix) {
  const b = new Uint8Array(12);
  crypto.getRandomValues(b);
  return prefix + "-" + Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}
