// The gateway's shared cache through a real gateway: node upstreams set exact
// Cache-Control / Vary / ETag headers and count what reaches them; a real
// `cruder serve` checks the end-to-end path.

import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { startGateway } from './lib/gateway.mjs';
import { startServer } from './lib/server.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const TOKEN = 'purge-token-0123456789';

// Answers by path; hits counts each path's requests, seen keeps their heads.
async function originUpstream() {
  const hits = new Map();
  const seen = [];
  const state = { failing: false, version: 1, flip: 'no-store' };
  const srv = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const path = req.url.split('?')[0];
      hits.set(path, (hits.get(path) ?? 0) + 1);
      seen.push({ method: req.method, url: req.url, headers: req.headers });
      const n = hits.get(path);
      const send = (status, headers, body) => {
        res.writeHead(status, headers);
        res.end(body);
      };
      if (req.method !== 'GET' && req.method !== 'HEAD') return send(200, {}, 'changed');
      if (path === '/fresh') return send(200, { 'cache-control': 'max-age=60' }, `fresh ${n}`);
      if (path === '/etag') {
        const etag = `"v${state.version}"`;
        const h = { 'cache-control': 'max-age=0, must-revalidate', etag };
        if (req.headers['if-none-match'] === etag) return send(304, h);
        return send(200, h, `etag body v${state.version}`);
      }
      if (path === '/etag-mismatch') {
        // A 304 whose ETag is not the stored one: the cache cannot use it.
        const h = { 'cache-control': 'max-age=0, must-revalidate' };
        if (req.headers['if-none-match']) return send(304, { ...h, etag: `"other${n}"` });
        return send(200, { ...h, etag: `"m${n}"` }, `mismatch body ${n}`);
      }
      if (path === '/vary') {
        const lang = req.headers['accept-language'] ?? 'none';
        return send(200, { 'cache-control': 'max-age=60', vary: 'Accept-Language' }, `lang ${lang} ${n}`);
      }
      if (path === '/no-store') return send(200, { 'cache-control': 'no-store' }, `ns ${n}`);
      if (path === '/flip') return send(200, { 'cache-control': state.flip }, `flip ${n}`);
      if (path === '/private') return send(200, { 'cache-control': 'private, max-age=60' }, `p ${n}`);
      if (path === '/slow') {
        setTimeout(() => send(200, { 'cache-control': 'max-age=60' }, `slow ${n}`), 300);
        return undefined;
      }
      if (path === '/swr') {
        return send(200, { 'cache-control': 'max-age=1, stale-while-revalidate=30' }, `swr ${n}`);
      }
      if (path === '/sie') {
        if (state.failing) return send(503, { 'content-type': 'text/plain' }, 'down');
        return send(200, { 'cache-control': 'max-age=1, stale-if-error=60' }, `sie ${n}`);
      }
      if (path.startsWith('/tagged/')) {
        const tag = path.endsWith('a') ? 'red' : 'blue';
        return send(200, { 'cache-control': 'max-age=60', 'cache-tag': `${tag}, all` }, `${path} ${n}`);
      }
      if (path.startsWith('/big/')) return send(200, { 'cache-control': 'max-age=60' }, 'x'.repeat(10_000));
      if (path === '/targeted') {
        return send(200, { 'cache-control': 'no-store', 'cruder-cache-control': 'max-age=60' }, `t ${n}`);
      }
      return send(404, {}, 'nope');
    });
  });
  srv.keepAliveTimeout = 60_000;
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  return {
    addr: `127.0.0.1:${srv.address().port}`,
    hits: (p) => hits.get(p) ?? 0,
    seen,
    state,
    close: () =>
      new Promise((r) => {
        srv.closeAllConnections();
        srv.close(r);
      }),
  };
}

describe('gateway cache in front of node upstreams', () => {
  let up;
  let gw;
  const get = async (path, headers = {}) => {
    const r = await fetch(`${gw.url}${path}`, { headers });
    return { status: r.status, body: await r.text(), cs: r.headers.get('cache-status'), h: r.headers };
  };
  before(async () => {
    up = await originUpstream();
    gw = await startGateway({
      upstreams: { o: [up.addr] },
      routes: [['/', 'o']],
      settings: {
        cache_max_bytes: '64k',
        cache_max_object_bytes: '16k',
        cache_tag_field: 'Cache-Tag',
        cache_targeted_field: 'Cruder-Cache-Control',
        cache_purge_token: TOKEN,
        health_interval_ms: 0,
      },
    });
  });
  after(async () => {
    assert.equal(await gw.stop(), 0);
    await up.close();
  });

  test('a miss is stored, then served without the upstream', async () => {
    const a = await get('/fresh');
    assert.equal(a.body, 'fresh 1');
    assert.equal(a.cs, 'cruder; fwd=uri-miss; fwd-status=200; stored');
    const b = await get('/fresh');
    assert.equal(b.body, 'fresh 1');
    assert.match(b.cs, /^cruder; hit; ttl=(59|60)$/);
    assert.equal(b.h.get('age') !== null, true);
    assert.equal(up.hits('/fresh'), 1);
    const head = await fetch(`${gw.url}/fresh`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), '7');
    assert.equal(up.hits('/fresh'), 1);
  });

  test('a stale response is revalidated with its ETag and a 304 serves it', async () => {
    const a = await get('/etag');
    assert.equal(a.body, 'etag body v1');
    const b = await get('/etag');
    assert.equal(b.status, 200);
    assert.equal(b.body, 'etag body v1');
    assert.equal(up.hits('/etag'), 2);
    const last = up.seen.filter((s) => s.url === '/etag').at(-1);
    assert.equal(last.headers['if-none-match'], '"v1"');
    assert.match(b.cs, /^cruder; hit; fwd-status=304; ttl=0$/);
    // The client's own validator is answered from the stored response.
    const c = await fetch(`${gw.url}/etag`, { headers: { 'if-none-match': '"v1"' } });
    assert.equal(c.status, 304);
    up.state.version = 2;
    const d = await get('/etag');
    assert.equal(d.body, 'etag body v2');
  });

  test('a 304 for another ETag is not forwarded to a client that sent no validator', async () => {
    assert.equal((await get('/etag-mismatch')).body, 'mismatch body 1');
    const b = await get('/etag-mismatch');
    assert.equal(b.status, 200);
    assert.equal(b.body, 'mismatch body 3');
    const last = up.seen.filter((s) => s.url === '/etag-mismatch').at(-1);
    assert.equal(last.headers['if-none-match'], undefined);
  });

  test('Vary keeps one response per variant', async () => {
    assert.equal((await get('/vary', { 'accept-language': 'en' })).body, 'lang en 1');
    assert.equal((await get('/vary', { 'accept-language': 'fr' })).body, 'lang fr 2');
    const en = await get('/vary', { 'accept-language': 'en' });
    const fr = await get('/vary', { 'accept-language': 'fr' });
    assert.equal(en.body, 'lang en 1');
    assert.equal(fr.body, 'lang fr 2');
    assert.match(fr.cs, /hit/);
    assert.equal(up.hits('/vary'), 2);
  });

  test('no-store and private responses are never served from the cache', async () => {
    for (let i = 1; i <= 3; i++) {
      assert.equal((await get('/no-store')).body, `ns ${i}`);
      assert.equal((await get('/private')).body, `p ${i}`);
    }
    assert.equal(up.hits('/no-store'), 3);
    assert.equal(up.hits('/private'), 3);
  });

  test('a URL whose answer cannot be stored skips the lookup for a second, then is cached once it can be', async () => {
    const t0 = Date.now();
    const a = await get('/flip');
    assert.equal(a.body, 'flip 1');
    assert.match(a.cs, /fwd=uri-miss/);
    assert.doesNotMatch(a.cs, /stored/);
    up.state.flip = 'max-age=60';
    const b = await get('/flip');
    assert.equal(b.body, 'flip 2');
    // Within the memo's second the cache is not asked, so nothing is stored.
    if (Date.now() - t0 < 800) assert.equal(b.cs, 'cruder; fwd=bypass; fwd-status=200');
    await sleep(1200);
    const c = await get('/flip');
    assert.equal(c.body, 'flip 3');
    assert.match(c.cs, /stored/);
    const d = await get('/flip');
    assert.equal(d.body, 'flip 3');
    assert.match(d.cs, /hit/);
    assert.equal(up.hits('/flip'), 3);
  });

  test('only-if-cached is never bypassed by the memo', async () => {
    await get('/no-store');
    const r = await get('/no-store', { 'cache-control': 'only-if-cached' });
    assert.equal(r.status, 504);
  });

  test('the targeted field overrides Cache-Control and is not forwarded', async () => {
    const a = await get('/targeted');
    assert.equal(a.h.get('cruder-cache-control'), null);
    assert.equal(a.h.get('cache-control'), 'no-store');
    const b = await get('/targeted');
    assert.equal(b.body, 't 1');
    assert.equal(up.hits('/targeted'), 1);
  });

  test('POST, PUT and DELETE of the URI invalidate it', async () => {
    for (const method of ['POST', 'PUT', 'DELETE']) {
      const path = `/fresh?inv=${method}`;
      await get(path);
      await get(path);
      const before = up.hits('/fresh');
      const r = await fetch(`${gw.url}${path}`, { method, body: method === 'DELETE' ? undefined : 'x' });
      assert.equal(await r.text(), 'changed');
      const c = await get(path);
      assert.match(c.cs, /fwd=uri-miss/, method);
      assert.equal(up.hits('/fresh'), before + 2, method);
    }
  });

  test('concurrent misses of one URL make one upstream request', async () => {
    const all = await Promise.all(Array.from({ length: 10 }, () => get('/slow')));
    assert.equal(up.hits('/slow'), 1);
    for (const r of all) assert.equal(r.body, 'slow 1');
    assert.equal(all.filter((r) => /collapsed/.test(r.cs)).length, 9);
  });

  test('stale-while-revalidate answers at once and refreshes behind', async () => {
    assert.equal((await get('/swr')).body, 'swr 1');
    await sleep(2100);
    const s = await get('/swr');
    assert.equal(s.body, 'swr 1');
    assert.match(s.cs, /^cruder; hit; ttl=-/);
    for (let i = 0; i < 50 && up.hits('/swr') < 2; i++) await sleep(20);
    await sleep(50);
    assert.equal(up.hits('/swr'), 2);
    assert.equal((await get('/swr')).body, 'swr 2');
  });

  test('stale-if-error serves the stored response when the upstream fails', async () => {
    assert.equal((await get('/sie')).body, 'sie 1');
    await sleep(2100);
    up.state.failing = true;
    const r = await get('/sie');
    up.state.failing = false;
    assert.equal(r.status, 200);
    assert.equal(r.body, 'sie 1');
    assert.match(r.cs, /detail=stale-if-error/);
  });

  test('purge by URL and by tag, with the token only', async () => {
    await get('/tagged/a');
    await get('/tagged/b');
    const denied = await fetch(`${gw.url}/tagged/a`, { method: 'PURGE', headers: { authorization: 'Bearer wrong' } });
    assert.equal(denied.status, 401);
    const byUrl = await fetch(`${gw.url}/tagged/a`, {
      method: 'PURGE',
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    assert.deepEqual(await byUrl.json(), { purged: 1 });
    assert.equal((await get('/tagged/a')).body, '/tagged/a 2');
    assert.equal((await get('/tagged/b')).body, '/tagged/b 1');
    const byTag = await fetch(`${gw.url}/_gateway/purge?tag=all`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    assert.deepEqual(await byTag.json(), { purged: 2 });
    assert.equal((await get('/tagged/b')).body, '/tagged/b 2');
    const noTok = await fetch(`${gw.url}/_gateway/purge?tag=all`, { method: 'POST' });
    assert.equal(noTok.status, 401);
  });

  test('stored bytes stay within cache_max_bytes', async () => {
    for (let i = 0; i < 30; i++) await get(`/big/${i}`);
    const m = await (await fetch(`${gw.url}/metrics`)).text();
    const bytes = Number(/^cruder_gateway_cache_bytes (\d+)$/m.exec(m)[1]);
    assert.ok(bytes > 0 && bytes <= 65536, `bytes ${bytes}`);
    assert.match(m, /^cruder_gateway_cache_max_bytes 65536$/m);
    assert.ok(Number(/^cruder_gateway_cache_evictions_total (\d+)$/m.exec(m)[1]) > 0);
    assert.ok(Number(/^cruder_gateway_cache_hits_total (\d+)$/m.exec(m)[1]) > 0);
  });
});

describe('gateway cache in front of cruder serve', () => {
  let srv;
  let gw;
  before(async () => {
    srv = await startServer();
    gw = await startGateway({
      upstreams: { api: [`127.0.0.1:${srv.port}`] },
      routes: [['/', 'api']],
      settings: { cache_max_bytes: '1m', health_interval_ms: 0 },
    });
  });
  after(async () => {
    assert.equal(await gw.stop(), 0);
    await srv.stop();
  });

  test('answers pass through with a Cache-Status', async () => {
    const r = await fetch(`${gw.url}/api/health`);
    assert.equal(r.status, 200);
    assert.equal((await r.json()).code, 200);
    assert.match(r.headers.get('cache-status'), /^cruder; fwd=uri-miss; fwd-status=200/);
    const c = await fetch(`${gw.url}/api/collections`);
    assert.equal(c.status, 401);
  });
});
