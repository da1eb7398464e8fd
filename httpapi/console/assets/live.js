// live.js: the night of a sale in one screen. Counts per tier come from the
// sale's live stream (Server-Sent Events, public); rates, latencies and
// queue depths from two readings of /metrics a few seconds apart; the
// waiting room's length and admissions from the live stream's queue counts.

import { api } from "./api.js";
import { h, field, select, table, status, say } from "./dom.js";
import { Scrape, night } from "./metrics.js";

const scrapeEveryMs = 2000;
const holdsEveryMs = 10000;
const expiringWithinMs = 60000;

export async function render(main, app) {
  const stops = [];
  const msg = status();
  const saleSelect = select([], { name: "sale" });
  const tiersBox = h("div", { id: "live-tiers", "aria-live": "off" });
  const liveState = h("p", { id: "live-state", class: "state", text: "choose a sale" });
  const cards = h("dl", { id: "live-metrics", class: "cards" });
  main.append(
    h("h2", { text: "Live" }),
    h("div", { class: "row" }, field("Sale", saleSelect)),
    liveState, tiersBox,
    h("h3", { text: "Server" }), cards, msg);

  const sales = await app.listSales();
  if (!sales.ok) {
    say(msg, "cannot list sales: " + sales.text, "bad");
  }
  for (const s of sales.list || []) saleSelect.append(h("option", { value: s.id, text: s.id + " — " + s.name }));
  if (app.lastSale && sales.list?.some((s) => s.id === app.lastSale)) saleSelect.value = app.lastSale;

  let es = null;
  let holds = { text: app.role === "admin" ? "…" : "admin only" };
  let lastSale = null;
  const openedAt = performance.now();
  // The watched sale's waiting room, from its live stream: people waiting
  // (joined less admitted) and admissions per second between two events
  // at least a second apart.
  let queueLast = null, queueRate = 0;
  const queueSeen = (q) => {
    if (!q) {
      queueLast = null;
      return;
    }
    const now = performance.now();
    if (queueLast && now - queueLast.at >= 1000) {
      queueRate = (1000 * (q.admitted - queueLast.admitted)) / (now - queueLast.at);
      queueLast = { ...q, at: now };
    } else if (!queueLast) {
      queueLast = { ...q, at: now };
    }
    queueLast.joined = q.joined;
    queueLast.waiting = Math.max(0, q.joined - q.admitted);
  };
  const queueNow = () => (queueLast ? { length: queueLast.waiting, admittedPerSec: queueRate } : null);
  const watch = () => {
    if (es) es.close();
    const id = saleSelect.value;
    if (!id) return;
    app.lastSale = id;
    lastSale = null;
    liveState.textContent = "connecting to " + id + "…";
    tiersBox.replaceChildren();
    es = new EventSource("/v1/sales/" + encodeURIComponent(id) + "/live");
    es.addEventListener("availability", (e) => {
      const s = JSON.parse(e.data);
      lastSale = s;
      queueSeen(s.queue);
      drawTiers(tiersBox, s, app.saleConfig(id));
      liveState.textContent = `${s.sale_id}: ${s.status}${s.sold_out ? ", sold out" : ""} · event ${e.lastEventId} · ${new Date().toLocaleTimeString()}`;
      liveState.dataset.event = e.lastEventId;
      const root = document.documentElement.dataset;
      if (!root.firstLiveMs) {
        root.firstLiveMs = Math.round(performance.now()); // since navigation started
        root.liveWaitMs = Math.round(performance.now() - openedAt); // since this screen opened
      }
      if (s.status === "closed") es.close();
    });
    es.onerror = () => {
      if (es.readyState === EventSource.CLOSED) liveState.textContent += " · stream ended";
    };
  };
  saleSelect.addEventListener("change", watch);
  stops.push(() => es && es.close());
  watch();

  // /metrics, every few seconds.
  let prev = null;
  const scrape = async () => {
    const r = await api("GET", "/metrics", { as: "text" });
    if (!r.ok) {
      say(msg, "/metrics: HTTP " + r.status, "bad");
      return;
    }
    const cur = new Scrape(r.data, performance.now());
    if (prev) {
      const n = night(prev, cur);
      n.queue = n.queue || queueNow();
      drawCards(cards, n, holds);
    }
    prev = cur;
  };
  scrape();
  const timer = setInterval(scrape, scrapeEveryMs);
  stops.push(() => clearInterval(timer));

  // Holds about to expire: the sale's pending orders whose expires_at is
  // within a minute, from its first page of orders (admin only).
  if (app.role === "admin") {
    const countHolds = async () => {
      const id = saleSelect.value;
      if (!id) return;
      const r = await api("GET", `/v1/admin/sales/${encodeURIComponent(id)}/orders?limit=10000`);
      if (!r.ok) {
        holds = { text: "–" };
        return;
      }
      const now = Date.now();
      const soon = r.data.orders.filter((o) => {
        if (o.status !== "pending") return false;
        const left = Date.parse(o.expires_at) - now;
        return left >= 0 && left <= expiringWithinMs;
      }).length;
      holds = { text: soon + (r.data.next_cursor ? "+ (first 10,000 orders)" : "") };
    };
    countHolds();
    const t = setInterval(countHolds, holdsEveryMs);
    stops.push(() => clearInterval(t));
  }
  return () => stops.forEach((f) => f());
}

function drawTiers(box, s, cfg) {
  const stockOf = (t) => t.available + t.held + t.sold;
  const name = (t) => cfg?.tiers?.find((x) => x.id === t.id)?.name || t.id;
  box.replaceChildren(table("Tickets per tier", [
    ["Tier", (t) => name(t)],
    ["Stock", (t) => String(stockOf(t))],
    ["Held", (t) => String(t.held)],
    ["Sold", (t) => String(t.sold)],
    ["Available", (t) => h("strong", { class: "avail", dataset: { tier: t.id }, text: String(t.available) })],
    ["", (t) => h("meter", { min: 0, max: Math.max(stockOf(t), 1), value: t.sold + t.held, "aria-label": name(t) + " sold and held" })],
  ], s.tiers, { class: "tiers" }));
}

function drawCards(dl, n, holds) {
  const ms = (s) => (s === null ? "–" : (s * 1000).toFixed(s < 0.01 ? 2 : 1) + " ms");
  const per = (x) => x.toFixed(x < 10 ? 1 : 0) + "/s";
  const items = [
    ["Purchases", per(n.purchasesPerSec), "purchases"],
    ["Rejections", per(n.rejectionsPerSec), "rejections"],
    ["Purchase p99", ms(n.p99Seconds), "p99"],
    ["429 answers", (n.tooManyShare * 100).toFixed(1) + "% (" + per(n.tooManyPerSec) + ")", "tooMany"],
    ["Inbox depth (max shard)", n.inboxDepth === null ? "–" : n.inboxDepth + (n.inboxCapacity ? " / " + n.inboxCapacity : ""), "inbox"],
    ["Log sync p99", ms(n.syncP99Seconds), "sync"],
    ["Holds outstanding", String(n.holdsOutstanding), "holds"],
    ["Holds expiring within 1 min", holds.text, "expiring"],
    ["Waiting room", n.queue ? n.queue.length + " waiting, " + per(n.queue.admittedPerSec) + " admitted" : "no waiting room on this server", "queue"],
  ];
  dl.replaceChildren(...items.map(([k, v, id]) => h("div", { class: "card", dataset: { metric: id } }, h("dt", { text: k }), h("dd", { text: v }))));
}
