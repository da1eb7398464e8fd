// app.js: login, the role the token has, the screens that role may use,
// and the hash router (#live, #sales, ...). Each screen is a module with
// render(main, app) that may return a function stopping its timers.

import { api, token, setToken, problemText } from "./api.js";
import { h, field, input, button, status, say } from "./dom.js";

// screens per role: only what the role may do is offered.
const screens = {
  live: { title: "Live", module: "./live.js", roles: ["admin", "staff", "seller", "ops"] },
  sales: { title: "Sales", module: "./sales.js", roles: ["admin"] },
  orders: { title: "Orders", module: "./orders.js", roles: ["admin"] },
  refunds: { title: "Refunds", module: "./refunds.js", roles: ["admin"] },
  coupons: { title: "Coupons", module: "./coupons.js", roles: ["admin"] },
  credentials: { title: "Credentials", module: "./credentials.js", roles: ["admin"] },
  exports: { title: "Exports", module: "./exports.js", roles: ["admin"] },
  audit: { title: "Audit", module: "./audit.js", roles: ["admin"] },
  door: { title: "Door", module: "./door.js", roles: ["admin", "staff"] },
  box: { title: "Box office", module: "./box.js", roles: ["seller"] },
};
const firstScreen = { admin: "live", staff: "door", seller: "box", ops: "live" };

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const who = document.getElementById("who");
let stop = null;
let saleCache = null;

const app = {
  role: null,
  lastSale: null,
  // listSales: the admin's list (with every sale), or the public catalogue.
  async listSales(fresh = false) {
    if (saleCache && !fresh) return saleCache;
    const r = app.role === "admin" ? await api("GET", "/v1/admin/sales") : await api("GET", "/v1/sales?limit=200", { auth: false });
    saleCache = r.ok ? { ok: true, list: r.data.sales } : { ok: false, text: problemText(r), list: [] };
    return saleCache;
  },
  saleConfig(id) {
    return saleCache?.list?.find((s) => s.id === id);
  },
  forgetSales() {
    saleCache = null;
  },
};

// roleOf asks the server what the token may do, with reads that change
// nothing: 401 means the token is not valid at all.
async function roleOf(t) {
  if (t === "") return { role: "ops" };
  if (t.startsWith("stf_") || t.startsWith("sel_")) {
    const probe = t.startsWith("stf_") ? "/v1/sales/-/revocations" : "/v1/orders/-";
    const r = await api("GET", probe);
    if (r.status === 401) return { error: problemText(r) };
    return { role: t.startsWith("stf_") ? "staff" : "seller" };
  }
  const r = await api("GET", "/v1/admin/sales");
  if (r.ok) return { role: "admin" };
  if (r.status === 401) return { error: problemText(r) };
  const door = await api("GET", "/v1/sales/-/revocations");
  if (door.status !== 401 && door.status !== 403) return { role: "staff" }; // the door token
  return { error: "this token is a buyer's: the console is for admins, door staff and sellers" };
}

function loginScreen(message) {
  stopScreen();
  nav.hidden = true;
  who.hidden = true;
  const tok = input({ type: "password", name: "token", autocomplete: "current-password", required: true });
  const msg = status();
  const form = h("form", { id: "login", class: "panel", novalidate: true },
    h("h2", { text: "Log in" }),
    h("p", { text: "The admin token (secrets.json), the door token, or a staff (stf_…) or seller (sel_…) credential." }),
    field("Token", tok),
    h("div", { class: "row" },
      h("button", { type: "submit", text: "Log in" }),
      button("Live screen without a token", () => login(""), { class: "secondary" })),
    msg);
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    login(tok.value.trim());
  });
  main.replaceChildren(form);
  if (message) say(msg, message, "bad");
  tok.focus();

  async function login(t) {
    setToken(t);
    say(msg, "checking…");
    const r = await roleOf(t);
    if (r.error) {
      setToken("");
      say(msg, r.error, "bad");
      return;
    }
    start(r.role);
  }
}

function start(role) {
  app.role = role;
  app.forgetSales();
  sessionStorage.setItem("onsale.console.role", role);
  document.getElementById("who-role").textContent = { admin: "admin", staff: "door staff", seller: "seller", ops: "ops (read only)" }[role];
  who.hidden = false;
  nav.replaceChildren(...Object.entries(screens)
    .filter(([, s]) => s.roles.includes(role))
    .map(([id, s]) => h("a", { href: "#" + id, id: "nav-" + id, text: s.title })));
  nav.hidden = false;
  const want = location.hash.slice(1);
  if (screens[want]?.roles.includes(role)) route();
  else location.hash = "#" + firstScreen[role];
}

function stopScreen() {
  if (stop) stop();
  stop = null;
}

async function route() {
  if (!app.role) return;
  let id = location.hash.slice(1);
  if (!screens[id]?.roles.includes(app.role)) id = firstScreen[app.role];
  stopScreen();
  for (const a of nav.querySelectorAll("a")) {
    if (a.id === "nav-" + id) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const section = h("section", { id: "screen-" + id, class: "screen", "aria-label": screens[id].title });
  main.replaceChildren(section);
  document.title = screens[id].title + " · onsale console";
  const mod = await import(screens[id].module);
  if (main.firstChild !== section) return; // another screen was chosen meanwhile
  stop = (await mod.render(section, app)) || null;
  section.dataset.ready = "true";
}

document.getElementById("logout").addEventListener("click", () => {
  setToken("");
  sessionStorage.removeItem("onsale.console.role");
  app.role = null;
  history.replaceState(null, "", location.pathname);
  loginScreen("");
});
window.addEventListener("hashchange", route);

// A reload keeps the session: the token and role are in sessionStorage.
const savedRole = sessionStorage.getItem("onsale.console.role");
if (savedRole && (token() || savedRole === "ops")) start(savedRole);
else loginScreen("");
