// The gateway's shared cache, one black-box test per requirement of RFC 9111
// (HTTP Caching) and of its companions RFC 5861 (stale-*), RFC 8246
// (immutable), RFC 9211 (Cache-Status) and RFC 9213 (targeted fields), each
// written from the RFC's text and naming its section. A real `cruder
// gateway` sits in front of small node origins that answer each path with
// exact headers and record every request that reaches them.
//
// Staleness comes from the origin's Age field (4.2.3) or max-age=0 rather
// than from sleeping, so the file does not depend on the box's speed; the
// cache counts in whole seconds, so ttl and Age assertions allow a few.
// What gateway_cache.test.mjs already covers (a plain hit, ETag
// revalidation, Vary on Accept-Language, no-store and private, purge,
// coalescing, the pass memo, stale-while-revalidate and stale-if-error on a
// 503) is not repeated here.

import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { startGateway } from './lib/gateway.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const httpDate = (offsetS = 0) => new Date(Date.now() + offsetS * 1000).toUTCString();

// An origin answering each path with the handler registered for it:
// handler(req, n) returns {status, headers, body} (headers may be a flat
// raw array), or null to drop the connection without an answer. n counts
// the path's requests, 1 first. stop() closes the listener (connections are
// then refused), start() opens it again on the same port.
async function origin() {
  const handlers = new Map();
  const log = new Map();
  let listening = false;
  const srv = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const path = req.url.split('?')[0];
      if (!log.has(path)) log.set(path, []);
      const list = log.get(path);
      list.push({ method: req.method, url: req.url, headers: req.headers });
      const fn = handlers.get(path);
      const out = fn ? fn(req, list.length) : { status: 404, body: 'no handler' };
      if (out === null) {
        req.socket.destroy();
        return;
      }
      res.writeHead(out.status ?? 200, out.headers ?? {});
      res.end(out.body ?? '');
    });
  });
  srv.keepAliveTimeout = 60_000;
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  listening = true;
  const port = srv.address().port;
  return {
    addr: `127.0.0.1:${port}`,
    on: (path, fn) => handlers.set(path, fn),
    hits: (path) => (log.get(path) ?? []).length,
    seen: (path) => log.get(path) ?? [],
    last: (path) => (log.get(path) ?? []).at(-1),
    stop: () =>
      new Promise((r) => {
        if (!listening) return r();
        listening = false;
        srv.closeAllConnections();
        srv.close(r);
      }),
    start: () =>
      new Promise((r) => {
        if (listening) return r();
        listening = true;
        srv.listen(port, '127.0.0.1', r);
      }),
  };
}

describe('RFC 9111 shared cache through a real gateway', { timeout: 60_000 }, () => {
  let up; // always answering
  let down; // stopped by the tests that need an unreachable origin
  let gw;

  // One request on its own connection; headers may be an object or a flat
  // raw array (to send a field on two lines), which then needs its own Host.
  const send = (path, { method = 'GET', headers = {}, body } = {}) =>
    new Promise((resolve, reject) => {
      if (Array.isArray(headers)) headers = ['Host', `127.0.0.1:${gw.port}`, ...headers];
      const r = http.request(
        { host: '127.0.0.1', port: gw.port, path, method, headers, agent: false },
        (res) => {
          const chunks = [];
          res.on('data', (c) => chunks.push(c));
          res.on('end', () =>
            resolve({
              status: res.statusCode,
              h: res.headers,
              cs: res.headers['cache-status'],
              body: Buffer.concat(chunks).toString(),
            }),
          );
        },
      );
      r.on('error', reject);
      r.end(body);
    });
  const get = (path, headers = {}) => send(path, { headers });
  const cc = (value) => ({ 'cache-control': value });

  before(async () => {
    up = await origin();
    down = await origin();
    gw = await startGateway({
      upstreams: { o: [up.addr], d: [down.addr] },
      routes: [
        ['/', 'o'],
        ['/down/', 'd'],
      ],
      settings: {
        cache_max_bytes: '1m',
        cache_targeted_field: 'Cruder-Cache-Control',
        health_interval_ms: 0,
        connect_timeout_ms: 1000,
      },
    });
  });
  after(async () => {
    assert.equal(await gw.stop(), 0);
    await up.stop();
    await down.stop();
  });

  // ---- response directives (5.2.2) ----

  test('5.2.2.10 s-maxage: a shared cache uses it over max-age', async () => {
    up.on('/smax/long', (req, n) => ({ headers: cc('max-age=0, s-maxage=60'), body: `long ${n}` }));
    assert.equal((await get('/smax/long')).body, 'long 1');
    const b = await get('/smax/long');
    assert.equal(b.body, 'long 1');
    assert.match(b.cs, /^cruder; hit; ttl=(5[5-9]|60)$/);
    assert.equal(up.hits('/smax/long'), 1);

    // s-maxage=0 makes it stale at once despite max-age=60, and (as it
    // implies proxy-revalidate) a client's max-stale cannot accept it.
    up.on('/smax/zero', (req, n) => ({
      headers: { ...cc('max-age=60, s-maxage=0'), etag: '"z"' },
      body: `zero ${n}`,
    }));
    await get('/smax/zero');
    await get('/smax/zero');
    await get('/smax/zero', cc('max-stale=600'));
    assert.equal(up.hits('/smax/zero'), 3);
    assert.equal(up.last('/smax/zero').headers['if-none-match'], '"z"');
  });

  test('3.5 + 5.2.2.9 public: the answer to a request with Authorization is stored', async () => {
    up.on('/auth/public', (req, n) => ({ headers: cc('public, max-age=60'), body: `pub ${n}` }));
    assert.equal((await get('/auth/public', { authorization: 'Bearer alice' })).body, 'pub 1');
    const b = await get('/auth/public', { authorization: 'Bearer bob' });
    assert.equal(b.body, 'pub 1');
    assert.match(b.cs, /hit/);
    assert.equal(up.hits('/auth/public'), 1);
  });

  test('3.5 Authorization: stored only with public, s-maxage or must-revalidate', async () => {
    const cases = {
      plain: ['max-age=60', false],
      smax: ['s-maxage=60', true],
      mustrev: ['max-age=60, must-revalidate', true],
      // proxy-revalidate is not one of the three directives 3.5 names.
      proxyrev: ['max-age=60, proxy-revalidate', false],
    };
    for (const [name, [value, stored]] of Object.entries(cases)) {
      const path = `/auth/${name}`;
      up.on(path, (req, n) => ({ headers: cc(value), body: `${name} ${n}` }));
      await get(path, { authorization: 'Bearer alice' });
      const b = await get(path, { authorization: 'Bearer alice' });
      assert.equal(up.hits(path), stored ? 1 : 2, `${value}: ${b.cs}`);
      assert.equal(b.body, `${name} ${stored ? 1 : 2}`);
    }
  });

  test('5.2.2.8 proxy-revalidate: a shared cache revalidates a stale response even under max-stale', async () => {
    // Age 100 against max-age=10: stale by 90 s when it arrives (4.2.3).
    up.on('/prx', (req, n) => ({
      headers: { ...cc('max-age=10, proxy-revalidate'), age: '100', etag: '"p"' },
      body: `prx ${n}`,
    }));
    await get('/prx');
    const b = await get('/prx', cc('max-stale=3600'));
    assert.equal(b.body, 'prx 2');
    assert.equal(up.hits('/prx'), 2);
    assert.equal(up.last('/prx').headers['if-none-match'], '"p"');
  });

  test('5.2.2.2 must-revalidate: a stale response is revalidated even under max-stale', async () => {
    up.on('/mr', (req, n) => ({
      headers: { ...cc('max-age=10, must-revalidate'), age: '100', etag: '"m"' },
      body: `mr ${n}`,
    }));
    await get('/mr');
    await get('/mr', cc('max-stale=3600'));
    assert.equal(up.hits('/mr'), 2);
    assert.equal(up.last('/mr').headers['if-none-match'], '"m"');
  });

  // The origin is stopped (connections refused) after storing; 5.2.2.2: "if
  // a cache cannot reach the origin server, it MUST generate a 504 (Gateway
  // Timeout) response", with or without a validator to revalidate with.
  const mustRevalidateDown = async (path, extra) => {
    await down.start();
    down.on(path, (req, n) => ({
      headers: { ...cc('max-age=10, must-revalidate'), age: '100', ...extra },
      body: `down ${n}`,
    }));
    assert.equal((await get(path)).body, 'down 1');
    await down.stop();
    try {
      for (const headers of [{}, cc('max-stale=3600')]) {
        const r = await get(path, headers);
        assert.notEqual(r.body, 'down 1');
        assert.equal(r.status, 504, `got ${r.status} ${r.body}`);
      }
    } finally {
      await down.start();
    }
  };

  test('5.2.2.2 must-revalidate: origin unreachable, a response with a validator: 504, never the stale one', () =>
    mustRevalidateDown('/down/mr-etag', { etag: '"d"' }));

  test('5.2.2.2 must-revalidate: origin unreachable, a response without validators: 504, never the stale one', () =>
    mustRevalidateDown('/down/mr-plain', {}));

  test('5.2.2.3 must-understand: with an understood status code no-store is ignored', async () => {
    up.on('/mu/200', (req, n) => ({
      headers: cc('max-age=60, must-understand, no-store'),
      body: `mu ${n}`,
    }));
    await get('/mu/200');
    const b = await get('/mu/200');
    assert.equal(b.body, 'mu 1');
    assert.match(b.cs, /hit/);
    assert.equal(up.hits('/mu/200'), 1);
  });

  test('5.2.2.3 must-understand: a status code the cache does not understand is not stored', async () => {
    const values = ['max-age=60, must-understand, no-store', 'max-age=60, must-understand'];
    for (const [i, value] of values.entries()) {
      const path = `/mu/299/${i}`;
      up.on(path, (req, n) => ({ status: 299, headers: cc(value), body: `odd ${n}` }));
      await get(path);
      const b = await get(path);
      assert.equal(b.status, 299);
      assert.equal(b.body, 'odd 2', value);
    }
  });

  // RFC 8246 2: during its freshness lifetime an immutable response is not
  // revalidated on a reload (which browsers send as max-age=0); a force
  // reload (no-cache) still goes to the origin.
  test('RFC 8246 2 immutable: a fresh immutable response is served without revalidation on a reload', async () => {
    const h = (v) => ({ ...cc(v), etag: '"i"', age: '30' });
    up.on('/imm', (req, n) => ({ headers: h('max-age=600, immutable'), body: `imm ${n}` }));
    up.on('/mut', (req, n) => ({ headers: h('max-age=600'), body: `mut ${n}` }));
    await get('/imm');
    await get('/mut');
    // A reload (max-age=0, and the responses are 30 s old) revalidates the
    // ordinary response only.
    const i = await get('/imm', cc('max-age=0'));
    assert.equal(i.body, 'imm 1');
    assert.match(i.cs, /^cruder; hit; ttl=/);
    assert.equal(up.hits('/imm'), 1);
    await get('/mut', cc('max-age=0'));
    assert.equal(up.hits('/mut'), 2);
    assert.equal(up.last('/mut').headers['if-none-match'], '"i"');
    await get('/imm', cc('no-cache'));
    assert.equal(up.hits('/imm'), 2);
  });

  test('5.2.2.4 no-cache without field names: stored, and validated with the origin on every use', async () => {
    up.on('/nc', (req, n) => {
      const h = { ...cc('no-cache, max-age=60'), etag: '"nc"' };
      if (req.headers['if-none-match'] === '"nc"') return { status: 304, headers: h };
      return { headers: h, body: `nc ${n}` };
    });
    assert.equal((await get('/nc')).body, 'nc 1');
    for (let i = 2; i <= 3; i++) {
      const r = await get('/nc');
      assert.equal(r.status, 200);
      assert.equal(r.body, 'nc 1');
      assert.match(r.cs, /^cruder; hit; fwd-status=304/);
      assert.equal(up.hits('/nc'), i);
      assert.equal(up.last('/nc').headers['if-none-match'], '"nc"');
    }
  });

  test('5.2.2.4 no-cache="field": the named field is not sent from the stored response', async () => {
    up.on('/ncf', (req, n) => ({
      headers: { ...cc('max-age=60, no-cache="X-Secret"'), 'x-secret': `s${n}`, 'x-other': 'o' },
      body: `ncf ${n}`,
    }));
    const a = await get('/ncf');
    assert.equal(a.h['x-secret'], 's1');
    const b = await get('/ncf');
    assert.equal(b.body, 'ncf 1');
    assert.match(b.cs, /hit/);
    assert.equal(b.h['x-secret'], undefined);
    assert.equal(b.h['x-other'], 'o');
    assert.equal(up.hits('/ncf'), 1);
  });

  test('5.2.2.7 private="field": the rest is stored, the named field is not', async () => {
    up.on('/pvf', (req, n) => ({
      headers: { ...cc('max-age=60, private="X-User"'), 'x-user': `u${n}`, 'x-other': 'o' },
      body: `pvf ${n}`,
    }));
    const a = await get('/pvf');
    assert.equal(a.h['x-user'], 'u1');
    const b = await get('/pvf');
    assert.equal(b.body, 'pvf 1');
    assert.match(b.cs, /hit/);
    assert.equal(b.h['x-user'], undefined);
    assert.equal(b.h['x-other'], 'o');
    assert.equal(up.hits('/pvf'), 1);
  });

  // ---- request directives (5.2.1) ----

  test('5.2.1.4 request no-cache: a stored response is not used without going to the origin', async () => {
    up.on('/rnc', (req, n) => ({ headers: cc('max-age=60'), body: `rnc ${n}` }));
    await get('/rnc');
    const b = await get('/rnc', cc('no-cache'));
    assert.equal(b.body, 'rnc 2');
    assert.match(b.cs, /^cruder; fwd=request; fwd-status=200; ttl=(5[5-9]|60); stored$/);
    assert.equal(up.hits('/rnc'), 2);
    // The new answer replaced the stored one.
    assert.equal((await get('/rnc')).body, 'rnc 2');
    assert.equal(up.hits('/rnc'), 2);
  });

  test('5.2.1.5 request no-store: the answer to it is not stored', async () => {
    up.on('/rns', (req, n) => ({ headers: cc('max-age=60'), body: `rns ${n}` }));
    assert.equal((await get('/rns', cc('no-store'))).body, 'rns 1');
    assert.equal((await get('/rns')).body, 'rns 2');
    assert.equal((await get('/rns')).body, 'rns 2');
    assert.equal(up.hits('/rns'), 2);
  });

  test('5.2.1.1 request max-age: a response older than it is not used', async () => {
    up.on('/rma', (req, n) => ({ headers: { ...cc('max-age=600'), age: '100' }, body: `rma ${n}` }));
    await get('/rma');
    const ok = await get('/rma', cc('max-age=300'));
    assert.equal(ok.body, 'rma 1');
    assert.equal(up.hits('/rma'), 1);
    const old = await get('/rma', cc('max-age=50'));
    assert.equal(old.body, 'rma 2');
    assert.match(old.cs, /fwd=request/);
    assert.equal(up.hits('/rma'), 2);
  });

  test('5.2.1.2 max-stale: a stale response is used within the staleness the client accepts', async () => {
    // Stale by about 90 s on arrival.
    up.on('/mst', (req, n) => ({ headers: { ...cc('max-age=10'), age: '100' }, body: `mst ${n}` }));
    await get('/mst');
    const a = await get('/mst', cc('max-stale=600'));
    assert.equal(a.body, 'mst 1');
    assert.match(a.cs, /^cruder; hit; ttl=-(8\d|9\d)$/);
    const any = await get('/mst', cc('max-stale'));
    assert.equal(any.body, 'mst 1');
    assert.equal(up.hits('/mst'), 1);
    const tight = await get('/mst', cc('max-stale=30'));
    assert.equal(tight.body, 'mst 2');
    assert.match(tight.cs, /fwd=stale/);
    assert.equal(up.hits('/mst'), 2);
  });

  test('5.2.1.3 min-fresh: a response fresh for less than asked is not used', async () => {
    up.on('/mfr', (req, n) => ({ headers: cc('max-age=600'), body: `mfr ${n}` }));
    await get('/mfr');
    assert.equal((await get('/mfr', cc('min-fresh=60'))).body, 'mfr 1');
    assert.equal(up.hits('/mfr'), 1);
    const b = await get('/mfr', cc('min-fresh=1000'));
    assert.equal(b.body, 'mfr 2');
    assert.match(b.cs, /fwd=request/);
    assert.equal(up.hits('/mfr'), 2);
  });

  test('5.2.1.7 only-if-cached: a stored fresh response, else 504 without contacting the origin', async () => {
    up.on('/oic/fresh', (req, n) => ({ headers: cc('max-age=60'), body: `oic ${n}` }));
    up.on('/oic/stale', (req, n) => ({ headers: { ...cc('max-age=10'), age: '100' }, body: `st ${n}` }));
    up.on('/oic/none', (req, n) => ({ headers: cc('max-age=60'), body: `none ${n}` }));
    await get('/oic/fresh');
    await get('/oic/stale');
    const hit = await get('/oic/fresh', cc('only-if-cached'));
    assert.equal(hit.status, 200);
    assert.equal(hit.body, 'oic 1');
    assert.match(hit.cs, /hit/);
    const none = await get('/oic/none', cc('only-if-cached'));
    assert.equal(none.status, 504);
    const stale = await get('/oic/stale', cc('only-if-cached'));
    assert.equal(stale.status, 504);
    // With max-stale the stale one satisfies it.
    const ok = await get('/oic/stale', cc('only-if-cached, max-stale=600'));
    assert.equal(ok.status, 200);
    assert.equal(ok.body, 'st 1');
    assert.equal(up.hits('/oic/fresh'), 1);
    assert.equal(up.hits('/oic/stale'), 1);
    assert.equal(up.hits('/oic/none'), 0);
  });

  // ---- freshness (4.2) ----

  test('5.3 Expires: a future Expires makes the response fresh; max-age overrides it', async () => {
    up.on('/exp/future', (req, n) => ({
      headers: { date: httpDate(), expires: httpDate(120) },
      body: `f ${n}`,
    }));
    up.on('/exp/maxage', (req, n) => ({
      headers: { ...cc('max-age=60'), date: httpDate(), expires: httpDate(-3600) },
      body: `m ${n}`,
    }));
    for (const [path, ttl] of [
      ['/exp/future', /^cruder; hit; ttl=1(1[5-9]|20)$/],
      ['/exp/maxage', /^cruder; hit; ttl=(5[5-9]|60)$/],
    ]) {
      await get(path);
      const b = await get(path);
      assert.match(b.cs, ttl, path);
      assert.equal(up.hits(path), 1, path);
    }
  });

  test('5.3 Expires: a malformed or past Expires means stale', async () => {
    const values = { zero: '0', junk: 'next tuesday', past: httpDate(-60) };
    for (const [name, value] of Object.entries(values)) {
      const path = `/exp/${name}`;
      const etag = `"${name}"`;
      up.on(path, (req, n) => ({ headers: { expires: value, etag }, body: `${name} ${n}` }));
      await get(path);
      await get(path);
      assert.equal(up.hits(path), 2, name);
      // Stored (it has a validator) but stale: the second use is a revalidation.
      assert.equal(up.last(path).headers['if-none-match'], etag, name);
    }
  });

  test('4.2.3 Age: the origin\'s Age counts towards the response\'s age', async () => {
    up.on('/age/40', (req, n) => ({ headers: { ...cc('max-age=100'), age: '40' }, body: `a ${n}` }));
    await get('/age/40');
    const b = await get('/age/40');
    assert.match(b.cs, /^cruder; hit; ttl=(5[5-9]|60)$/);
    const age = Number(b.h.age);
    assert.ok(age >= 40 && age <= 45, `Age ${b.h.age}`);
    // Older than its lifetime on arrival: stored, but stale at once.
    up.on('/age/old', (req, n) => ({ headers: { ...cc('max-age=30'), age: '40' }, body: `o ${n}` }));
    await get('/age/old');
    const c = await get('/age/old');
    assert.equal(c.body, 'o 2');
    assert.match(c.cs, /fwd=stale/);
  });

  test('4.2 malformed Age or Date: the response is treated as stale (as docs/gateway.md says)', async () => {
    const cases = { age: { age: 'abc' }, age2: { age: '-5' }, date: { date: 'yesterday at noon' } };
    for (const [name, extra] of Object.entries(cases)) {
      const path = `/malformed/${name}`;
      const etag = `"${name}"`;
      up.on(path, (req, n) => ({
        headers: { ...cc('max-age=600'), etag, ...extra },
        body: `${name} ${n}`,
      }));
      await get(path);
      const b = await get(path);
      assert.equal(up.hits(path), 2, name);
      assert.equal(up.last(path).headers['if-none-match'], etag, name);
      assert.equal(b.status, 200);
    }
  });

  test('4.2.2 heuristic freshness from Last-Modified, for a status code cacheable by default', async () => {
    const lm = httpDate(-10 * 86400);
    up.on('/heur/200', (req, n) => ({
      headers: { date: httpDate(), 'last-modified': lm },
      body: `h ${n}`,
    }));
    up.on('/heur/404', (req, n) => ({
      status: 404,
      headers: { 'last-modified': lm },
      body: `h404 ${n}`,
    }));
    for (const path of ['/heur/200', '/heur/404']) {
      await get(path);
      const b = await get(path);
      // A tenth of the 10 days since the last change, capped at a day.
      assert.match(b.cs, /^cruder; hit; ttl=86(39\d|400)$/, path);
      assert.equal(up.hits(path), 1, path);
    }
  });

  test('4.2.2 no heuristic freshness without Last-Modified, nor for a status not cacheable by default', async () => {
    up.on('/heur/none', (req, n) => ({ body: `none ${n}` }));
    up.on('/heur/403', (req, n) => ({
      status: 403,
      headers: { 'last-modified': httpDate(-86400) },
      body: `f ${n}`,
    }));
    up.on('/heur/302', (req, n) => ({
      status: 302,
      headers: { location: '/elsewhere', 'last-modified': httpDate(-86400) },
      body: `r ${n}`,
    }));
    for (const path of ['/heur/none', '/heur/403', '/heur/302']) {
      await get(path);
      await get(path);
      assert.equal(up.hits(path), 2, path);
    }
  });

  // ---- storing (3) ----

  test('3 storability by status code: 404 with max-age and 500 with max-age are stored, 206 is not', async () => {
    up.on('/st/404', (req, n) => ({ status: 404, headers: cc('max-age=60'), body: `nf ${n}` }));
    up.on('/st/500', (req, n) => ({ status: 500, headers: cc('max-age=60'), body: `err ${n}` }));
    up.on('/st/206', (req, n) => ({
      status: 206,
      headers: { ...cc('max-age=60'), 'content-range': 'bytes 0-3/10' },
      body: `p${n}xx`.slice(0, 4),
    }));
    for (const [path, stored] of [
      ['/st/404', true],
      ['/st/500', true],
      ['/st/206', false],
    ]) {
      const a = await get(path);
      const b = await get(path);
      assert.equal(b.status, a.status, path);
      assert.equal(up.hits(path), stored ? 1 : 2, path);
      if (stored) assert.match(b.cs, /hit/, path);
    }
  });

  test('3 + 4.2.2 a 500 without explicit freshness is not stored', async () => {
    up.on('/st/500h', (req, n) => ({
      status: 500,
      headers: { 'last-modified': httpDate(-86400) },
      body: `e ${n}`,
    }));
    await get('/st/500h');
    await get('/st/500h');
    assert.equal(up.hits('/st/500h'), 2);
  });

  test('4.1 Vary: * never matches a later request', async () => {
    up.on('/vary/star', (req, n) => ({ headers: { ...cc('max-age=60'), vary: '*' }, body: `star ${n}` }));
    for (let i = 1; i <= 3; i++) assert.equal((await get('/vary/star')).body, `star ${i}`);
  });

  test('4.1 Vary: values match after whitespace, line combining and case normalisation', async () => {
    up.on('/vary/enc', (req, n) => ({
      headers: { ...cc('max-age=60'), vary: 'Accept-Encoding' },
      body: `enc ${req.headers['accept-encoding']} ${n}`,
    }));
    assert.equal((await get('/vary/enc', { 'accept-encoding': 'gzip, br' })).body, 'enc gzip, br 1');
    // Accept-Encoding's codings are case-insensitive and unordered.
    for (const v of ['br,gzip', 'GZIP ,  BR', 'gzip,br']) {
      const r = await get('/vary/enc', { 'accept-encoding': v });
      assert.equal(r.body, 'enc gzip, br 1', v);
    }
    const other = await get('/vary/enc', { 'accept-encoding': 'gzip' });
    assert.equal(other.body, 'enc gzip 2');
    assert.match(other.cs, /^cruder; fwd=vary-miss/);
    assert.equal(up.hits('/vary/enc'), 2);

    // A field of unknown semantics: only whitespace and line combining.
    up.on('/vary/x', (req, n) => ({
      headers: { ...cc('max-age=60'), vary: 'X-Flavour' },
      body: `x ${n}`,
    }));
    assert.equal((await get('/vary/x', { 'x-flavour': 'a, b' })).body, 'x 1');
    assert.equal((await get('/vary/x', { 'x-flavour': 'a,b' })).body, 'x 1');
    assert.equal((await get('/vary/x', ['X-Flavour', 'a', 'X-Flavour', 'b'])).body, 'x 1');
    assert.equal(up.hits('/vary/x'), 1);
    assert.equal((await get('/vary/x', { 'x-flavour': 'A, b' })).body, 'x 2');
    // A request without the field is another variant too.
    assert.equal((await get('/vary/x')).body, 'x 3');
    assert.equal((await get('/vary/x')).body, 'x 3');
    assert.equal((await get('/vary/x', { 'x-flavour': 'a, b' })).body, 'x 1');
    assert.equal(up.hits('/vary/x'), 3);
  });

  // ---- validation (4.3) ----

  test('4.3.1 a stale response with only Last-Modified is validated with If-Modified-Since', async () => {
    const lm = httpDate(-3600);
    up.on('/ims', (req, n) => {
      const h = { ...cc('max-age=0'), 'last-modified': lm };
      if (req.headers['if-modified-since'] === lm) return { status: 304, headers: h };
      return { headers: h, body: `ims ${n}` };
    });
    assert.equal((await get('/ims')).body, 'ims 1');
    const b = await get('/ims');
    assert.equal(b.status, 200);
    assert.equal(b.body, 'ims 1');
    assert.equal(up.last('/ims').headers['if-modified-since'], lm);
    assert.match(b.cs, /^cruder; hit; fwd-status=304/);
  });

  test('3.2 + 4.3.4 a 304 updates the stored header fields', async () => {
    up.on('/upd', (req, n) => {
      if (req.headers['if-none-match'] === '"u"') {
        return { status: 304, headers: { ...cc('max-age=60'), etag: '"u"', 'x-version': '2' } };
      }
      return { headers: { ...cc('max-age=0'), etag: '"u"', 'x-version': '1' }, body: `upd ${n}` };
    });
    const a = await get('/upd');
    assert.equal(a.h['x-version'], '1');
    const b = await get('/upd');
    assert.equal(b.body, 'upd 1');
    assert.equal(b.h['x-version'], '2');
    assert.equal(b.h['cache-control'], 'max-age=60');
    assert.equal(up.hits('/upd'), 2);
    // The new Cache-Control made it fresh: later uses are plain hits.
    const c = await get('/upd');
    assert.equal(c.body, 'upd 1');
    assert.equal(c.h['x-version'], '2');
    assert.match(c.cs, /^cruder; hit; ttl=(5[5-9]|60)$/);
    assert.equal(up.hits('/upd'), 2);
  });

  // ---- invalidation (4.4) ----

  test('4.4 an unsafe method unknown to the cache invalidates the target URI', async () => {
    up.on('/inv/link', (req, n) => ({
      headers: cc('max-age=60'),
      body: req.method === 'GET' ? `l ${n}` : 'linked',
    }));
    await get('/inv/link');
    assert.equal((await get('/inv/link')).body, 'l 1');
    const r = await send('/inv/link', { method: 'LINK' });
    assert.equal(r.body, 'linked');
    assert.match(r.cs, /fwd=method/);
    assert.equal((await get('/inv/link')).body, 'l 3');
  });

  // http-parser 2.9 knows a fixed list of methods (LINK above is one the
  // cache does not, and invalidates): any other is refused before it is
  // forwarded, as RFC 9110 9.1 says of a method the server does not recognise.
  test('RFC 9110 9.1 a method the gateway does not recognise is 501, forwards nothing, invalidates nothing', async () => {
    up.on('/inv/frob', (req, n) => ({ headers: cc('max-age=60'), body: `f ${n}` }));
    await get('/inv/frob');
    assert.equal((await get('/inv/frob')).body, 'f 1');
    const r = await send('/inv/frob', { method: 'FROBNICATE' });
    assert.equal(r.status, 501);
    assert.deepEqual(JSON.parse(r.body), {
      status: 501,
      message: 'The request method is not implemented.',
      data: {},
    });
    assert.equal(up.hits('/inv/frob'), 1);
    assert.equal((await get('/inv/frob')).body, 'f 1');
  });

  test('4.4 Location and Content-Location of the answer are invalidated, same host only', async () => {
    const host = `127.0.0.1:${gw.port}`;
    const paths = ['/inv/a', '/inv/b', '/inv/dir/c', '/inv/keep'];
    for (const p of paths) up.on(p, (req, n) => ({ headers: cc('max-age=60'), body: `${p} ${n}` }));
    up.on('/inv/post', () => ({
      status: 201,
      headers: { location: '/inv/a', 'content-location': `http://${host}/inv/b` },
      body: 'made',
    }));
    up.on('/inv/dir/post', () => ({ status: 303, headers: { location: 'c' }, body: '' }));
    up.on('/inv/elsewhere', () => ({
      status: 200,
      headers: {
        location: 'http://other.example/inv/keep',
        'content-location': '//other.example/inv/keep',
      },
      body: 'moved',
    }));
    for (const p of paths) await get(p);
    assert.equal((await send('/inv/post', { method: 'POST', body: 'x' })).status, 201);
    assert.equal((await send('/inv/elsewhere', { method: 'PUT', body: 'x' })).status, 200);
    assert.equal((await get('/inv/a')).body, '/inv/a 2');
    assert.equal((await get('/inv/b')).body, '/inv/b 2');
    assert.equal((await get('/inv/keep')).body, '/inv/keep 1');
    // A relative reference is resolved against the target URI.
    assert.equal((await send('/inv/dir/post', { method: 'POST', body: 'x' })).status, 303);
    assert.equal((await get('/inv/dir/c')).body, '/inv/dir/c 2');
  });

  test('4.4 + RFC 3986 5.2 a relative Location with dot segments is resolved before invalidating', async () => {
    up.on('/inv/up', (req, n) => ({ headers: cc('max-age=60'), body: `up ${n}` }));
    up.on('/inv/sub/post', () => ({ status: 201, headers: { location: '../up' }, body: 'made' }));
    await get('/inv/up');
    assert.equal((await send('/inv/sub/post', { method: 'POST', body: 'x' })).status, 201);
    assert.equal((await get('/inv/up')).body, 'up 2');
  });

  test('4.4 an unsafe request answered with an error invalidates nothing', async () => {
    up.on('/inv/err', (req, n) =>
      req.method === 'GET' ? { headers: cc('max-age=60'), body: `e ${n}` } : { status: 409, body: 'conflict' },
    );
    await get('/inv/err');
    assert.equal((await send('/inv/err', { method: 'DELETE' })).status, 409);
    assert.equal((await get('/inv/err')).body, 'e 1');
  });

  // 4: the stored response's method (GET) allows its use for a HEAD, which
  // carries the fields a GET would (RFC 9110 9.3.2).
  test('4 + RFC 9110 9.3.2 HEAD is answered from a stored GET with its fields and no body', async () => {
    up.on('/head', (req, n) => ({
      headers: { ...cc('max-age=60'), etag: '"h"', 'x-a': 'b' },
      body: `head body ${n}`,
    }));
    await get('/head');
    const h = await send('/head', { method: 'HEAD' });
    assert.equal(h.status, 200);
    assert.equal(h.body, '');
    assert.equal(h.h.etag, '"h"');
    assert.equal(h.h['x-a'], 'b');
    assert.equal(h.h['content-length'], String('head body 1'.length));
    assert.match(h.cs, /hit/);
    assert.equal(up.hits('/head'), 1);
  });

  // ---- RFC 5861 ----

  test('RFC 5861 3 stale-while-revalidate: past its window the response is not served stale', async () => {
    up.on('/swr/old', (req, n) => ({
      headers: { ...cc('max-age=1, stale-while-revalidate=5'), age: '100' },
      body: `swr ${n}`,
    }));
    await get('/swr/old');
    const b = await get('/swr/old');
    assert.equal(b.body, 'swr 2');
    assert.match(b.cs, /fwd=stale/);
  });

  test('RFC 5861 3 stale-while-revalidate: served stale at once, refreshed in the background', async () => {
    up.on('/swr/in', (req, n) => ({
      headers: { ...cc('max-age=1, stale-while-revalidate=600'), age: '100' },
      body: `swr ${n}`,
    }));
    await get('/swr/in');
    const s = await get('/swr/in');
    assert.equal(s.body, 'swr 1');
    assert.match(s.cs, /^cruder; hit; ttl=-\d+$/);
    for (let i = 0; i < 250 && up.hits('/swr/in') < 2; i++) await sleep(20);
    assert.equal(up.hits('/swr/in'), 2);
    // The refresh replaces the stored response once it is complete.
    let body;
    for (let i = 0; i < 100; i++) {
      body = (await get('/swr/in', cc('max-stale=3600'))).body;
      if (body !== 'swr 1') break;
      await sleep(20);
    }
    assert.equal(body, 'swr 2');
  });

  test('RFC 5861 4 stale-if-error: served stale when the origin cannot be reached, not beyond its window', async () => {
    await down.start();
    down.on('/down/sie', (req, n) => ({
      headers: { ...cc('max-age=1, stale-if-error=600'), age: '100' },
      body: `sie ${n}`,
    }));
    down.on('/down/sie-short', (req, n) => ({
      headers: { ...cc('max-age=1, stale-if-error=5'), age: '100' },
      body: `short ${n}`,
    }));
    await get('/down/sie');
    await get('/down/sie-short');
    await down.stop();
    try {
      const r = await get('/down/sie');
      assert.equal(r.status, 200);
      assert.equal(r.body, 'sie 1');
      assert.match(r.cs, /detail=stale-if-error/);
      const short = await get('/down/sie-short');
      assert.ok(short.status >= 500, `got ${short.status}`);
      assert.notEqual(short.body, 'short 1');
    } finally {
      await down.start();
    }
  });

  test('RFC 5861 4 stale-if-error as a request directive', async () => {
    up.on('/sie/req', (req, n) =>
      n === 1
        ? { headers: { ...cc('max-age=1'), age: '100' }, body: `ok ${n}` }
        : { status: 503, body: 'unavailable' },
    );
    await get('/sie/req');
    const r = await get('/sie/req', cc('stale-if-error=600'));
    assert.equal(r.status, 200);
    assert.equal(r.body, 'ok 1');
    assert.match(r.cs, /detail=stale-if-error/);
    // Without it the error goes through.
    assert.equal((await get('/sie/req')).status, 503);
  });

  test('RFC 5861 4 stale-if-error covers 500, 502, 503 and 504 answers, and no others', async () => {
    for (const status of [500, 502, 503, 504, 404]) {
      const path = `/sie/status/${status}`;
      up.on(path, (req, n) =>
        n === 1
          ? { headers: { ...cc('max-age=1, stale-if-error=600'), age: '100' }, body: `ok ${n}` }
          : { status, body: `status ${status}` },
      );
      await get(path);
      const r = await get(path);
      if (status === 404) {
        assert.equal(r.status, 404);
        assert.equal(r.body, 'status 404');
      } else {
        assert.equal(r.status, 200, `${status}`);
        assert.equal(r.body, 'ok 1', `${status}`);
      }
    }
  });

  // 4.2.4: a cache MUST NOT generate a stale response when must-revalidate,
  // no-cache or s-maxage (proxy-revalidate) prohibits it; RFC 5861 gives way.
  test('4.2.4 must-revalidate, no-cache and s-maxage forbid stale-while-revalidate and stale-if-error', async () => {
    const values = {
      mr: 'max-age=1, must-revalidate',
      nc: 'no-cache, max-age=1',
      sm: 's-maxage=1',
    };
    for (const [name, value] of Object.entries(values)) {
      const swr = `/forbid/swr/${name}`;
      const sie = `/forbid/sie/${name}`;
      up.on(swr, (req, n) => ({
        headers: { ...cc(`${value}, stale-while-revalidate=600`), age: '100' },
        body: `swr ${n}`,
      }));
      up.on(sie, (req, n) =>
        n === 1
          ? { headers: { ...cc(`${value}, stale-if-error=600`), age: '100' }, body: `ok ${n}` }
          : { status: 503, body: 'unavailable' },
      );
      await get(swr);
      assert.equal((await get(swr)).body, 'swr 2', value);
      await get(sie);
      assert.equal((await get(sie)).status, 503, value);
      assert.equal((await get(sie, cc('stale-if-error=600'))).status, 503, value);
    }
  });

  // ---- RFC 9213 targeted fields ----

  test('RFC 9213 2.2 CDN-Cache-Control overrides Cache-Control and Expires, and is forwarded', async () => {
    up.on('/cdn/store', (req, n) => ({
      headers: { ...cc('no-store'), 'cdn-cache-control': 'max-age=60', expires: '0' },
      body: `cdn ${n}`,
    }));
    up.on('/cdn/nostore', (req, n) => ({
      headers: { ...cc('max-age=60'), 'cdn-cache-control': 'no-store' },
      body: `nos ${n}`,
    }));
    const a = await get('/cdn/store');
    // 3.1: a CDN cache may forward it (downstream CDNs use it too); this one does.
    assert.equal(a.h['cdn-cache-control'], 'max-age=60');
    assert.equal(a.h['cache-control'], 'no-store');
    const b = await get('/cdn/store');
    assert.equal(b.body, 'cdn 1');
    assert.match(b.cs, /^cruder; hit; ttl=(5[5-9]|60)$/);
    assert.equal(b.h['cache-control'], 'no-store');
    await get('/cdn/nostore');
    assert.equal((await get('/cdn/nostore')).body, 'nos 2');
  });

  test('RFC 9213 2.1 an invalid targeted field is ignored', async () => {
    // A trailing comma is not a Structured Field Dictionary: Cache-Control rules.
    up.on('/cdn/bad', (req, n) => ({
      headers: { ...cc('no-store'), 'cdn-cache-control': 'max-age=60,' },
      body: `bad ${n}`,
    }));
    await get('/cdn/bad');
    assert.equal((await get('/cdn/bad')).body, 'bad 2');
  });

  test('RFC 9213 2.2 the gateway-specific targeted field comes first and is not forwarded', async () => {
    up.on('/tgt/first', (req, n) => ({
      headers: {
        ...cc('max-age=60'),
        'cdn-cache-control': 'max-age=60',
        'cruder-cache-control': 'no-store',
      },
      body: `first ${n}`,
    }));
    up.on('/tgt/store', (req, n) => ({
      headers: {
        ...cc('no-store'),
        'cdn-cache-control': 'no-store',
        'cruder-cache-control': 'max-age=60',
      },
      body: `store ${n}`,
    }));
    const a = await get('/tgt/first');
    assert.equal(a.h['cruder-cache-control'], undefined);
    assert.equal((await get('/tgt/first')).body, 'first 2');
    await get('/tgt/store');
    const b = await get('/tgt/store');
    assert.equal(b.body, 'store 1');
    assert.equal(b.h['cruder-cache-control'], undefined);
    assert.equal(b.h['cdn-cache-control'], 'no-store');
  });

  // ---- RFC 9211 Cache-Status ----

  // Collapsed requests are checked in gateway_cache.test.mjs.
  test('RFC 9211 2 Cache-Status: hit, uri-miss, vary-miss, stale and method', async () => {
    up.on('/cs', (req, n) => ({ headers: { ...cc('max-age=60'), vary: 'X-V' }, body: `cs ${n}` }));
    assert.equal((await get('/cs', { 'x-v': '1' })).cs, 'cruder; fwd=uri-miss; fwd-status=200; stored');
    assert.match((await get('/cs', { 'x-v': '1' })).cs, /^cruder; hit; ttl=(5[5-9]|60)$/);
    assert.equal((await get('/cs', { 'x-v': '2' })).cs, 'cruder; fwd=vary-miss; fwd-status=200; stored');
    up.on('/cs/post', () => ({ body: 'posted' }));
    // fwd-status is optional (2.3).
    const post = await send('/cs/post', { method: 'POST', body: 'x' });
    assert.match(post.cs, /^cruder; fwd=method(; fwd-status=200)?$/);
    up.on('/cs/stale', (req, n) => ({ headers: { ...cc('max-age=10'), age: '100' }, body: `st ${n}` }));
    await get('/cs/stale');
    assert.match((await get('/cs/stale')).cs, /^cruder; fwd=stale; fwd-status=200; ttl=-\d+; stored$/);
    assert.match((await get('/cs/stale', cc('max-stale=600'))).cs, /^cruder; hit; ttl=-\d+$/);
  });
});
