// The server view: what the server says about itself, and live charts fed by
// scraping /metrics every few seconds (rates and percentiles come from the
// difference of two scrapes, see metrics.js).
import { useEffect, useRef, useState } from 'preact/hooks';
import { pb, errorText } from './api.js';
import { parseMetrics, samplePoint } from './metrics.js';

const SCRAPE_MS = 2000;
const KEEP = 60;

function fmt(v, unit = '') {
  if (v === null || v === undefined || Number.isNaN(v)) return '—';
  const n = Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2);
  return `${n}${unit}`;
}

function uptime(s) {
  if (typeof s !== 'number' || !(s >= 0)) return '—';
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  return `${d ? `${d}d ` : ''}${h}h ${m}m ${Math.floor(s % 60)}s`;
}

/** A line chart of `series` ([key, label]) over `points`, scaled to its own maximum. */
function Chart({ title, points, series, unit }) {
  const vals = points.flatMap((p) => series.map(([k]) => p[k])).filter((v) => v !== null && v !== undefined);
  const max = Math.max(1e-9, ...vals);
  const last = points[points.length - 1] || {};
  const x = (i) => (i * 300) / (KEEP - 1);
  const y = (v) => 98 - (v / max) * 94;
  return (
    <figure className="panel chart" aria-label={title}>
      <figcaption>
        <h3>{title}</h3>
      </figcaption>
      <div className="legend">
        {series.map(([k, label], i) => (
          <span key={k} className={`s${i}`}>
            ■ <span style={{ color: 'var(--fg)' }}>{label}: {fmt(last[k], unit)}</span>
          </span>
        ))}
        <span>max {fmt(max, unit)}</span>
      </div>
      <svg viewBox="0 0 300 100" preserveAspectRatio="none" role="img" aria-label={`${title}, last ${points.length} samples`}>
        <line x1="0" y1="98" x2="300" y2="98" stroke="currentColor" stroke-opacity=".2" />
        {series.map(([k], i) => {
          const offset = KEEP - points.length;
          const pts = points
            .map((p, j) => (p[k] === null || p[k] === undefined ? null : `${x(offset + j).toFixed(1)},${y(p[k]).toFixed(1)}`))
            .filter(Boolean)
            .join(' ');
          return <polyline key={k} className={`s${i}`} points={pts} fill="none" stroke-width="2" vector-effect="non-scaling-stroke" />;
        })}
      </svg>
    </figure>
  );
}

export function ServerView() {
  const [info, setInfo] = useState(null);
  const [points, setPoints] = useState([]);
  const [error, setError] = useState('');
  const prev = useRef(null);

  useEffect(() => {
    // Not every server reports about itself: the view then shows what /metrics says.
    pb.send('/api/cruder/info', {}).then(setInfo, () => setInfo({}));
    let stopped = false;
    const scrape = async () => {
      try {
        const res = await fetch('/metrics', { headers: { Authorization: pb.authStore.token }, cache: 'no-store' });
        if (!res.ok) throw new Error(`/metrics answered ${res.status}`);
        const m = parseMetrics(await res.text());
        const now = performance.now();
        const p = prev.current;
        const point = samplePoint(m, p?.m || null, p ? (now - p.t) / 1000 : 0);
        prev.current = { m, t: now };
        if (!stopped) {
          setPoints((old) => [...old, point].slice(-KEEP));
          setError('');
          const build = m.get('cruder_build_info')?.[0]?.labels.version;
          const start = m.get('process_start_time_seconds')?.[0]?.value;
          if (build || start) setInfo((i) => ({ version: build, startedAt: start, ...(i || {}) }));
        }
      } catch (err) {
        if (!stopped) setError(errorText(err));
      }
    };
    scrape();
    const timer = setInterval(scrape, SCRAPE_MS);
    return () => {
      stopped = true;
      clearInterval(timer);
    };
  }, []);

  const started = typeof info?.startedAt === 'number' ? info.startedAt : Date.parse(info?.startedAt) / 1000;
  const up = info?.uptimeSeconds ?? (started > 0 ? Date.now() / 1000 - started : null);
  return (
    <div>
      <h2>Server</h2>
      <dl className="stats">
        <div>
          <dt>Version</dt>
          <dd data-stat="version">{info?.version || '—'}</dd>
        </div>
        <div>
          <dt>Uptime</dt>
          <dd data-stat="uptime">{uptime(up)}</dd>
        </div>
        <div>
          <dt>Data directory</dt>
          <dd data-stat="dir">{info?.dataDir || '—'}</dd>
        </div>
        <div>
          <dt>Partitions</dt>
          <dd data-stat="partitions">{info?.partitions ?? '—'}</dd>
        </div>
      </dl>
      {error && (
        <p className="err" role="alert">
          {error}
        </p>
      )}
      <div className="charts">
        <Chart title="Requests per second" points={points} series={[['rps', 'req/s']]} />
        <Chart
          title="Latency"
          unit=" ms"
          points={points}
          series={[
            ['p50', 'p50'],
            ['p90', 'p90'],
            ['p99', 'p99'],
          ]}
        />
        <Chart title="Open connections" points={points} series={[['conns', 'open']]} />
        <Chart
          title="Store commits"
          points={points}
          series={[
            ['batch', 'writes per commit'],
            ['commits', 'commits/s'],
          ]}
        />
      </div>
    </div>
  );
}
