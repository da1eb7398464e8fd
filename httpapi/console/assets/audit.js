// audit.js: the audit trail (GET /v1/admin/audit), newest first, with its
// filters and pages.

import { api, problemText } from "./api.js";
import { h, field, input, button, table, status, say, when } from "./dom.js";

export async function render(main) {
  const f = {
    actor: input({ name: "actor", placeholder: "admin, door, cred_…" }),
    action: input({ name: "action", placeholder: "admin_refund" }),
    target: input({ name: "target" }),
    from: input({ name: "from", placeholder: "RFC 3339" }),
    to: input({ name: "to", placeholder: "RFC 3339" }),
  };
  const msg = status();
  const out = h("div", { id: "audit-entries" });
  const more = button("Older entries", () => load(true), { class: "secondary", hidden: true });
  const form = h("form", { class: "panel", id: "audit-form", novalidate: true },
    h("div", { class: "row" }, field("Actor", f.actor), field("Action", f.action), field("Target", f.target),
      field("From", f.from), field("To (excluded)", f.to), h("button", { type: "submit", text: "Show" })), msg);
  main.append(h("h2", { text: "Audit trail" }), form, out, more);
  let cursor = "", rows = [];

  async function load(next) {
    const q = new URLSearchParams({ limit: "100" });
    for (const [k, el] of Object.entries(f)) if (el.value.trim()) q.set(k, el.value.trim());
    if (next && cursor) q.set("cursor", cursor);
    const r = await api("GET", "/v1/admin/audit?" + q);
    if (!r.ok) {
      say(msg, problemText(r), "bad");
      return;
    }
    say(msg, "");
    rows = next ? rows.concat(r.data.entries) : r.data.entries;
    cursor = r.data.next_cursor || "";
    more.hidden = !cursor;
    out.replaceChildren(table("Audit entries", [
      ["When", (e) => when(e.at)], ["Actor", (e) => e.actor], ["Role", (e) => e.role], ["Action", (e) => e.action],
      ["Target", (e) => e.target], ["Outcome", (e) => e.outcome], ["From", (e) => e.remote_addr], ["Request", (e) => e.request_id],
    ], rows));
  }
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    load(false);
  });
  load(false);
}
