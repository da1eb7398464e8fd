// metrics.js: reading onsale's /metrics (Prometheus text format 0.0.4)
// and turning two scrapes into the rates the night's screen shows, the
// same series the Grafana dashboard (deploy/grafana/onsale.json) plots.

// parse reads the text into samples {name, labels, value}; comments and
// lines it cannot read are skipped.
export function parse(text) {
  const out = [];
  for (const line of text.split("\n")) {
    if (line === "" || line[0] === "#") continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    if (m[2]) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
      let l;
      while ((l = re.exec(m[2])) !== null) labels[l[1]] = l[2].replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
    }
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

function key(s) {
  return s.name + JSON.stringify(s.labels);
}

// Scrape is one reading of /metrics at time t (ms).
export class Scrape {
  constructor(text, t) {
    this.t = t;
    this.samples = parse(text);
    this.byKey = new Map(this.samples.map((s) => [key(s), s]));
  }
  sum(name, pred = () => true) {
    let v = 0;
    for (const s of this.samples) if (s.name === name && pred(s.labels)) v += s.value;
    return v;
  }
  max(name) {
    let v = null;
    for (const s of this.samples) if (s.name === name) v = v === null ? s.value : Math.max(v, s.value);
    return v;
  }
  has(prefix) {
    return this.samples.some((s) => s.name.startsWith(prefix));
  }
}

// rate is the per-second increase of a summed counter between two scrapes.
export function rate(prev, cur, name, pred) {
  const dt = (cur.t - prev.t) / 1000;
  if (dt <= 0) return 0;
  return Math.max(0, cur.sum(name, pred) - prev.sum(name, pred)) / dt;
}

// quantile is histogram_quantile(q) over the increase of a histogram's
// buckets between two scrapes, linear within a bucket as Prometheus does;
// null when nothing was observed.
export function quantile(q, prev, cur, name, pred = () => true) {
  const buckets = new Map();
  for (const s of cur.samples) {
    if (s.name !== name + "_bucket" || !pred(s.labels)) continue;
    const le = s.labels.le === "+Inf" ? Infinity : Number(s.labels.le);
    const before = prev.byKey.get(key(s));
    buckets.set(le, (buckets.get(le) || 0) + s.value - (before ? before.value : 0));
  }
  const les = [...buckets.keys()].sort((a, b) => a - b);
  if (les.length === 0) return null;
  const total = buckets.get(les[les.length - 1]);
  if (!(total > 0)) return null;
  const rank = q * total;
  let lower = 0, below = 0;
  for (const le of les) {
    const c = buckets.get(le);
    if (c >= rank) {
      if (le === Infinity) return lower;
      return lower + (le - lower) * ((rank - below) / Math.max(c - below, 1e-9));
    }
    lower = le;
    below = c;
  }
  return lower;
}

// night computes the live screen's figures from two scrapes.
export function night(prev, cur) {
  const purchases = (l) => l.outcome !== undefined;
  const created = (l) => l.outcome === "created";
  const rejected = (l) => l.outcome !== "created" && l.outcome !== "replayed";
  const requests = rate(prev, cur, "onsale_http_requests_total");
  const tooMany = rate(prev, cur, "onsale_http_requests_total", (l) => l.status === "429");
  return {
    purchasesPerSec: rate(prev, cur, "onsale_purchases_total", created),
    rejectionsPerSec: rate(prev, cur, "onsale_purchases_total", rejected),
    purchaseAttemptsPerSec: rate(prev, cur, "onsale_purchases_total", purchases),
    p99Seconds: quantile(0.99, prev, cur, "onsale_http_request_duration_seconds", (l) => l.route === "purchase"),
    tooManyShare: requests > 0 ? tooMany / requests : 0,
    tooManyPerSec: tooMany,
    inboxDepth: cur.max("onsale_engine_inbox_depth"),
    inboxCapacity: cur.max("onsale_engine_inbox_capacity"),
    syncP99Seconds: quantile(0.99, prev, cur, "onsale_wal_sync_seconds"),
    holdsOutstanding: cur.sum("onsale_engine_holds_outstanding"),
    queue: cur.has("onsale_queue_") || cur.has("onsale_waiting_room_")
      ? {
          length: cur.sum("onsale_queue_length") + cur.sum("onsale_waiting_room_length"),
          admittedPerSec: rate(prev, cur, "onsale_queue_admitted_total") + rate(prev, cur, "onsale_waiting_room_admitted_total"),
        }
      : null,
  };
}
