// The gateway's load balancing as a black box, against small node upstreams
// that say who answered: the policies, active and passive health checks,
// draining, retries, reload on SIGHUP, and /metrics.

import assert from 'node:assert/strict';
import http from 'node:http';
import { after, describe, test } from 'node:test';
import { startGateway } from './lib/gateway.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const closers = [];
after(async () => {
  for (const c of closers) await c();
});

// handler(req, res, state) may answer; by default {"upstream": name}. state.health
// is the status /api/health answers.
async function upstream(name, handler) {
  const state = { health: 200, hits: 0 };
  const srv = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (req.url === '/api/health') {
        res.writeHead(state.health, { 'content-type': 'application/json' });
        res.end('{}');
        return;
      }
      state.hits++;
      if (handler && handler(req, res, state) !== false) return;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ upstream: name }));
    });
  });
  srv.keepAliveTimeout = 60_000;
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const close = () =>
    new Promise((r) => {
      srv.closeAllConnections();
      srv.close(() => r());
    });
  closers.push(close);
  return { name, addr: `127.0.0.1:${srv.address().port}`, state, close };
}

async function who(gw, path = '/x', init = {}) {
  const r = await fetch(`${gw.url}${path}`, init);
  const body = await r.text();
  return { status: r.status, upstream: r.status === 200 ? JSON.parse(body).upstream : null };
}

async function tally(gw, n, path = '/x') {
  const counts = {};
  for (let i = 0; i < n; i++) {
    const { upstream: u } = await who(gw, path);
    counts[u] = (counts[u] ?? 0) + 1;
  }
  return counts;
}

async function gateway(ups, settings = {}, balance = '') {
  const gw = await startGateway({
    upstreams: { api: [...(balance ? [balance] : []), ...ups.map((u) => u.addr)] },
    routes: [['/', 'api']],
    settings: { health_interval_ms: 0, ...settings },
  });
  closers.push(() => gw.stop());
  return gw;
}

describe('gateway balancing policies', () => {
  test('round robin takes the targets in turn', async () => {
    const ups = await Promise.all(['a', 'b', 'c'].map((n) => upstream(n)));
    const gw = await gateway(ups, {}, 'balance=round_robin');
    const seq = [];
    for (let i = 0; i < 6; i++) seq.push((await who(gw)).upstream);
    assert.deepEqual(seq.slice(3), seq.slice(0, 3));
    assert.deepEqual([...seq.slice(0, 3)].sort(), ['a', 'b', 'c']);
  });

  test('p2c (the default) and least outstanding shun a slow target', async () => {
    for (const balance of ['', 'balance=least_outstanding']) {
      const fast = await upstream('fast');
      const slow = await upstream('slow', (req, res) => {
        setTimeout(() => res.end(JSON.stringify({ upstream: 'slow' })), 150);
      });
      const gw = await gateway([fast, slow], {}, balance);
      // Four clients in closed loops for a second: the slow target holds its
      // requests, so the fast one should take most of them.
      const counts = {};
      const end = Date.now() + 1000;
      const worker = async () => {
        while (Date.now() < end) {
          const r = await who(gw);
          counts[r.upstream] = (counts[r.upstream] ?? 0) + 1;
        }
      };
      await Promise.all([worker(), worker(), worker(), worker()]);
      assert.ok((counts.fast ?? 0) > 4 * (counts.slow ?? 0), `${balance || 'p2c'}: ${JSON.stringify(counts)}`);
    }
  });

  test('hashing on a path segment keeps each record on one target, spread over all', async () => {
    const ups = await Promise.all(['a', 'b', 'c'].map((n) => upstream(n)));
    const gw = await gateway(ups, {}, 'balance=hash hash=path:4');
    const owners = new Set();
    for (let id = 0; id < 30; id++) {
      const path = `/api/collections/posts/records/rec${id}`;
      const first = (await who(gw, path)).upstream;
      for (let k = 0; k < 3; k++) assert.equal((await who(gw, path)).upstream, first, path);
      owners.add(first);
    }
    assert.equal(owners.size, 3);
  });
});

describe('gateway health checks', () => {
  const fast = { health_interval_ms: 100, health_timeout_ms: 200, health_rise: 2, health_fall: 2 };

  test('a target failing its checks gets no traffic, then comes back after rise passes', async () => {
    const ups = await Promise.all(['a', 'b'].map((n) => upstream(n)));
    const gw = await gateway(ups, fast, 'balance=round_robin');
    ups[1].state.health = 500;
    await sleep(500);
    assert.deepEqual(await tally(gw, 6), { a: 6 });
    ups[1].state.health = 200;
    await sleep(500);
    const c = await tally(gw, 6);
    assert.equal(c.b, 3, JSON.stringify(c));
    const m = await (await fetch(`${gw.url}/metrics`)).text();
    assert.match(m, new RegExp(`cruder_gateway_upstream_health\\{upstream="api",target="${ups[1].addr}",state="up"\\} 1`));
  });

  test('a target answering 503 on health drains: in-flight requests finish, no new ones', async () => {
    let release;
    const held = new Promise((r) => (release = r));
    const a = await upstream('a');
    const b = await upstream('b', (req, res) => {
      if (req.url !== '/slow') return false;
      held.then(() => res.end(JSON.stringify({ upstream: 'b' })));
    });
    const gw = await gateway([a, b], fast, 'balance=round_robin');
    // Round robin sends one of two /slow requests to b.
    const slow = [who(gw, '/slow'), who(gw, '/slow')];
    await sleep(100);
    b.state.health = 503;
    await sleep(400);
    assert.deepEqual(await tally(gw, 6), { a: 6 });
    release();
    const done = await Promise.all(slow);
    assert.deepEqual(done.map((r) => r.status), [200, 200]);
    const m = await (await fetch(`${gw.url}/metrics`)).text();
    assert.match(m, /state="draining"\} 1/);
  });

  test('passive: consecutive 5xx eject a target; a trial after the back-off brings it back', async () => {
    const a = await upstream('a');
    const b = await upstream('b', (req, res, st) => {
      if (!st.broken) return false;
      res.writeHead(500);
      res.end('{}');
    });
    b.state.broken = true;
    const gw = await gateway([a, b], { eject_5xx: 2, eject_ms: 400 }, 'balance=round_robin');
    await tally(gw, 6);
    const hitsAfterEject = b.state.hits;
    assert.equal(hitsAfterEject, 2);
    assert.deepEqual(await tally(gw, 6), { a: 6 });
    b.state.broken = false;
    await sleep(450);
    const c = await tally(gw, 6);
    assert.ok(c.b >= 2, JSON.stringify(c));
    const m = await (await fetch(`${gw.url}/metrics`)).text();
    assert.match(m, new RegExp(`cruder_gateway_upstream_ejections_total\\{upstream="api",target="${b.addr}"\\} 1`));
    assert.match(m, new RegExp(`cruder_gateway_upstream_requests_total\\{upstream="api",target="${b.addr}",class="5xx"\\} 2`));
  });

  test('panic: with every target down by its checks, traffic still flows', async () => {
    const ups = await Promise.all(['a', 'b'].map((n) => upstream(n)));
    const gw = await gateway(ups, fast);
    for (const u of ups) u.state.health = 500;
    await sleep(500);
    const c = await tally(gw, 6);
    assert.equal((c.a ?? 0) + (c.b ?? 0), 6);
  });
});

describe('gateway retries', () => {
  test('a GET cut off before its response is retried once elsewhere; a POST is not', async () => {
    const a = await upstream('a', (req) => {
      req.socket.destroy();
    });
    const b = await upstream('b');
    const gw = await gateway([a, b], { eject_ms: 1 }, 'balance=round_robin');
    for (let i = 0; i < 4; i++) assert.equal((await who(gw)).upstream, 'b');
    const posts = [];
    for (let i = 0; i < 4; i++) posts.push((await who(gw, '/x', { method: 'POST', body: 'x' })).status);
    assert.ok(posts.includes(502), JSON.stringify(posts));
    assert.ok(posts.includes(200), JSON.stringify(posts));
    const m = await (await fetch(`${gw.url}/metrics`)).text();
    assert.match(m, /cruder_gateway_route_retries_total\{route="\/",upstream="api"\} [1-9]/);
  });
});

describe('gateway reload on SIGHUP', () => {
  test('targets added and removed; the removed one finishes its request', async () => {
    let release;
    const held = new Promise((r) => (release = r));
    const a = await upstream('a', (req, res) => {
      if (req.url !== '/slow') return false;
      held.then(() => res.end(JSON.stringify({ upstream: 'a' })));
    });
    const b = await upstream('b');
    const gw = await gateway([a]);
    const slow = who(gw, '/slow');
    await sleep(100);
    gw.reload({ upstreams: { api: [b.addr] }, routes: [['/', 'api']], settings: { health_interval_ms: 0 } });
    await sleep(300);
    assert.deepEqual(await tally(gw, 4), { b: 4 });
    release();
    assert.deepEqual(await slow, { status: 200, upstream: 'a' });
    // A broken file keeps the current configuration.
    (await import('node:fs')).writeFileSync(gw.file, 'upstream nope\n');
    gw.proc.kill('SIGHUP');
    await sleep(300);
    assert.deepEqual(await tally(gw, 2), { b: 2 });
    assert.match(gw.stderr(), /reload failed/);
    const m = await (await fetch(`${gw.url}/metrics`)).text();
    assert.match(m, /cruder_gateway_config_generation 2/);
  });
});
