// sales.js: the admin's sales: the list with close and reopen, the form
// that creates or edits a sale (PUT /v1/admin/sales/{id}, the server's
// own validation, its problem shown next to the field it names), and a
// bulk load of a JSON file (POST /v1/admin/sales:load).

import { api, problemText } from "./api.js";
import { h, field, input, select, button, table, status, say, clearErrors, showError, when } from "./dom.js";

const categories = ["", "concert", "sport", "theatre", "exhibition", "transport", "other"];

export async function render(main, app) {
  const msg = status();
  const list = h("div", { id: "sales-list" });
  const formBox = h("div", { id: "sale-form-box" });
  main.append(h("h2", { text: "Sales" }),
    h("div", { class: "row" },
      button("New sale", () => drawForm(formBox, null, app, refresh), { id: "new-sale" })),
    formBox, msg, list, loadPanel(app, () => refresh()));

  async function refresh() {
    const r = await app.listSales(true);
    if (!r.ok) {
      say(msg, r.text, "bad");
      return;
    }
    list.replaceChildren(table("Every sale", [
      ["Id", (s) => s.id],
      ["Name", (s) => s.name],
      ["Status", (s) => s.status],
      ["Opens", (s) => when(s.opens_at)],
      ["Closes", (s) => when(s.closes_at)],
      ["Orders", (s) => String(s.order_count)],
      ["Tiers", (s) => s.tiers.map((t) => `${t.id} ${t.sold}/${t.stock}`).join(", ")],
      ["", (s) => h("div", { class: "row" },
        button("Edit", () => drawForm(formBox, s, app, refresh), { class: "secondary", "aria-label": "Edit " + s.id }),
        s.closed
          ? button("Reopen", () => act(s.id, "reopen"), { class: "secondary", "aria-label": "Reopen " + s.id })
          : button("Close", () => act(s.id, "close"), { class: "danger", "aria-label": "Close " + s.id }))],
    ], r.list));
  }
  async function act(id, verb) {
    const r = await api("POST", `/v1/admin/sales/${encodeURIComponent(id)}:${verb}`);
    say(msg, r.ok ? `${id}: ${verb === "close" ? "closed" : "reopened"}` : problemText(r), r.ok ? "good" : "bad");
    refresh();
  }
  await refresh();
}

// Server-computed members of a sale answer, dropped before a PUT: the rest
// (price phases, packages, real-name rules) is sent back as it was, so an
// edit through the form keeps what the form does not show.
const computedSale = ["status", "closed", "order_count"];
const computedTier = ["available", "held", "sold"];

function drawForm(box, sale, app, done) {
  const f = {
    id: input({ name: "id", required: true, pattern: "[A-Za-z0-9_-]{1,64}", value: sale?.id || "", readonly: !!sale }),
    name: input({ name: "name", required: true, value: sale?.name || "" }),
    currency: input({ name: "currency", required: true, value: sale?.currency || "EUR", size: 4 }),
    opens_at: input({ name: "opens_at", value: sale?.opens_at || isoIn(0), placeholder: "2026-12-24T18:00:00Z" }),
    closes_at: input({ name: "closes_at", value: sale?.closes_at || isoIn(30 * 864e5) }),
    hold_seconds: input({ name: "hold_seconds", type: "number", min: 1, value: sale?.hold_seconds ?? 600 }),
    per_user_limit: input({ name: "per_user_limit", type: "number", min: 1, value: sale?.per_user_limit ?? 4 }),
    event: input({ name: "event", value: sale?.event || "" }),
    venue: input({ name: "venue", value: sale?.venue || "" }),
    city: input({ name: "city", value: sale?.city || "" }),
    starts_at: input({ name: "starts_at", value: sale?.starts_at || "" }),
    category: select(categories, { name: "category" }),
    image_url: input({ name: "image_url", type: "url", value: sale?.image_url || "" }),
    description: h("textarea", { name: "description", rows: 2 }, sale?.description || ""),
  };
  f.category.value = sale?.category || "";
  const labels = {
    id: "Sale id", name: "Name", currency: "Currency", opens_at: "Opens at (RFC 3339)", closes_at: "Closes at (RFC 3339)",
    hold_seconds: "Hold (seconds)", per_user_limit: "Per-user limit", event: "Event", venue: "Venue", city: "City",
    starts_at: "Performance starts at", category: "Category", image_url: "Image URL (https)", description: "Description",
  };
  const tiersBox = h("div", { id: "tiers-box" });
  const tierRows = [];
  const addTier = (t) => {
    const i = tierRows.length;
    const row = {
      id: input({ name: `tiers.${i}.id`, value: t?.id || "", readonly: !!t?.id && !!sale }),
      name: input({ name: `tiers.${i}.name`, value: t?.name || "" }),
      price_cents: input({ name: `tiers.${i}.price_cents`, type: "number", min: 0, value: t?.price_cents ?? "" }),
      stock: input({ name: `tiers.${i}.stock`, type: "number", min: 0, value: t?.stock ?? "" }),
    };
    tierRows.push(row);
    tiersBox.append(h("div", { class: "tier-row" },
      field(`Tier ${i + 1} id`, row.id), field(`Tier ${i + 1} name`, row.name),
      field(`Tier ${i + 1} price (cents)`, row.price_cents), field(`Tier ${i + 1} stock`, row.stock)));
  };
  (sale?.tiers?.length ? sale.tiers : [null]).forEach(addTier);
  const msg = status();
  const top = h("p", { class: "err", id: "sale-form-err", role: "alert" });
  const form = h("form", { id: "sale-form", class: "panel", novalidate: true },
    h("h3", { text: sale ? "Edit sale " + sale.id : "New sale" }),
    top,
    h("div", { class: "row" }, ...["id", "name", "currency", "opens_at", "closes_at", "hold_seconds", "per_user_limit"].map((k) => field(labels[k], f[k], { name: k }))),
    h("fieldset", {}, h("legend", { text: "Tiers (can be added, never removed)" }), tiersBox,
      button("Add a tier", () => addTier(null), { class: "secondary" })),
    h("details", {}, h("summary", { text: "Catalogue (optional)" }),
      h("div", { class: "row" }, ...["event", "venue", "city", "starts_at", "category", "image_url", "description"].map((k) => field(labels[k], f[k], { name: k })))),
    h("div", { class: "row" },
      h("button", { type: "submit", id: "save-sale", text: sale ? "Save changes" : "Create sale" }),
      button("Cancel", () => box.replaceChildren(), { class: "secondary" })),
    msg);

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearErrors(form);
    top.textContent = "";
    const body = sale ? baseOf(sale) : {};
    for (const k of ["name", "currency", "opens_at", "closes_at", "event", "venue", "city", "starts_at", "category", "image_url", "description"]) {
      const v = f[k].value.trim();
      if (v !== "") body[k] = v;
      else delete body[k];
    }
    for (const k of ["hold_seconds", "per_user_limit"]) body[k] = num(f[k].value);
    const old = body.tiers || [];
    body.tiers = tierRows.map((r, i) => ({ ...(old[i] || {}), id: r.id.value.trim(), name: r.name.value.trim(),
      price_cents: num(r.price_cents.value), stock: num(r.stock.value) }));
    const id = f.id.value.trim();
    if (id === "") {
      showError(f.id, "a sale id is required");
      f.id.focus();
      return;
    }
    say(msg, "saving…");
    const r = await api("PUT", "/v1/admin/sales/" + encodeURIComponent(id), { body });
    if (r.ok) {
      say(msg, `${id}: ${r.status === 201 ? "created" : "saved"}`, "good");
      app.forgetSales();
      box.replaceChildren(h("p", { id: "sale-saved", class: "status good", role: "status", text: `Sale ${id} ${r.status === 201 ? "created" : "saved"}.` }));
      done();
      return;
    }
    say(msg, "");
    const target = fieldOf(r.problem?.detail || "", f, tierRows);
    if (target) {
      showError(target, problemText(r));
      target.focus();
    } else {
      top.textContent = problemText(r);
    }
  });
  box.replaceChildren(form);
  (sale ? f.name : f.id).focus();
}

// fieldOf finds the control a problem's sentence is about: the server's
// sentences start with the member they name ("closes_at must be after
// opens_at", "tiers[1]: stock must be 0 to ...") or point at it ("at
// /tiers/0/stock").
export function fieldOf(detail, f, tierRows) {
  let m = /^tiers\[(\d+)\]: (?:tier )?(\w+)/.exec(detail) || /at \/tiers\/(\d+)\/(\w+)/.exec(detail);
  if (m) {
    const row = tierRows[Number(m[1])];
    if (row) return row[m[2]] || row.id;
  }
  m = /at \/(\w+)/.exec(detail);
  if (m && f[m[1]]) return f[m[1]];
  if (/^sale id|^body id/.test(detail)) return f.id;
  if (/^hold/.test(detail)) return f.hold_seconds;
  m = /^(\w+)/.exec(detail);
  if (m && f[m[1]]) return f[m[1]];
  return null;
}

function baseOf(sale) {
  const b = structuredClone(sale);
  for (const k of computedSale) delete b[k];
  for (const t of b.tiers || []) for (const k of computedTier) delete t[k];
  return b;
}

function num(v) {
  return v === "" ? undefined : Number(v);
}

function isoIn(ms) {
  const d = new Date(Date.now() + ms);
  d.setUTCSeconds(0, 0);
  return d.toISOString().replace(".000Z", "Z");
}

function loadPanel(app, done) {
  const file = h("input", { type: "file", accept: "application/json,.json", name: "sales-file" });
  const msg = status();
  const form = h("form", { class: "panel", id: "load-form", novalidate: true },
    h("h3", { text: "Bulk load" }),
    h("p", { text: 'A JSON file {"sales":[...]}: every sale is created or updated, or none is.' }),
    field("Sales file", file),
    h("button", { type: "submit", text: "Load" }), msg);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!file.files.length) {
      say(msg, "choose a file first", "bad");
      return;
    }
    const text = await file.files[0].text();
    const r = await api("POST", "/v1/admin/sales:load", { body: text });
    if (r.ok) {
      say(msg, "loaded: " + r.data.sales.map((s) => s.id).join(", "), "good");
      done();
    } else {
      say(msg, problemText(r), "bad");
    }
  });
  return form;
}
