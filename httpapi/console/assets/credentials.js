// credentials.js: staff and seller credentials (/v1/admin/credentials).
// A new credential's token is shown once, as the server answers it once.

import { api, problemText } from "./api.js";
import { h, field, input, select, button, table, status, say, clearErrors, showError, when } from "./dom.js";

export async function render(main) {
  const list = h("div", { id: "credential-list" });
  const msg = status();
  const f = {
    name: input({ name: "name", required: true }),
    role: select(["staff", "seller"], { name: "role" }),
    sales: input({ name: "sales", placeholder: "demo, demo-2" }),
    expires_at: input({ name: "expires_at", placeholder: "RFC 3339, optional" }),
  };
  const shown = h("div", { id: "new-token", "aria-live": "polite" });
  const form = h("form", { class: "panel", id: "credential-form", novalidate: true }, h("h3", { text: "New credential" }),
    h("div", { class: "row" }, field("Name", f.name), field("Role", f.role), field("Sales (comma-separated)", f.sales), field("Expires at", f.expires_at)),
    h("button", { type: "submit", text: "Create credential" }), msg, shown);
  main.append(h("h2", { text: "Credentials" }), form, list);

  const refresh = async () => {
    const r = await api("GET", "/v1/admin/credentials");
    if (!r.ok) {
      list.replaceChildren(h("p", { class: "status bad", text: problemText(r) }));
      return;
    }
    list.replaceChildren(table("Credentials", [
      ["Id", (c) => c.id], ["Name", (c) => c.name], ["Role", (c) => c.role], ["Sales", (c) => (c.sales || []).join(", ")],
      ["Status", (c) => c.status], ["Expires", (c) => when(c.expires_at) || "never"],
      ["", (c) => c.status === "active"
        ? button("Revoke", async () => {
            const res = await api("DELETE", "/v1/admin/credentials/" + encodeURIComponent(c.id));
            say(msg, res.ok ? c.id + " revoked" : problemText(res), res.ok ? "good" : "bad");
            refresh();
          }, { class: "danger", "aria-label": "Revoke " + c.id })
        : ""],
    ], r.data.credentials || []));
  };
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearErrors(form);
    shown.replaceChildren();
    const body = { name: f.name.value.trim(), role: f.role.value, sales: f.sales.value.split(",").map((s) => s.trim()).filter(Boolean) };
    if (f.expires_at.value.trim()) body.expires_at = f.expires_at.value.trim();
    const r = await api("POST", "/v1/admin/credentials", { body });
    if (!r.ok) {
      const m = /^(\w+)/.exec(r.problem?.detail || "");
      if (m && f[m[1]]) showError(f[m[1]], problemText(r));
      else say(msg, problemText(r), "bad");
      return;
    }
    say(msg, r.data.id + " created", "good");
    const out = h("output", { class: "token", id: "credential-token", text: r.data.token });
    shown.replaceChildren(h("p", { text: "The token, shown this once: give it to its holder now." }), out,
      button("Copy", () => navigator.clipboard?.writeText(r.data.token), { class: "secondary", "aria-label": "Copy the token" }));
    form.reset();
    refresh();
  });
  refresh();
}
