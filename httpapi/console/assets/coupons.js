// coupons.js: a sale's coupons: list, create, disable and enable
// (/v1/admin/sales/{id}/coupons).

import { api, problemText } from "./api.js";
import { h, field, input, select, button, table, status, say, clearErrors, showError, when } from "./dom.js";

export async function render(main, app) {
  const sales = await app.listSales();
  const sale = select((sales.list || []).map((s) => ({ value: s.id, label: s.id })), { name: "sale" });
  if (app.lastSale) sale.value = app.lastSale;
  const list = h("div", { id: "coupon-list" });
  const msg = status();
  const f = {
    code: input({ name: "code", required: true }),
    percent_off: input({ name: "percent_off", type: "number", min: 0, max: 100 }),
    amount_off_cents: input({ name: "amount_off_cents", type: "number", min: 0 }),
    tiers: input({ name: "tiers", placeholder: "floor, seat" }),
    uses_max: input({ name: "uses_max", type: "number", min: 0 }),
    uses_per_buyer_max: input({ name: "uses_per_buyer_max", type: "number", min: 0 }),
    valid_from: input({ name: "valid_from", placeholder: "RFC 3339" }),
    valid_until: input({ name: "valid_until", placeholder: "RFC 3339" }),
    min_quantity: input({ name: "min_quantity", type: "number", min: 0 }),
  };
  const labels = { code: "Code", percent_off: "Percent off", amount_off_cents: "Amount off (cents)", tiers: "Tiers (empty: all)",
    uses_max: "Uses at most", uses_per_buyer_max: "Uses per buyer", valid_from: "Valid from", valid_until: "Valid until", min_quantity: "Minimum quantity" };
  const form = h("form", { class: "panel", id: "coupon-form", novalidate: true }, h("h3", { text: "New coupon" }),
    h("div", { class: "row" }, Object.keys(f).map((k) => field(labels[k], f[k]))),
    h("button", { type: "submit", text: "Create coupon" }), msg);
  main.append(h("h2", { text: "Coupons" }), h("div", { class: "row" }, field("Sale", sale)), list, form);

  const refresh = async () => {
    app.lastSale = sale.value;
    const r = await api("GET", `/v1/admin/sales/${encodeURIComponent(sale.value)}/coupons`);
    if (!r.ok) {
      list.replaceChildren(h("p", { class: "status bad", text: problemText(r) }));
      return;
    }
    list.replaceChildren(table("Coupons of " + sale.value, [
      ["Code", (c) => c.code],
      ["Off", (c) => (c.percent_off ? c.percent_off + "%" : (c.amount_off_cents || 0) + " cents")],
      ["Tiers", (c) => (c.tiers || []).join(", ") || "all"],
      ["Uses", (c) => `${c.uses || 0}${c.uses_max ? " / " + c.uses_max : ""}`],
      ["Valid", (c) => `${when(c.valid_from) || "…"} – ${when(c.valid_until) || "…"}`],
      ["State", (c) => (c.disabled ? "disabled" : "active")],
      ["", (c) => button(c.disabled ? "Enable" : "Disable", async () => {
        const res = await api("PATCH", `/v1/admin/sales/${encodeURIComponent(sale.value)}/coupons/${encodeURIComponent(c.code)}`, { body: { disabled: !c.disabled } });
        say(msg, res.ok ? c.code + (c.disabled ? " enabled" : " disabled") : problemText(res), res.ok ? "good" : "bad");
        refresh();
      }, { class: "secondary", "aria-label": (c.disabled ? "Enable " : "Disable ") + c.code })],
    ], r.data.coupons || []));
  };
  sale.addEventListener("change", refresh);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearErrors(form);
    const body = { code: f.code.value.trim() };
    for (const k of ["percent_off", "amount_off_cents", "uses_max", "uses_per_buyer_max", "min_quantity"]) if (f[k].value !== "") body[k] = Number(f[k].value);
    for (const k of ["valid_from", "valid_until"]) if (f[k].value.trim() !== "") body[k] = f[k].value.trim();
    const tiers = f.tiers.value.split(",").map((s) => s.trim()).filter(Boolean);
    if (tiers.length) body.tiers = tiers;
    const r = await api("POST", `/v1/admin/sales/${encodeURIComponent(sale.value)}/coupons`, { body });
    if (r.ok) {
      say(msg, body.code + " created", "good");
      form.reset();
      refresh();
      return;
    }
    const m = /^(\w+)/.exec(r.problem?.detail || "") || /at \/(\w+)/.exec(r.problem?.detail || "");
    if (m && f[m[1]]) showError(f[m[1]], problemText(r));
    else say(msg, problemText(r), "bad");
  });
  if (sale.value) refresh();
}
