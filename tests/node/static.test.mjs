// Black-box tests of the console's static assets under /_/: fingerprinted
// names cached for a year, index.html revalidated through its ETag, gzip and
// Brotli variants chosen by Accept-Encoding (q-values respected), 304s, HEAD,
// and paths that name nothing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import zlib from 'node:zlib';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer } from './lib/server.mjs';

const WEB = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../web');

// A raw request: no automatic decompression, every header as sent.
function get(port, p, headers = {}, method = 'GET') {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: p, method, headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

let srv;
let index; // index.html as served, identity
before(async () => {
  srv = await startServer();
  index = await get(srv.port, '/_/');
});
after(async () => {
  if (srv) await srv.stop();
});

// The fingerprinted path index.html now references for web/<name>.
function servedName(name) {
  const dot = name.lastIndexOf('.');
  const re = new RegExp(`${name.slice(0, dot).replace(/[./]/g, '\\$&')}\\.[0-9a-f]{10}\\${name.slice(dot)}`);
  const m = index.body.toString().match(re);
  assert.ok(m, `index.html references a fingerprinted ${name}`);
  return m[0];
}

test('index.html: no-cache, strong ETag, html type, and the page itself', async () => {
  assert.equal(index.status, 200);
  assert.equal(index.headers['cache-control'], 'no-cache');
  assert.match(index.headers['content-type'], /^text\/html; charset=utf-8$/);
  assert.match(index.headers.etag, /^"[0-9a-f]{16}"$/);
  assert.equal(index.headers.vary, 'Accept-Encoding');
  assert.equal(index.headers['content-encoding'], undefined);
  const want = fs.readFileSync(path.join(WEB, 'index.html'), 'utf8')
    .replace(/\.\/assets\/console\.css/, './' + servedName('assets/console.css'))
    .replace(/\.\/assets\/console\.js/, './' + servedName('assets/console.js'));
  assert.equal(index.body.toString(), want);
});

test('index.html: 304 on If-None-Match (also in a list and weak), 200 on another tag', async () => {
  const tag = index.headers.etag;
  for (const inm of [tag, `"x", ${tag}`, `W/${tag}`, '*']) {
    const r = await get(srv.port, '/_/index.html', { 'If-None-Match': inm });
    assert.equal(r.status, 304, inm);
    assert.equal(r.body.length, 0);
    assert.equal(r.headers.etag, tag);
    assert.equal(r.headers['cache-control'], 'no-cache');
    assert.equal(r.headers.vary, 'Accept-Encoding');
  }
  const r = await get(srv.port, '/_/', { 'If-None-Match': '"0000000000000000"' });
  assert.equal(r.status, 200);
});

test('fingerprinted asset: immutable for a year, exact bytes', async () => {
  const name = servedName('assets/console.js');
  const r = await get(srv.port, `/_/${name}`);
  assert.equal(r.status, 200);
  assert.equal(r.headers['cache-control'], 'public, max-age=31536000, immutable');
  assert.equal(r.headers['content-type'], 'text/javascript; charset=utf-8');
  assert.deepEqual(r.body, fs.readFileSync(path.join(WEB, 'assets/console.js')));
  assert.equal(Number(r.headers['content-length']), r.body.length);
  const again = await get(srv.port, `/_/${name}`, { 'If-None-Match': r.headers.etag });
  assert.equal(again.status, 304);
  assert.equal(again.headers['cache-control'], 'public, max-age=31536000, immutable');
});

test('Accept-Encoding: br preferred, gzip when asked for, q-values respected', async () => {
  const name = servedName('assets/console.css');
  const plain = fs.readFileSync(path.join(WEB, 'assets/console.css'));
  const cases = [
    ['gzip, deflate, br', 'br'],
    ['gzip', 'gzip'],
    ['br;q=0.5, gzip;q=0.8', 'gzip'],
    ['br;q=1.0, gzip;q=1', 'br'],
    ['*', 'br'],
    ['*;q=0.1, gzip;q=0.2', 'gzip'],
    ['gzip;q=0, br;q=0', undefined],
    ['identity', undefined],
    ['', undefined],
    ['BR', 'br'],
    ['br;q=2, gzip', 'gzip'], // q above 1 is malformed: that item is ignored
  ];
  const tags = new Set();
  for (const [ae, enc] of cases) {
    const r = await get(srv.port, `/_/${name}`, { 'Accept-Encoding': ae });
    assert.equal(r.status, 200, ae);
    assert.equal(r.headers['content-encoding'], enc, ae);
    assert.equal(r.headers.vary, 'Accept-Encoding');
    const body = enc === 'br' ? zlib.brotliDecompressSync(r.body) : enc === 'gzip' ? zlib.gunzipSync(r.body) : r.body;
    assert.deepEqual(body, plain, ae);
    if (enc) assert.ok(r.body.length < plain.length);
    tags.add(`${enc}:${r.headers.etag}`);
  }
  // One strong ETag per representation.
  const byEnc = new Map([...tags].map((t) => t.split(':')));
  assert.equal(new Set(byEnc.values()).size, byEnc.size);
  const br = await get(srv.port, `/_/${name}`, { 'Accept-Encoding': 'br' });
  const notBr = await get(srv.port, `/_/${name}`, { 'Accept-Encoding': 'gzip', 'If-None-Match': br.headers.etag });
  assert.equal(notBr.status, 200, 'the br tag does not validate the gzip variant');
  const same = await get(srv.port, `/_/${name}`, { 'Accept-Encoding': 'br', 'If-None-Match': br.headers.etag });
  assert.equal(same.status, 304);
});

test('HEAD: the same headers, no body', async () => {
  const name = servedName('assets/console.js');
  const g = await get(srv.port, `/_/${name}`, { 'Accept-Encoding': 'gzip' });
  const h = await get(srv.port, `/_/${name}`, { 'Accept-Encoding': 'gzip' }, 'HEAD');
  assert.equal(h.status, 200);
  assert.equal(h.body.length, 0);
  for (const k of ['content-length', 'content-type', 'etag', 'cache-control', 'vary', 'content-encoding'])
    assert.equal(h.headers[k], g.headers[k], k);
});

test('client-side pages get index.html; missing assets and odd paths are 404', async () => {
  const page = await get(srv.port, '/_/collections/posts');
  assert.equal(page.status, 200);
  assert.equal(page.headers.etag, index.headers.etag);
  for (const p of ['/_/assets/console.js', '/_/assets/console.0000000000.js', '/_/../api/health',
    '/_/%2e%2e/api/health', '/_/a/%2E%2E/b', '/_/x%00', '/_/a%5cb', '/_/a\\b']) {
    const r = await get(srv.port, p);
    assert.equal(r.status, 404, p);
    const body = JSON.parse(r.body.toString());
    assert.equal(body.status, 404);
    assert.equal(typeof body.message, 'string');
  }
  const redirect = await get(srv.port, '/_');
  assert.equal(redirect.status, 301);
  assert.equal(redirect.headers.location, '/_/');
  const post = await get(srv.port, '/_/', {}, 'POST');
  assert.equal(post.status, 405);
});
