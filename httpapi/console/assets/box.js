// box.js: the box office, for sellers: sell tickets to a named buyer
// (POST /v1/sales/{id}/purchase) and take the money at the counter
// (POST /v1/orders/{id}/pay-at-counter). Each press sends a fresh
// Idempotency-Key, kept for that order so a retry after a lost answer
// repeats the same request.

import { api, newKey, problemText } from "./api.js";
import { h, field, input, select, button, status, say, money, when } from "./dom.js";

export async function render(main, app) {
  const sales = await app.listSales();
  const sale = select((sales.list || []).map((s) => ({ value: s.id, label: s.id + " — " + s.name })), { name: "sale" });
  const tier = select([], { name: "tier" });
  const fillTiers = () => {
    const s = app.saleConfig(sale.value);
    tier.replaceChildren(...(s?.tiers || []).map((t) => h("option", { value: t.id, text: `${t.name} (${money(t.price_cents, s.currency)}, ${t.available} left)` })));
  };
  sale.addEventListener("change", fillTiers);
  fillTiers();
  const qty = input({ name: "quantity", type: "number", min: 1, value: 1 });
  const name = input({ name: "buyer_name", autocomplete: "off" });
  const email = input({ name: "buyer_email", type: "email", autocomplete: "off" });
  const msg = status();
  const order = h("div", { id: "box-order" });
  let key = newKey("box");
  const form = h("form", { class: "panel", id: "box-form", novalidate: true },
    h("div", { class: "row" }, field("Sale", sale), field("Tier", tier), field("Quantity", qty)),
    h("div", { class: "row" }, field("Buyer's name", name), field("Buyer's email", email)),
    h("button", { type: "submit", text: "Hold tickets" }), msg);
  main.append(h("h2", { text: "Box office" }), form, order);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const r = await api("POST", `/v1/sales/${encodeURIComponent(sale.value)}/purchase`, {
      headers: { "Idempotency-Key": key },
      body: { tier: tier.value, quantity: Number(qty.value), buyer: { name: name.value.trim(), email: email.value.trim() } },
    });
    if (!r.ok) {
      say(msg, problemText(r), "bad");
      if (r.status < 500 && r.status !== 429) key = newKey("box");
      return;
    }
    key = newKey("box");
    say(msg, "held until " + when(r.data.expires_at), "good");
    payPanel(order, r.data);
  });
}

function payPanel(box, o) {
  const method = select(["cash", "card"], { name: "method" });
  const ref = input({ name: "reference" });
  const msg = status();
  const key = newKey("pay");
  const form = h("form", { class: "panel", novalidate: true },
    h("h3", { text: `Order ${o.order_id}: ${o.quantity} × ${o.tier}, ${money(o.amount_cents, o.currency)}` }),
    h("div", { class: "row" }, field("Paid by", method), field("Reference", ref)),
    h("button", { type: "submit", text: "Paid at the counter" }), msg);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = { method: method.value };
    if (ref.value.trim()) body.reference = ref.value.trim();
    const r = await api("POST", `/v1/orders/${encodeURIComponent(o.order_id)}/pay-at-counter`, { headers: { "Idempotency-Key": key }, body });
    say(msg, r.ok ? `paid${r.data.needs_refund ? ": its tickets were gone, hand the money back" : ""}` : problemText(r), r.ok && !r.data.needs_refund ? "good" : "bad");
  });
  box.replaceChildren(form);
}
