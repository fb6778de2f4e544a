// Reading /metrics (Prometheus text format 0.0.4) for the server view: parse
// one scrape, then turn two consecutive scrapes into rates and percentiles.
// Pure functions, so node tests import this file directly.

/**
 * Parses exposition text into a Map from metric name to an array of
 * {labels, value}. Comment lines and lines that do not parse are skipped;
 * label values are unescaped (\\, \", \n).
 */
export function parseMetrics(text) {
  const out = new Map();
  const line_re = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/;
  const label_re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  for (const line of text.split('\n')) {
    if (!line || line[0] === '#') continue;
    const m = line_re.exec(line);
    if (!m) continue;
    const value = m[4] === '+Inf' ? Infinity : m[4] === '-Inf' ? -Infinity : Number(m[4]);
    if (Number.isNaN(value) && m[4] !== 'NaN') continue;
    const labels = {};
    if (m[3]) {
      for (const l of m[3].matchAll(label_re)) {
        labels[l[1]] = l[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
      }
    }
    if (!out.has(m[1])) out.set(m[1], []);
    out.get(m[1]).push({ labels, value });
  }
  return out;
}

/** Sum of every sample of `name` (0 when absent). */
export function total(metrics, name) {
  return (metrics.get(name) || []).reduce((s, x) => s + x.value, 0);
}

/**
 * The cumulative buckets of histogram `name` as [{le, count}] sorted by le
 * (the +Inf bucket last), summed over any other labels.
 */
export function buckets(metrics, name) {
  const by = new Map();
  for (const s of metrics.get(`${name}_bucket`) || []) {
    const le = s.labels.le === '+Inf' ? Infinity : Number(s.labels.le);
    if (Number.isNaN(le)) continue;
    by.set(le, (by.get(le) || 0) + s.value);
  }
  return [...by].map(([le, count]) => ({ le, count })).sort((a, b) => a.le - b.le);
}

/**
 * Bucket counts of `now` minus those of `before` (the observations between
 * two scrapes); `before` may be null. A counter that went down (restart)
 * gives `now` as it is.
 */
export function bucketDelta(now, before) {
  if (!before) return now;
  const prev = new Map(before.map((b) => [b.le, b.count]));
  const d = now.map((b) => ({ le: b.le, count: b.count - (prev.get(b.le) ?? 0) }));
  return d.some((b) => b.count < 0) ? now : d;
}

/**
 * The q-quantile (0..1) of cumulative buckets, interpolated linearly inside
 * the bucket that holds it as Prometheus's histogram_quantile does; null when
 * there are no observations. A quantile in the +Inf bucket answers the
 * largest finite bound.
 */
export function quantile(q, bs) {
  if (!bs.length) return null;
  const n = bs[bs.length - 1].count;
  if (!(n > 0)) return null;
  const rank = q * n;
  let prevLe = 0;
  let prevCount = 0;
  for (const b of bs) {
    if (b.count >= rank) {
      if (b.le === Infinity) return prevLe;
      const inBucket = b.count - prevCount;
      if (inBucket <= 0) return b.le;
      return prevLe + ((b.le - prevLe) * (rank - prevCount)) / inBucket;
    }
    prevLe = b.le;
    prevCount = b.count;
  }
  return prevLe;
}

/**
 * One point of the server charts from two scrapes `dt` seconds apart:
 * requests/s, latency p50/p90/p99 in ms over the interval, open connections,
 * commits/s and the mean commit batch size over the interval (null when no
 * commit happened). `before` null gives rates of null.
 */
export function samplePoint(now, before, dt) {
  const rate = (name) =>
    before && dt > 0 ? Math.max(0, (total(now, name) - total(before, name)) / dt) : null;
  const lat = bucketDelta(
    buckets(now, 'cruder_http_request_duration_seconds'),
    before ? buckets(before, 'cruder_http_request_duration_seconds') : null,
  );
  const ms = (q) => {
    const v = quantile(q, lat);
    return v === null ? null : v * 1000;
  };
  const commits = rate('cruder_store_commit_batch_size_count');
  const batched = rate('cruder_store_commit_batch_size_sum');
  return {
    rps: rate('cruder_http_requests_total'),
    p50: ms(0.5),
    p90: ms(0.9),
    p99: ms(0.99),
    conns: total(now, 'cruder_http_open_connections'),
    commits,
    batch: commits ? batched / commits : null,
  };
}
