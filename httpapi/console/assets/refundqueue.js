// refundqueue.js: the queue of refund requests and the provider refunds,
// routes that not every onsale build has. Every field name the page reads
// from them is in this file, so adapting to the routes' final JSON is an
// edit here only:
//
//   GET  /v1/admin/refund-queue                     {"items":[{item_id, kind, order_id, amount_cents, currency, reason, status, created_at}], "next_cursor"}
//   POST /v1/admin/refund-queue/{item_id}:settle    {"action":"approve"|"reject"|"refunded"}
//   GET  /v1/admin/refunds                          {"refunds":[{refund_id, order_id, provider, amount_cents, currency, status, created_at}]}
//
// A 404 not_found from either (the route does not exist here) shows "not
// available on this server".

import { api, notAvailable, problemText } from "./api.js";
import { h, button, table, status, say, money, when } from "./dom.js";

export const queueFields = {
  list: (data) => data.items || [],
  id: (it) => it.item_id,
  kind: (it) => it.kind || "",
  order: (it) => it.order_id || "",
  amount: (it) => money(it.amount_cents ?? 0, it.currency),
  fee: (it) => money(it.fee_cents ?? 0, it.currency),
  reason: (it) => it.reason || it.event_id || "",
  created: (it) => when(it.since),
  // A buyer's request is approved or rejected; late money and a
  // duplicate charge are marked refunded once the money went back.
  settleActions: (it) => (it.kind === "refund_request" ? ["approve", "reject"] : ["refunded"]),
};

export const refundFields = {
  list: (data) => data.refunds || [],
  id: (r) => r.refund_id || r.id || "",
  order: (r) => r.order_id || "",
  provider: (r) => r.provider || "",
  amount: (r) => money(r.amount_cents ?? 0, r.currency),
  status: (r) => r.status || "",
  created: (r) => when(r.created_at),
};

export async function renderQueue(box) {
  const msg = status();
  box.replaceChildren(h("h3", { text: "Refund requests" }), h("p", { text: "loading…" }));
  const r = await api("GET", "/v1/admin/refund-queue");
  if (notAvailable(r)) {
    box.replaceChildren(h("h3", { text: "Refund requests" }), h("p", { class: "unavailable", id: "queue-unavailable", text: "The refund queue is not available on this server." }));
    return;
  }
  if (!r.ok) {
    box.replaceChildren(h("h3", { text: "Refund requests" }), h("p", { class: "status bad", text: problemText(r) }));
    return;
  }
  const f = queueFields;
  const settle = async (it, action) => {
    const res = await api("POST", `/v1/admin/refund-queue/${encodeURIComponent(f.id(it))}:settle`, { body: { action } });
    say(msg, res.ok ? `${f.id(it)}: ${action}` : problemText(res), res.ok ? "good" : "bad");
    if (res.ok) renderQueue(box);
  };
  box.replaceChildren(h("h3", { text: "Refund requests" }), table("Refund requests", [
    ["Item", f.id], ["Kind", f.kind], ["Order", f.order], ["Amount", f.amount], ["Fee", f.fee], ["Reason", f.reason],
    ["Since", f.created],
    ["Settle", (it) => h("div", { class: "row" }, f.settleActions(it).map((a) =>
      button(a, () => settle(it, a), { class: a === "reject" ? "secondary" : "", "aria-label": `${a} ${f.id(it)}` })))],
  ], f.list(r.data)), msg);
}

export async function renderProviderRefunds(box) {
  box.replaceChildren(h("h3", { text: "Provider refunds" }), h("p", { text: "loading…" }));
  const r = await api("GET", "/v1/admin/refunds");
  if (notAvailable(r)) {
    box.replaceChildren(h("h3", { text: "Provider refunds" }), h("p", { class: "unavailable", id: "provider-refunds-unavailable", text: "Provider refunds are not available on this server." }));
    return;
  }
  if (!r.ok) {
    box.replaceChildren(h("h3", { text: "Provider refunds" }), h("p", { class: "status bad", text: problemText(r) }));
    return;
  }
  const f = refundFields;
  box.replaceChildren(h("h3", { text: "Provider refunds" }), table("Provider refunds", [
    ["Refund", f.id], ["Order", f.order], ["Provider", f.provider], ["Amount", f.amount], ["Status", f.status], ["Created", f.created],
  ], f.list(r.data)));
}
