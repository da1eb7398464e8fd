// exports.js: the sale's files and report: orders.csv, attendees.csv,
// the report (JSON, summed up here) and its rush curve (PNG). Files are
// fetched with the token and saved from memory: the token never goes
// into a link.

import { api, problemText } from "./api.js";
import { h, field, select, button, table, status, say, money, download } from "./dom.js";

export async function render(main, app) {
  const sales = await app.listSales();
  const sale = select((sales.list || []).map((s) => ({ value: s.id, label: s.id })), { name: "sale" });
  if (app.lastSale) sale.value = app.lastSale;
  const msg = status();
  const report = h("div", { id: "report" });
  const base = () => "/v1/admin/sales/" + encodeURIComponent(sale.value);
  const file = (path, name) => async () => {
    say(msg, "downloading " + name + "…");
    const r = await api("GET", base() + path, { as: "blob" });
    if (!r.ok) {
      say(msg, problemText(r), "bad");
      return;
    }
    download(r.data, sale.value + "-" + name);
    say(msg, name + ": " + r.data.size + " bytes", "good");
  };
  main.append(h("h2", { text: "Exports and report" }),
    h("div", { class: "row" }, field("Sale", sale),
      button("orders.csv", file("/orders.csv", "orders.csv"), { "aria-label": "Download orders.csv" }),
      button("attendees.csv", file("/attendees.csv", "attendees.csv"), { "aria-label": "Download attendees.csv" }),
      button("Report", () => showReport(), { id: "show-report" })),
    msg, report);

  async function showReport() {
    app.lastSale = sale.value;
    const r = await api("GET", base() + "/report");
    if (!r.ok) {
      say(msg, problemText(r), "bad");
      return;
    }
    const rep = r.data;
    const img = h("img", { class: "rush", id: "rush-png", alt: "Rush curve of " + sale.value + ": orders placed and paid per minute" });
    const png = await api("GET", base() + "/report/rush.png", { as: "blob" });
    if (png.ok) img.src = URL.createObjectURL(png.data);
    const tiers = (rep.sales || []).flatMap((sl) => (sl.tiers || []).map((t) => ({ ...t, currency: sl.currency })));
    report.replaceChildren(
      table("Tiers", [
        ["Tier", (t) => `${t.name} (${t.tier_id})`], ["Stock", (t) => String(t.stock)], ["Sold", (t) => String(t.sold)],
        ["Held", (t) => String(t.held)], ["Available", (t) => String(t.available)], ["Paid orders", (t) => String(t.paid_orders)],
        ["Revenue", (t) => money(t.revenue_cents, t.currency)], ["Refunds", (t) => `${t.refunds} (${money(t.refunded_cents, t.currency)})`],
      ], tiers, { id: "report-tiers" }),
      h("h3", { text: "Rush curve" }), img,
      table("Money", [
        ["Currency", (m) => m.currency], ["Revenue", (m) => money(m.revenue_cents, m.currency)],
        ["Owed back", (m) => money(m.needs_refund_cents, m.currency)], ["Refunded", (m) => money(m.refunded_cents, m.currency)],
        ["Duplicate charges", (m) => `${m.duplicate_charges} (${money(m.duplicate_charge_cents, m.currency)})`],
      ], rep.money || []),
      table("Orders by status", [["Status", (x) => x[0]], ["Orders", (x) => String(x[1])]], Object.entries(rep.orders || {})),
      button("Download report.json", () => download(new Blob([JSON.stringify(rep, null, 2)], { type: "application/json" }), sale.value + "-report.json"), { class: "secondary" }));
  }
}
