// The gateway's health checks, upstream timeouts, retries and bounded-load
// hashing as a black box (docs/gateway.md, "Load balancing, health checks,
// retries" and "Upstream connections and timeouts"), against small node
// upstreams that count what reaches them.
//
// Health states are read from /metrics at known points of the checker's
// rounds rather than after fixed sleeps: a health endpoint that fetches the
// gauge before it answers sees the state left by every earlier probe and by
// none later (the checker votes at the end of each round, and runs one round
// at a time). So each check asserts a whole trace of states, which a wrong
// rise or fall count cannot pass however fast or slow the machine is.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { after, describe, test } from 'node:test';
import { startGateway } from './lib/gateway.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const closers = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

async function listen(srv) {
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const addr = `127.0.0.1:${srv.address().port}`;
  closers.push(
    () =>
      new Promise((r) => {
        srv.closeAllConnections?.();
        srv.close(() => r());
      }),
  );
  return addr;
}

// An HTTP upstream answering {"upstream": name} after handler(req, res) has
// had its say (return false to let the default answer); counts requests by
// method, health checks apart.
async function upstream(name, handler) {
  const hits = { total: 0 };
  const srv = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (req.url === '/api/health') {
        res.end('{}');
        return;
      }
      hits.total++;
      hits[req.method] = (hits[req.method] ?? 0) + 1;
      if (handler && handler(req, res) !== false) return;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ upstream: name }));
    });
  });
  srv.keepAliveTimeout = 60_000;
  return { name, addr: await listen(srv), hits };
}

// A TCP upstream that counts connections and does onConn(socket) with each.
async function rawUpstream(onConn) {
  const st = { accepted: 0, closed: 0, sockets: new Set() };
  const srv = net.createServer((s) => {
    st.accepted++;
    st.sockets.add(s);
    s.on('error', () => {});
    s.resume();
    s.on('close', () => {
      st.closed++;
      st.sockets.delete(s);
    });
    onConn(s, st);
  });
  const addr = await listen(srv);
  closers.push(async () => {
    for (const s of st.sockets) s.destroy();
  });
  return { addr, st };
}

// An address where a connect is refused: a port whose listener is closed.
async function refusedAddr() {
  const srv = net.createServer();
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));
  return `127.0.0.1:${port}`;
}

// An address where a connect never completes on loopback: a listener in a
// child process whose event loop is blocked (so nothing is ever accepted),
// its accept queue (backlog 1) filled by our own connections. Linux then
// drops further SYNs, and a connect waits for its caller's timeout.
async function blackholeAddr() {
  const child = spawn(
    process.execPath,
    [
      '-e',
      `const s = require('net').createServer();
       s.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
         process.stdout.write(s.address().port + '\\n');
         Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
       });`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  closers.push(async () => {
    child.kill('SIGKILL');
  });
  const port = await new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      if (out.includes('\n')) resolve(Number(out));
    });
    child.on('exit', () => reject(new Error('blackhole listener exited')));
  });
  const attempt = () =>
    new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.on('error', () => {});
      closers.push(async () => s.destroy());
      const t = setTimeout(() => resolve(false), 500);
      s.on('connect', () => {
        clearTimeout(t);
        resolve(true);
      });
    });
  for (let i = 0; i < 8; i++) {
    if (!(await attempt())) return `127.0.0.1:${port}`;
  }
  throw new Error('could not fill the accept queue of a loopback listener');
}

async function gateway(opts) {
  const gw = await startGateway({
    ...opts,
    settings: { health_interval_ms: 0, ...opts.settings },
  });
  closers.push(() => gw.stop());
  return gw;
}

// Stops the gateway and checks it went cleanly (an ASan build reports and
// fails its exit code).
async function stopClean(gw) {
  const code = await gw.stop();
  assert.equal(code, 0, gw.stderr());
  assert.doesNotMatch(gw.stderr(), /Sanitizer|runtime error:/);
}

async function metrics(gw) {
  const r = await fetch(`${gw.url}/metrics`);
  assert.equal(r.status, 200);
  return r.text();
}

function healthOf(text, upstreamName, addr) {
  const states = ['up', 'down', 'draining'].filter((s) =>
    text.includes(`cruder_gateway_upstream_health{upstream="${upstreamName}",target="${addr}",state="${s}"} 1\n`),
  );
  assert.equal(states.length, 1, `health of ${addr}: ${states}`);
  return states[0];
}

function counter(text, name, labels) {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}} `));
  assert.ok(line, `no ${name}{${labels}} in\n${text}`);
  return Number(line.slice(line.lastIndexOf(' ') + 1));
}

async function waitFor(what, cond, ms = 15_000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

// One request on a connection of its own: {status, body, complete, error}.
function request(gw, path, { method = 'GET', headers = {}, body } = {}) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const req = http.request(`${gw.url}${path}`, { method, headers, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString(), complete: res.complete, ms: Date.now() - t0 }),
      );
      res.on('error', (e) => resolve({ status: res.statusCode, error: e.code, ms: Date.now() - t0 }));
    });
    req.on('error', (e) => resolve({ status: 0, error: e.code, ms: Date.now() - t0 }));
    req.end(body);
  });
}

describe('active health checks', () => {
  test('rise and fall thresholds, resets, a 503 draining and its return, and a refused target, state by state', async () => {
    // S answers its checks with this script (then 200); R refuses every
    // connection. Before its k-th check S reads both gauges: S's shows the
    // votes of its checks 1..k-1. R is checked on its own schedule (a check
    // held by S delays no other), so only its end is known: down long before
    // S's last check.
    const script = [500, 500, 500, 200, 200, 500, 500, 200, 500, 500, 500, 200, 500, 200, 200, 503, 200, 200];
    // rise = 2, fall = 3
    const expectS = [
      'up', 'up', 'up', // three failures...
      'down', 'down', // ...down; two passes...
      'up', 'up', 'up', // ...up; fail, fail, pass: the count starts over
      'up', 'up', 'up', // three fresh failures...
      'down', 'down', 'down', 'down', // ...down; pass, fail, pass, pass: the rise starts over
      'up', // a 503...
      'draining', 'draining', // ...drains at once; two passes...
      'up', // ...bring it back
    ];
    const R = await refusedAddr();
    let gw;
    let ready;
    const gwReady = new Promise((r) => (ready = r));
    const seen = [];
    const srv = http.createServer(async (req, res) => {
      req.resume();
      if (req.url !== '/api/health') {
        res.end('{}');
        return;
      }
      const k = seen.length;
      seen.push(null);
      if (k < expectS.length) {
        await gwReady;
        const m = await metrics(gw);
        seen[k] = [healthOf(m, 'api', S), healthOf(m, 'api', R)];
      }
      res.writeHead(k < script.length ? script[k] : 200);
      res.end('{}');
    });
    const S = await listen(srv);
    gw = await gateway({
      upstreams: { api: [S, R] },
      routes: [['/', 'api']],
      settings: { health_interval_ms: 50, health_timeout_ms: 3000, health_rise: 2, health_fall: 3 },
    });
    ready();
    await waitFor('the whole script', () => seen[expectS.length - 1], 30_000);
    const got = seen.slice(0, expectS.length);
    assert.deepEqual(got.map((x) => x[0]), expectS);
    assert.equal(got.at(-1)[1], 'down', 'R after many refused checks');
    await stopClean(gw);
  });

  test('a target that accepts its check and never answers goes down after fall x health_timeout_ms', async () => {
    const TIMEOUT = 700;
    const FALL = 3;
    let gw;
    let ready;
    const gwReady = new Promise((r) => (ready = r));
    const atAccept = [];
    const H = await rawUpstream((s, st) => {
      atAccept.push(
        gwReady
          .then(() => metrics(gw))
          .then((m) => healthOf(m, 'api', H.addr))
          .catch((e) => `no metrics: ${e.message}`),
      );
    });
    const t0 = Date.now();
    gw = await gateway({
      upstreams: { api: [H.addr] },
      routes: [['/', 'api']],
      settings: { health_interval_ms: 100, health_timeout_ms: TIMEOUT, health_rise: 2, health_fall: FALL },
    });
    ready();
    const downAt = await waitFor('H down', async () =>
      healthOf(await metrics(gw), 'api', H.addr) === 'down' ? Date.now() : 0,
    );
    // Each check held its connection for the whole timeout, and the gateway
    // then closed it; the state it was read in at each connection shows
    // exactly `fall` failures were needed.
    assert.ok(H.st.accepted >= FALL, `${H.st.accepted} checks`);
    const states = await Promise.all(atAccept);
    // (The first is read once the gateway is known to listen, perhaps after
    // the first check ended: it is not asserted.)
    assert.deepEqual(states.slice(1, FALL), ['up', 'up'], JSON.stringify(states));
    assert.ok(states.slice(FALL).every((s) => s === 'down'), JSON.stringify(states));
    assert.ok(downAt - t0 >= FALL * TIMEOUT - 100, `down after ${downAt - t0} ms`);
    // The gateway closed each check's connection as it voted; the upstream
    // sees the FIN a moment later.
    await waitFor(`${FALL} checks closed (${H.st.closed} so far)`, () => H.st.closed >= FALL, 5000);
    await stopClean(gw);
  });
});

describe('upstream timeouts', () => {
  test('a connect that never completes: 504 after connect_timeout_ms, a failure of the target; a GET moves on, a POST does not', async () => {
    const B = await blackholeAddr();
    const G = await upstream('g');
    const CONNECT_MS = 300;
    const gw = await gateway({
      upstreams: { solo: [B], mix: ['balance=round_robin', B, G.addr] },
      routes: [['/solo/', 'solo'], ['/', 'mix']],
      settings: { connect_timeout_ms: CONNECT_MS, first_byte_timeout_ms: 20_000, eject_ms: 1, eject_max_ms: 1 },
    });

    const r = await request(gw, '/solo/x');
    assert.equal(r.status, 504, JSON.stringify(r));
    assert.equal(JSON.parse(r.body).status, 504);
    assert.ok(r.ms >= CONNECT_MS - 20 && r.ms < 10_000, `${r.ms} ms`);
    let m = await metrics(gw);
    const solo = `upstream="solo",target="${B}"`;
    assert.equal(counter(m, 'cruder_gateway_upstream_requests_total', `${solo},class="none"`), 1);
    assert.equal(counter(m, 'cruder_gateway_upstream_ejections_total', solo), 1);
    assert.equal(counter(m, 'cruder_gateway_upstream_in_flight', solo), 0);

    // Round robin over [B, G]: every GET reaches G, after a timed-out
    // connect to B for those that tried B first.
    const gets = [];
    for (let i = 0; i < 4; i++) gets.push(await request(gw, '/x'));
    assert.deepEqual(gets.map((x) => x.status), [200, 200, 200, 200]);
    assert.equal(G.hits.GET, 4);
    const mix = `upstream="mix",target="${B}"`;
    m = await metrics(gw);
    const triedB = counter(m, 'cruder_gateway_upstream_requests_total', `${mix},class="none"`);
    assert.ok(triedB >= 1, `B tried ${triedB} times`);
    assert.equal(counter(m, 'cruder_gateway_upstream_retries_total', mix), triedB);

    // A POST whose connect timed out may not be retried: it was not refused.
    const posts = [];
    for (let i = 0; i < 6; i++) posts.push(await request(gw, '/x', { method: 'POST', body: 'p' }));
    const statuses = posts.map((x) => x.status);
    assert.ok(statuses.every((s) => s === 200 || s === 504), JSON.stringify(statuses));
    assert.ok(statuses.includes(504), JSON.stringify(statuses));
    assert.equal(G.hits.POST ?? 0, statuses.filter((s) => s === 200).length);
    await stopClean(gw);
  });

  test('first byte and idle timeouts: 504 before a head, a cut-off body after one; others are served meanwhile', async () => {
    const mute = await rawUpstream(() => {});
    const stall = await upstream('stall', (req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': '100000' });
      res.write(Buffer.alloc(1000, 'a'));
      return true;
    });
    const G = await upstream('g');
    const gw = await gateway({
      upstreams: { mute: [mute.addr], stall: [stall.addr], ok: [G.addr] },
      routes: [['/mute/', 'mute'], ['/stall/', 'stall'], ['/', 'ok']],
      settings: { first_byte_timeout_ms: 500, upstream_idle_timeout_ms: 500 },
    });

    const mr = request(gw, '/mute/x');
    const other = await request(gw, '/y');
    assert.equal(other.status, 200);
    const r = await mr;
    assert.equal(r.status, 504, JSON.stringify(r));
    assert.ok(r.ms >= 480 && r.ms < 10_000, `${r.ms} ms`);
    assert.equal(mute.st.accepted, 1);

    // The head and 1000 of 100000 bytes, then silence: the client gets what
    // came, then its connection is cut (no clean end of a short body).
    const cut = await new Promise((resolve) => {
      const out = { status: 0, bytes: 0, ended: false };
      const t0 = Date.now();
      const req = http.get(`${gw.url}/stall/x`, { agent: false }, (res) => {
        out.status = res.statusCode;
        out.length = res.headers['content-length'];
        res.on('data', (c) => {
          out.bytes += c.length;
          out.firstByte ??= Date.now();
        });
        res.on('end', () => (out.ended = res.complete));
        res.on('close', () => {
          out.gap = Date.now() - (out.firstByte ?? t0);
          resolve(out);
        });
        res.on('error', () => {});
      });
      req.on('error', () => {});
      // The gateway answers others while that one stalls.
      setTimeout(() => request(gw, '/z').then((x) => (out.meanwhile = x.status)), 100);
    });
    assert.equal(cut.status, 200);
    assert.equal(cut.length, '100000');
    assert.equal(cut.bytes, 1000);
    assert.equal(cut.ended, false);
    assert.ok(cut.gap >= 450 && cut.gap < 10_000, `cut ${cut.gap} ms after the first byte`);
    assert.equal(cut.meanwhile, 200);
    assert.equal((await request(gw, '/after')).status, 200);
    assert.equal(stall.hits.GET, 1, 'a response already begun is never retried');
    await stopClean(gw);
  });
});

describe('retries', () => {
  test('an idempotent request is retried once, on another target; a POST only after a refused connect', async () => {
    const slams = await Promise.all([0, 1, 2].map(() => rawUpstream((s) => s.destroy())));
    const total = () => slams.reduce((n, u) => n + u.st.accepted, 0);
    const G = await upstream('g');
    const R = await refusedAddr();
    const gw = await gateway({
      upstreams: { slam: slams.map((u) => u.addr), refused: ['balance=round_robin', R, G.addr] },
      routes: [['/slam/', 'slam'], ['/', 'refused']],
      settings: { eject_ms: 1, eject_max_ms: 1 },
    });
    // Three targets that each take the connection and close it: the first
    // attempt and one retry, never a third.
    const settle = async (want, what) => {
      await waitFor(`${want} connections (${what})`, () => total() >= want);
      await sleep(300);
      assert.equal(total(), want, what);
    };
    for (let i = 0; i < 3; i++) {
      const r = await request(gw, '/slam/x');
      assert.equal(r.status, 502, JSON.stringify(r));
      await settle(2 * (i + 1), `GET ${i + 1}`);
    }
    for (const method of ['DELETE', 'PUT', 'HEAD']) {
      const before = total();
      assert.equal((await request(gw, '/slam/x', { method, body: method === 'PUT' ? 'x' : undefined })).status, 502);
      await settle(before + 2, method);
    }
    for (let i = 0; i < 3; i++) {
      const before = total();
      assert.equal((await request(gw, '/slam/x', { method: 'POST', body: 'x' })).status, 502);
      await settle(before + 1, `POST ${i + 1}`);
    }
    // Each target was tried (the retry goes to another one).
    assert.ok(slams.every((u) => u.st.accepted > 0), JSON.stringify(slams.map((u) => u.st.accepted)));
    let m = await metrics(gw);
    assert.equal(counter(m, 'cruder_gateway_route_retries_total', 'route="/slam/",upstream="slam"'), 6);

    // Refused: nothing reached R, so even a POST goes on to G.
    for (let i = 0; i < 4; i++) {
      const r = await request(gw, '/p', { method: 'POST', body: `post ${i}` });
      assert.equal(r.status, 200, JSON.stringify(r));
      assert.equal(JSON.parse(r.body).upstream, 'g');
    }
    assert.equal(G.hits.POST, 4);
    m = await metrics(gw);
    const triedR = counter(m, 'cruder_gateway_upstream_requests_total', `upstream="refused",target="${R}",class="none"`);
    assert.ok(triedR >= 1, `R tried ${triedR} times`);
    assert.equal(counter(m, 'cruder_gateway_route_retries_total', 'route="/",upstream="refused"'), triedR);
    await stopClean(gw);
  });
});

describe('consistent hashing with bounded loads', () => {
  test('a key stays on its target until that one carries more than its bound, then the excess goes elsewhere', async () => {
    const held = [];
    const mk = (name) =>
      upstream(name, (req, res) => {
        if (!req.url.startsWith('/hold')) return false;
        held.push({ name, release: () => res.end(JSON.stringify({ upstream: name })) });
        return true;
      });
    const ups = await Promise.all(['a', 'b', 'c'].map(mk));
    const gw = await gateway({
      upstreams: { api: ['balance=hash', 'hash=header:x-key', ...ups.map((u) => u.addr)] },
      routes: [['/', 'api']],
      settings: { hash_load_pct: 100 },
    });
    const who = async (key, path = '/x') => {
      const r = await request(gw, path, { headers: { 'x-key': key } });
      assert.equal(r.status, 200, JSON.stringify(r));
      return JSON.parse(r.body).upstream;
    };

    const owners = new Map();
    for (let k = 0; k < 30; k++) {
      const key = `rec${k}`;
      const first = await who(key);
      for (let i = 0; i < 3; i++) assert.equal(await who(key), first, key);
      owners.set(key, first);
    }
    assert.ok(new Set(owners.values()).size >= 2, JSON.stringify([...owners]));

    // Six requests for one key, each held by its upstream before the next is
    // sent. With a bound of 100% of the mean (ceil((outstanding + 1) / 3)),
    // the owner takes the first, the others the excess: two each.
    const key = 'rec0';
    const owner = owners.get(key);
    const pending = [];
    for (let i = 0; i < 6; i++) {
      pending.push(who(key, `/hold/${i}`));
      await waitFor(`held request ${i}`, () => held.length === i + 1);
    }
    assert.equal(held[0].name, owner);
    const counts = {};
    for (const h of held) counts[h.name] = (counts[h.name] ?? 0) + 1;
    assert.deepEqual(counts, { a: 2, b: 2, c: 2 });
    for (const h of held) h.release();
    await Promise.all(pending);
    // Unloaded again, the key is back on its owner.
    for (let i = 0; i < 3; i++) assert.equal(await who(key), owner);
    await stopClean(gw);
  });
});
