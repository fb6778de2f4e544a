// The shared cache's disk tier through a real gateway: responses read twice
// outlive memory on disk and come back without reaching the upstream; the
// tier stays within its bound and its files go with the gateway.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { startGateway } from './lib/gateway.mjs';
import { cruderBin } from './lib/server.mjs';

const BODY = 8 * 1024;
const TOKEN = 'disk-tier-purge-token-0123';

function bodyOf(p) {
  return p.repeat(Math.ceil(BODY / p.length)).slice(0, BODY);
}

async function origin() {
  const hits = new Map();
  const srv = http.createServer((req, res) => {
    req.resume();
    hits.set(req.url, (hits.get(req.url) ?? 0) + 1);
    res.writeHead(200, { 'cache-control': 'max-age=600', 'content-type': 'text/plain' });
    res.end(bodyOf(req.url));
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  return { srv, hits, port: srv.address().port };
}

const metric = (text, name) => Number(new RegExp(`^cruder_gateway_cache_${name} (\\d+)`, 'm').exec(text)?.[1]);

describe('gateway cache disk tier', () => {
  let up;
  let gw;
  let diskDir;
  const config = (mem, disk) => ({
    upstreams: { o: [`127.0.0.1:${up.port}`] },
    routes: [['/', 'o']],
    settings: {
      cache_max_bytes: mem,
      cache_disk_dir: path.join(diskDir, 'tier'),
      cache_disk_max_bytes: disk,
      cache_purge_token: TOKEN,
    },
  });
  before(async () => {
    up = await origin();
    diskDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cruder-gw-disk-'));
    gw = await startGateway(config('64k', '256k'));
  });
  after(async () => {
    await gw?.stop();
    up?.srv.close();
    if (diskDir) {
      assert.deepEqual(fs.readdirSync(path.join(diskDir, 'tier')), [], 'no file outlives the gateway');
      fs.rmSync(diskDir, { recursive: true, force: true });
    }
  });

  // The metrics once the disk thread has nothing queued or running.
  const settled = async () => {
    for (let i = 0; i < 200; i++) {
      const m = await (await fetch(`${gw.url}/metrics`)).text();
      if (metric(m, 'disk_pending') === 0) return m;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error('the disk tier never settled');
  };

  // One request at a time, each followed by the disk work it caused, so what
  // reaches the disk does not depend on how fast the disk thread runs (when
  // it falls behind, the cache drops victims instead of queueing them).
  const get = async (p) => {
    const r = await fetch(`${gw.url}${p}`);
    const text = await r.text();
    assert.equal(r.status, 200);
    assert.equal(text, bodyOf(p), p);
    await settled();
    return r.headers.get('cache-status') ?? '';
  };

  test('responses read twice outlive memory on disk and come back as hits', async () => {
    const hot = Array.from({ length: 16 }, (_, i) => `/hot/${i}`);
    for (const p of hot) {
      await get(p); // stored
      await get(p); // read again: S3-FIFO keeps it in its main queue
    }
    // Responses read once push everything out of 64 KiB of memory.
    for (let i = 0; i < 40; i++) await get(`/cold/${i}`);
    let m = await settled();
    assert.ok(metric(m, 'disk_demotions_total') >= 8, m);
    assert.ok(metric(m, 'disk_bytes') <= 256 * 1024);
    assert.ok(metric(m, 'bytes') <= 64 * 1024);
    assert.equal(fs.readdirSync(path.join(diskDir, 'tier')).length, metric(m, 'disk_entries'));

    const before = hot.map((p) => up.hits.get(p));
    let hits = 0;
    for (const p of hot) hits += (await get(p)).includes('hit') ? 1 : 0;
    m = await settled();
    assert.ok(metric(m, 'disk_hits_total') >= 8, m);
    assert.ok(hits >= 8, `${hits} of 16 hot responses came back from the cache\n${m}`);
    const reached = hot.filter((p, i) => up.hits.get(p) !== before[i]).length;
    assert.equal(reached, 16 - hits, 'every hit was answered without the upstream');
    assert.equal(metric(m, 'disk_errors_total'), 0);
  });

  test('the disk bound holds, and purges remove responses on disk with their files', async () => {
    const again = Array.from({ length: 40 }, (_, i) => `/again/${i}`);
    for (const p of again) {
      await get(p);
      await get(p);
    }
    for (let i = 40; i < 80; i++) await get(`/cold/${i}`);
    const tierFiles = () => fs.readdirSync(path.join(diskDir, 'tier')).length;
    let m = await settled();
    assert.equal(tierFiles(), metric(m, 'disk_entries'));
    assert.ok(metric(m, 'disk_bytes') <= 256 * 1024, 'the disk bound holds');
    assert.ok(metric(m, 'disk_evictions_total') > 0, m);
    const onDisk = metric(m, 'disk_entries');
    assert.ok(onDisk > 0);

    let purged = 0;
    for (const p of again) {
      const r = await fetch(`${gw.url}${p}`, { method: 'PURGE', headers: { authorization: `Bearer ${TOKEN}` } });
      assert.equal(r.status, 200);
      purged += (await r.json()).purged;
    }
    assert.ok(purged > 0);
    m = await settled();
    assert.equal(tierFiles(), metric(m, 'disk_entries'));
    assert.ok(metric(m, 'disk_entries') < onDisk, 'purged responses left the disk');
    const before = up.hits.get('/again/0');
    await get('/again/0');
    assert.equal(up.hits.get('/again/0'), before + 1, 'a purged response is fetched again');
  });

  test('a reload applies smaller bounds at once', async () => {
    gw.reload(config('32k', '64k'));
    let m = '';
    for (let i = 0; i < 50 && metric(m, 'max_bytes') !== 32 * 1024; i++) {
      await new Promise((r) => setTimeout(r, 100));
      m = await settled();
    }
    assert.equal(metric(m, 'max_bytes'), 32 * 1024);
    assert.equal(metric(m, 'disk_max_bytes'), 64 * 1024);
    assert.ok(metric(m, 'bytes') <= 32 * 1024);
    assert.ok(metric(m, 'disk_bytes') <= 64 * 1024);
    assert.equal(fs.readdirSync(path.join(diskDir, 'tier')).length, metric(m, 'disk_entries'));
  });
});

test('a disk tier directory that cannot be made stops the gateway with the reason', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cruder-gw-disk-bad-'));
  try {
    fs.writeFileSync(path.join(dir, 'file'), 'not a directory');
    const conf = path.join(dir, 'gateway.conf');
    fs.writeFileSync(
      conf,
      [
        'http = 127.0.0.1:0',
        'upstream o 127.0.0.1:9',
        'route / o',
        'cache_max_bytes = 1m',
        `cache_disk_dir = ${path.join(dir, 'file', 'tier')}`,
        'cache_disk_max_bytes = 1m',
        '',
      ].join('\n'),
    );
    const r = spawnSync(cruderBin(), ['gateway', '--config', conf], { encoding: 'utf8', timeout: 10_000 });
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /cache_disk_dir .*file\/tier: Not a directory/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
