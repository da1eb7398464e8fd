// orders.js: find an order of a sale (by order id, buyer, status), open
// it, see its tickets, and refund it. The search reads the sale's orders
// page by page (GET /v1/admin/sales/{id}/orders) and filters here: the
// API has no search of its own, so the page reads at most searchPagesMax
// pages of 10,000 orders and says so when it stopped early.

import { api, problemText } from "./api.js";
import { h, field, input, select, button, table, status, say, money, when } from "./dom.js";

const searchPagesMax = 5;
const statuses = ["", "pending", "paid", "cancelled", "expired", "refunded"];

export async function render(main, app) {
  const sales = await app.listSales();
  const sale = select((sales.list || []).map((s) => ({ value: s.id, label: s.id })), { name: "sale" });
  if (app.lastSale) sale.value = app.lastSale;
  const q = input({ name: "q", type: "search", placeholder: "order id or user id" });
  const st = select(statuses.map((s) => ({ value: s, label: s || "any" })), { name: "status" });
  const needs = h("input", { type: "checkbox", name: "needs_refund" });
  const msg = status();
  const results = h("div", { id: "order-results" });
  const detail = h("div", { id: "order-detail" });
  const form = h("form", { class: "panel", id: "order-search", novalidate: true },
    h("div", { class: "row" }, field("Sale", sale), field("Search", q), field("Status", st),
      field("Owes a refund", needs), h("button", { type: "submit", text: "Search" })), msg);
  main.append(h("h2", { text: "Orders" }), form, results, detail);

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    app.lastSale = sale.value;
    say(msg, "searching…");
    const words = q.value.trim().toLowerCase();
    const match = (o) => (st.value === "" || o.status === st.value) && (!needs.checked || o.needs_refund) &&
      (words === "" || [o.order_id, o.user_id, o.buyer?.name, o.buyer?.email].some((v) => v && v.toLowerCase().includes(words)));
    const r = await scanOrders(sale.value, match);
    if (!r.ok) {
      say(msg, problemText(r.res), "bad");
      return;
    }
    say(msg, `${r.found.length} found in ${r.seen} orders${r.more ? " (stopped after " + r.seen + "; narrow the search)" : ""}`);
    results.replaceChildren(table("Orders found", [
      ["Order", (o) => o.order_id],
      ["Status", (o) => o.status + (o.needs_refund ? " (owes a refund)" : "")],
      ["Tier", (o) => o.tier + " × " + o.quantity],
      ["Amount", (o) => money(o.amount_cents, o.currency)],
      ["Buyer", (o) => o.buyer?.name || o.user_id],
      ["Created", (o) => when(o.created_at)],
      ["", (o) => button("Open", () => openOrder(detail, o.order_id), { class: "secondary", "aria-label": "Open order " + o.order_id })],
    ], r.found.slice(0, 500)));
  });
}

// scanOrders reads a sale's orders, at most searchPagesMax pages, and
// keeps those that match.
export async function scanOrders(saleID, match) {
  let cursor = "", seen = 0;
  const found = [];
  for (let page = 0; page < searchPagesMax; page++) {
    const r = await api("GET", `/v1/admin/sales/${encodeURIComponent(saleID)}/orders?limit=10000${cursor ? "&cursor=" + encodeURIComponent(cursor) : ""}`);
    if (!r.ok) return { ok: false, res: r };
    seen += r.data.orders.length;
    found.push(...r.data.orders.filter(match));
    cursor = r.data.next_cursor;
    if (!cursor) return { ok: true, found, seen, more: false };
  }
  return { ok: true, found, seen, more: true };
}

export async function openOrder(box, id) {
  const msg = status();
  box.replaceChildren(h("p", { text: "loading " + id + "…" }));
  const r = await api("GET", "/v1/orders/" + encodeURIComponent(id));
  if (!r.ok) {
    box.replaceChildren(h("p", { class: "status bad", text: problemText(r) }));
    return;
  }
  const o = r.data;
  const rows = [
    ["Order", o.order_id], ["Status", o.status], ["Owes a refund", o.needs_refund ? "yes" : "no"],
    ["Sale / tier", o.sale_id + " / " + o.tier], ["Quantity", o.quantity], ["Amount", money(o.amount_cents, o.currency)],
    ["Buyer", o.buyer ? `${o.buyer.name} <${o.buyer.email}>` : o.user_id], ["Channel", o.channel || "online"],
    ["Created", when(o.created_at)], ["Expires", when(o.expires_at)], ["Updated", when(o.updated_at)],
    ["Checked in", (o.checked_in || []).length ? o.checked_in.map((c) => (typeof c === "object" ? JSON.stringify(c) : c)).join(", ") : "none"],
    ["Duplicate charges", (o.duplicate_charges || []).map((d) => `${d.event_id}: ${money(d.amount_cents, o.currency)}`).join(", ") || "none"],
  ];
  if (o.coupon) rows.push(["Coupon", o.coupon + " (−" + money(o.discount_cents, o.currency) + ")"]);
  const force = h("input", { type: "checkbox", name: "force" });
  const refund = button("Refund", async () => {
    if (refund.dataset.armed !== "yes") {
      refund.dataset.armed = "yes";
      refund.textContent = "Confirm refund of " + money(o.amount_cents, o.currency);
      return;
    }
    refund.disabled = true;
    const res = await api("POST", `/v1/admin/orders/${encodeURIComponent(o.order_id)}/refund`, force.checked ? { body: { force: true } } : {});
    if (res.ok) {
      say(msg, "refunded", "good");
      openOrder(box, o.order_id);
    } else {
      say(msg, problemText(res) + (res.problem?.code === "ticket_used" ? " — tick “refund even if used” to refund anyway" : ""), "bad");
      refund.disabled = false;
      refund.dataset.armed = "";
      refund.textContent = "Refund";
    }
  }, { class: "danger", id: "refund-order" });
  const tickets = h("div", { id: "order-tickets" });
  box.replaceChildren(h("div", { class: "panel" },
    h("h3", { text: "Order " + o.order_id }),
    h("dl", { class: "detail" }, rows.flatMap(([k, v]) => [h("dt", { text: k }), h("dd", { text: String(v) })])),
    o.status === "paid" ? h("div", { class: "row" }, field("Refund even if a ticket was used", force), refund) : null,
    msg, tickets));
  if (o.status === "paid") {
    const t = await api("GET", `/v1/orders/${encodeURIComponent(o.order_id)}/tickets`);
    if (t.ok) {
      tickets.replaceChildren(table("Tickets", [
        ["Ticket", (x) => x.ticket_id || ""],
        ["State", (x) => x.state || (x.checked_in ? "checked in" : "valid")],
        ["Code", (x) => h("code", { class: "token", text: x.code || "(none)" })],
      ], t.data.tickets || []));
    }
  }
}
