// Unit tests of the console's /metrics reading (console/src/metrics.js):
// exposition parsing, histogram percentiles and rates between two scrapes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseMetrics, total, buckets, bucketDelta, quantile, samplePoint } from '../../console/src/metrics.js';

const SCRAPE_1 = `# HELP cruder_http_requests_total HTTP requests answered.
# TYPE cruder_http_requests_total counter
cruder_http_requests_total{route="health",status="200"} 10
cruder_http_requests_total{route="records_list",status="400"} 2
cruder_http_request_duration_seconds_bucket{le="0.001"} 4
cruder_http_request_duration_seconds_bucket{le="0.01"} 10
cruder_http_request_duration_seconds_bucket{le="+Inf"} 12
cruder_http_request_duration_seconds_count 12
cruder_http_open_connections 3
cruder_store_commit_batch_size_sum 6
cruder_store_commit_batch_size_count 3
weird{a="x\\"y\\\\z\\n"} 1
not a metric line
broken_value{} abc
`;
const SCRAPE_2 = SCRAPE_1.replace(' 10\n', ' 30\n')
  .replace('{le="0.001"} 4', '{le="0.001"} 14')
  .replace('{le="0.01"} 10', '{le="0.01"} 30')
  .replace('{le="+Inf"} 12', '{le="+Inf"} 32')
  .replace('open_connections 3', 'open_connections 5')
  .replace('batch_size_sum 6', 'batch_size_sum 26')
  .replace('batch_size_count 3', 'batch_size_count 7');

test('parseMetrics: samples with labels, escapes, +Inf; junk skipped', () => {
  const m = parseMetrics(SCRAPE_1);
  assert.deepEqual(m.get('cruder_http_requests_total'), [
    { labels: { route: 'health', status: '200' }, value: 10 },
    { labels: { route: 'records_list', status: '400' }, value: 2 },
  ]);
  assert.deepEqual(m.get('weird'), [{ labels: { a: 'x"y\\z\n' }, value: 1 }]);
  assert.equal(m.has('not'), false);
  assert.equal(m.has('broken_value'), false);
  assert.equal(total(m, 'cruder_http_requests_total'), 12);
  assert.equal(total(m, 'absent'), 0);
  assert.deepEqual(buckets(m, 'cruder_http_request_duration_seconds'), [
    { le: 0.001, count: 4 },
    { le: 0.01, count: 10 },
    { le: Infinity, count: 12 },
  ]);
});

test('quantile: linear inside the bucket, +Inf answers the last finite bound, empty is null', () => {
  const bs = [
    { le: 1, count: 4 },
    { le: 2, count: 8 },
    { le: Infinity, count: 10 },
  ];
  assert.equal(quantile(0.5, bs), 1.25);
  assert.equal(quantile(0.25, bs), 0.625);
  assert.equal(quantile(0.8, bs), 2);
  assert.equal(quantile(0.99, bs), 2);
  assert.equal(quantile(0.5, []), null);
  assert.equal(quantile(0.5, [{ le: Infinity, count: 0 }]), null);
});

test('bucketDelta: observations between scrapes; a reset keeps the new counts', () => {
  const a = [{ le: 1, count: 4 }, { le: Infinity, count: 5 }];
  const b = [{ le: 1, count: 6 }, { le: Infinity, count: 9 }];
  assert.deepEqual(bucketDelta(b, a), [{ le: 1, count: 2 }, { le: Infinity, count: 4 }]);
  assert.deepEqual(bucketDelta(a, b), a);
  assert.deepEqual(bucketDelta(a, null), a);
});

test('samplePoint: rates, percentiles over the interval, gauges, mean batch', () => {
  const before = parseMetrics(SCRAPE_1);
  const now = parseMetrics(SCRAPE_2);
  const p = samplePoint(now, before, 2);
  assert.equal(p.rps, 10);
  assert.equal(p.conns, 5);
  assert.equal(p.commits, 2);
  assert.equal(p.batch, 5);
  // 20 new observations: 10 under 1 ms, 10 more under 10 ms.
  assert.equal(p.p50, 1);
  assert.ok(Math.abs(p.p90 - 8.2) < 1e-9, String(p.p90));
  const first = samplePoint(before, null, 0);
  assert.equal(first.rps, null);
  assert.equal(first.batch, null);
  assert.equal(first.conns, 3);
});
