// refunds.js: everything owed back, on one screen: the refund queue and
// provider refunds (refundqueue.js, where the server has them), and the
// sale's orders that owe money: paid with needs_refund (money taken, no
// ticket) or with duplicate charges. A needs_refund order is settled with
// the refund route in one click; a duplicate charge is refunded at the
// provider and listed here so it is not forgotten.

import { api, problemText } from "./api.js";
import { h, field, select, button, table, status, say, money, when } from "./dom.js";
import { renderQueue, renderProviderRefunds } from "./refundqueue.js";
import { scanOrders } from "./orders.js";

export async function render(main, app) {
  const queue = h("div", { id: "refund-queue", class: "panel" });
  const provider = h("div", { id: "provider-refunds", class: "panel" });
  const sales = await app.listSales();
  const sale = select((sales.list || []).map((s) => ({ value: s.id, label: s.id })), { name: "sale" });
  if (app.lastSale) sale.value = app.lastSale;
  const msg = status();
  const owed = h("div", { id: "owed" });
  main.append(h("h2", { text: "Refunds" }), queue, provider,
    h("div", { class: "panel" }, h("h3", { text: "Orders that owe money" }),
      h("div", { class: "row" }, field("Sale", sale), button("Look", () => look(), { id: "look-owed" })), msg, owed));
  renderQueue(queue);
  renderProviderRefunds(provider);

  async function look() {
    app.lastSale = sale.value;
    say(msg, "reading orders…");
    const r = await scanOrders(sale.value, (o) => o.needs_refund || (o.duplicate_charges || []).length > 0);
    if (!r.ok) {
      say(msg, problemText(r.res), "bad");
      return;
    }
    say(msg, `${r.found.length} of ${r.seen} orders owe money${r.more ? " (first " + r.seen + " orders read)" : ""}`);
    owed.replaceChildren(table("Orders that owe money", [
      ["Order", (o) => o.order_id],
      ["Status", (o) => o.status],
      ["Owed", (o) => (o.needs_refund ? "whole order " + money(o.amount_cents, o.currency) : "") +
        (o.duplicate_charges || []).map((d) => ` duplicate ${d.event_id} ${money(d.amount_cents, o.currency)}`).join("")],
      ["Since", (o) => when(o.updated_at)],
      ["", (o) => o.needs_refund && o.status === "paid"
        ? button("Refund", async (e) => {
            e.target.disabled = true;
            const res = await api("POST", `/v1/admin/orders/${encodeURIComponent(o.order_id)}/refund`);
            say(msg, res.ok ? o.order_id + ": refunded" : problemText(res), res.ok ? "good" : "bad");
            if (res.ok) look();
            else e.target.disabled = false;
          }, { class: "danger", "aria-label": "Refund " + o.order_id })
        : "refund at the provider"],
    ], r.found));
  }
}
