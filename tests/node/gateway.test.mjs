// `cruder gateway` as a black box: in front of real `cruder serve` processes
// and of small node upstreams that record exactly what reached them.

import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { rssKiB, startGateway } from './lib/gateway.mjs';
import { cruderBin, freePort, rawRequest, startServer } from './lib/server.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A node upstream: handler(req, res) answers; every request that arrives and
// every connection opened is counted.
async function fakeUpstream(name, handler) {
  const seen = [];
  let connections = 0;
  const srv = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (d) => chunks.push(d));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      seen.push({ method: req.method, url: req.url, headers: req.headers, body });
      if (handler) handler(req, res, body);
      else {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ upstream: name, url: req.url, bytes: body.length }));
      }
    });
  });
  srv.keepAliveTimeout = 60_000;
  srv.on('connection', () => connections++);
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  return {
    addr: `127.0.0.1:${srv.address().port}`,
    seen,
    connections: () => connections,
    server: srv,
    close: () =>
      new Promise((r) => {
        srv.closeAllConnections();
        srv.close(r);
      }),
  };
}

describe('gateway in front of cruder serve', () => {
  let a;
  let b;
  let gw;
  before(async () => {
    a = await startServer();
    b = await startServer();
    gw = await startGateway({
      upstreams: { api: [`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`] },
      routes: [['/', 'api']],
    });
  });
  after(async () => {
    assert.equal(await gw.stop(), 0);
    await a.stop();
    await b.stop();
  });

  test('health and PocketBase errors pass through unchanged', async () => {
    for (let i = 0; i < 4; i++) {
      const res = await fetch(`${gw.url}/api/health`);
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), { message: 'API is healthy.', code: 200, data: {} });
      assert.match(res.headers.get('x-request-id'), /^[0-9a-f]{24}$/);
    }
    const res = await fetch(`${gw.url}/api/collections/_superusers/auth-with-password`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ identity: 'nobody@example.com', password: 'wrong-password' }),
    });
    assert.equal(res.status, 400);
    assert.equal((await res.json()).message, 'Failed to authenticate.');
  });
});

describe('gateway request and response rewriting', () => {
  let up;
  let gw;
  before(async () => {
    up = await fakeUpstream('a', (req, res) => {
      res.setHeader('x-keep', 'yes');
      res.setHeader('x-private-hop', 'drop me');
      res.setHeader('connection', 'x-private-hop');
      res.setHeader('keep-alive', 'timeout=5');
      res.end('ok');
    });
    gw = await startGateway({ upstreams: { a: [up.addr] }, routes: [['/', 'a']] });
  });
  after(async () => {
    await gw.stop();
    await up.close();
  });

  test('hop-by-hop headers and those named in Connection are removed both ways', async () => {
    const r = await rawRequest(
      gw.port,
      'GET /x?q=1 HTTP/1.1\r\nHost: shop.example:8080\r\nConnection: close, X-Secret\r\n' +
        'X-Secret: s\r\nKeep-Alive: timeout=1\r\nTE: trailers\r\nProxy-Authorization: Basic eA==\r\n' +
        'X-Forwarded-For: 203.0.113.9\r\nForwarded: for=203.0.113.9\r\nX-Other: kept\r\n\r\n',
    );
    const text = r.data.toString();
    assert.match(text, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(text, /\r\nx-keep: yes\r\n/i);
    assert.doesNotMatch(text, /x-private-hop|keep-alive: timeout/i);
    assert.match(text, /\r\nConnection: close\r\n/);
    const h = up.seen.at(-1).headers;
    assert.equal(up.seen.at(-1).url, '/x?q=1');
    assert.equal(h.host, 'shop.example:8080');
    assert.equal(h['x-other'], 'kept');
    for (const gone of ['x-secret', 'keep-alive', 'te', 'proxy-authorization']) {
      assert.equal(h[gone], undefined, gone);
    }
    assert.equal(h['x-forwarded-for'], '203.0.113.9, 127.0.0.1');
    assert.equal(h['x-forwarded-proto'], 'http');
    assert.equal(h['x-forwarded-host'], 'shop.example:8080');
    assert.equal(h.forwarded, 'for=203.0.113.9, for=127.0.0.1;host="shop.example:8080";proto=http');
    assert.match(h['x-request-id'], /^[0-9a-f]{24}$/);
  });

  test('a well-formed X-Request-Id is passed through and echoed; a bad one is replaced', async () => {
    let res = await fetch(`${gw.url}/id`, { headers: { 'x-request-id': 'trace-42.a_b' } });
    assert.equal(res.headers.get('x-request-id'), 'trace-42.a_b');
    assert.equal(up.seen.at(-1).headers['x-request-id'], 'trace-42.a_b');
    await res.text();
    res = await fetch(`${gw.url}/id`, { headers: { 'x-request-id': 'bad id;<>' } });
    await res.text();
    assert.match(up.seen.at(-1).headers['x-request-id'], /^[0-9a-f]{24}$/);
  });

  test('upstream connections are kept alive and reused', async () => {
    const before0 = up.connections();
    for (let i = 0; i < 20; i++) {
      const res = await fetch(`${gw.url}/reuse/${i}`);
      assert.equal(await res.text(), 'ok');
    }
    assert.ok(up.connections() - before0 <= 2, `opened ${up.connections() - before0} connections`);
  });
});

describe('gateway routing', () => {
  let a;
  let b;
  let gw;
  before(async () => {
    a = await fakeUpstream('a');
    b = await fakeUpstream('b');
    gw = await startGateway({
      upstreams: { a: [a.addr], b: [b.addr] },
      routes: [
        ['/', 'a'],
        ['/api/files/', 'b'],
        ['files.example/', 'b'],
      ],
    });
  });
  after(async () => {
    await gw.stop();
    await a.close();
    await b.close();
  });

  test('longest path prefix wins; a host route beats host-less ones', async () => {
    const get = async (p, host) => {
      const r = await rawRequest(gw.port, `GET ${p} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
      return JSON.parse(r.data.toString().split('\r\n\r\n')[1]).upstream;
    };
    assert.equal(await get('/api/collections', 'x'), 'a');
    assert.equal(await get('/api/files/c/r/f.png', 'x'), 'b');
    assert.equal(await get('/api/filesystem', 'x'), 'a');
    assert.equal(await get('/anything', 'files.example:80'), 'b');
    assert.equal(await get('/anything', 'FILES.example'), 'b');
  });
});

describe('gateway refuses request smuggling before forwarding', () => {
  let up;
  let gw;
  // Every byte that reaches the upstream's sockets, whether node's parser
  // would accept it as a request or not.
  let upstreamBytes = 0;
  before(async () => {
    up = await fakeUpstream('a');
    up.server.on('connection', (sock) => sock.on('data', (d) => (upstreamBytes += d.length)));
    // No health checks: their probes would count as requests that reached the upstream.
    gw = await startGateway({
      upstreams: { a: [up.addr] },
      routes: [['/', 'a']],
      settings: { health_interval_ms: 0 },
    });
  });
  after(async () => {
    await gw.stop();
    await up.close();
  });

  const smuggle = 'GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n';
  const cases = {
    'CL.TE': `POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG`,
    'TE.CL': `POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n`,
    'TE.TE space': `POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n${smuggle}`,
    'TE.TE xchunked': `POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n${smuggle}`,
    'TE.TE doubled': `POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n`,
    'TE.TE list': `POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n`,
    'TE obs-fold': `POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n`,
    'duplicate CL': `POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello`,
    'differing CL': `POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 41\r\n\r\nhello`,
    'CL with sign': `POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello`,
    'chunk size overflow': `POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff1\r\nA\r\n0\r\n\r\n`,
    'chunk size junk': `POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5x\r\nhello\r\n0\r\n\r\n`,
    'bare LF': `GET / HTTP/1.1\nHost: x\n\n`,
    'obs-fold': `GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  folded\r\n\r\n`,
    'two Host': `GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n`,
    'NUL in header': `GET / HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n`,
    'TE.TE vertical tab': `POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \x0bchunked\r\n\r\n0\r\n\r\n${smuggle}`,
    'TE.TE tab before colon': `POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding\t: chunked\r\n\r\n0\r\n\r\n${smuggle}`,
    'TE.TE chunked twice': `POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n${smuggle}`,
    'TE identity beside CL': `POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\nContent-Length: 5\r\n\r\nhello`,
    'TE in HTTP/1.0': `POST / HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
    'CL as a list': `POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\nhello`,
    'CL negative': `POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n${smuggle}`,
    'CL inner space': `POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1 0\r\n\r\nhellohello`,
    'chunk size 0x': `POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n`,
    'chunk longer than its size': `POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n`,
    'chunk size leading space': `POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n 5\r\nhello\r\n0\r\n\r\n`,
    'bare LF in chunk size line': `POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n${smuggle}`,
    'bare LF after chunk data': `POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n${smuggle}`,
    'bare LF ending the last chunk': `POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\n\n${smuggle}`,
    'bare LF ending the request line': `GET / HTTP/1.1\nHost: x\r\n\r\n`,
    'bare CR in a header': `GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n`,
    'obs-fold of the first header': `GET / HTTP/1.1\r\n Host: x\r\n\r\n`,
  };
  test('chunk extensions never reach the upstream: the body is framed afresh', async () => {
    const r = await rawRequest(
      gw.port,
      'POST /ext HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n' +
        '5 ;a=b\r\nhello\r\n0\r\n\r\n',
    );
    assert.match(r.data.toString(), /^HTTP\/1\.1 200 /);
    assert.ok(upstreamBytes > 0, 'the byte counter sees what the upstream gets');
    const seen = up.seen.at(-1);
    assert.equal(seen.url, '/ext');
    assert.equal(seen.body.toString(), 'hello');
  });

  test('a chunk broken after the head went up ends the upstream exchange: no request completes there, nothing after it goes', async () => {
    const seen0 = up.seen.length;
    const bytes0 = upstreamBytes;
    const sock = net.connect(gw.port, '127.0.0.1');
    let reply = '';
    sock.on('data', (d) => (reply += d.toString('latin1')));
    const closed = new Promise((r) => sock.on('close', r));
    sock.write('POST /late HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n');
    // A streaming proxy sends the head and the good chunk on as they come.
    for (let i = 0; i < 250 && upstreamBytes === bytes0; i++) await sleep(20);
    assert.ok(upstreamBytes > bytes0, 'the head went up');
    await sleep(100);
    const afterHead = upstreamBytes;
    sock.write(`fffffffffffffffff1\r\nA\r\n0\r\n\r\n${smuggle}`);
    await closed;
    assert.match(reply, /^HTTP\/1\.1 400 /);
    await sleep(100);
    assert.equal(upstreamBytes, afterHead, 'nothing after the broken chunk went up');
    assert.equal(up.seen.length, seen0, 'no request completed at the upstream');
  });

  for (const [name, bytes] of Object.entries(cases)) {
    test(name, async () => {
      const before0 = upstreamBytes;
      const r = await rawRequest(gw.port, bytes);
      const text = r.data.toString();
      assert.match(text, /^HTTP\/1\.1 (400|413|501) /, `${name}: ${text.slice(0, 80)}`);
      assert.equal(r.closed, true);
      await sleep(50);
      assert.equal(upstreamBytes, before0, `${name}: bytes of it reached the upstream`);
    });
  }
});

describe('gateway streaming and back-pressure', () => {
  const BIG = 48 * 1024 * 1024;
  let up;
  let gw;
  let upstreamWritten = 0;
  let sseRelease;
  before(async () => {
    up = await fakeUpstream('s', (req, res, body) => {
      if (req.url === '/big') {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': BIG });
        const chunk = Buffer.alloc(64 * 1024, 120);
        let left = BIG;
        const pump = () => {
          while (left > 0) {
            left -= chunk.length;
            upstreamWritten += chunk.length;
            if (!res.write(chunk)) return res.once('drain', pump);
          }
          res.end();
        };
        pump();
      } else if (req.url === '/sse') {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
        res.write('data: first\n\n');
        sseRelease = () => res.end('data: last\n\n');
      } else if (req.url === '/echo-length') {
        res.end(JSON.stringify({ bytes: body.length, te: req.headers['transfer-encoding'] ?? null }));
      } else {
        res.end('?');
      }
    });
    gw = await startGateway({ upstreams: { s: [up.addr] }, routes: [['/', 's']] });
  });
  after(async () => {
    await gw.stop();
    await up.close();
  });

  test('a client that stops reading holds the upstream back; the gateway buffers little', async () => {
    const rss0 = rssKiB(gw.pid);
    const sock = net.connect({ port: gw.port, host: '127.0.0.1' });
    await new Promise((r) => sock.once('connect', r));
    sock.write('GET /big HTTP/1.1\r\nHost: x\r\n\r\n');
    let got = 0;
    sock.on('data', (d) => {
      got += d.length;
      sock.pause();
    });
    await sleep(1500);
    // Socket buffers on three hops plus the gateway's bounded queues.
    assert.ok(upstreamWritten < 16 * 1024 * 1024, `upstream wrote ${upstreamWritten} bytes`);
    // ASan pads every allocation and quarantines freed memory, so under
    // `make asan` the same bounded queues show as more resident memory.
    const rssBoundKiB = /asan/.test(process.env.CRUDER_BIN || '') ? 32 * 1024 : 8 * 1024;
    assert.ok(rssKiB(gw.pid) - rss0 < rssBoundKiB, `gateway grew ${rssKiB(gw.pid) - rss0} KiB`);
    sock.removeAllListeners('data');
    sock.on('data', (d) => (got += d.length));
    sock.resume();
    const deadline = Date.now() + 20_000;
    while (got < BIG && Date.now() < deadline) await sleep(50);
    assert.ok(got > BIG, `client got ${got} of ${BIG} bytes`);
    sock.destroy();
  });

  test('server-sent events pass through unbuffered', async () => {
    const res = await fetch(`${gw.url}/sse`);
    assert.equal(res.headers.get('content-type'), 'text/event-stream');
    const reader = res.body.getReader();
    const first = await reader.read();
    assert.equal(Buffer.from(first.value).toString(), 'data: first\n\n');
    sseRelease();
    let rest = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      rest += Buffer.from(value).toString();
    }
    assert.equal(rest, 'data: last\n\n');
  });

  test('request bodies stream up, chunked and with a length', async () => {
    const size = 6 * 1024 * 1024;
    let res = await fetch(`${gw.url}/echo-length`, { method: 'POST', body: Buffer.alloc(size, 97) });
    assert.deepEqual(await res.json(), { bytes: size, te: null });
    const parts = [Buffer.alloc(100000, 98), Buffer.alloc(3, 99)];
    res = await fetch(`${gw.url}/echo-length`, {
      method: 'POST',
      body: new ReadableStream({
        pull(c) {
          if (parts.length) c.enqueue(parts.shift());
          else c.close();
        },
      }),
      duplex: 'half',
    });
    assert.deepEqual(await res.json(), { bytes: 100003, te: 'chunked' });
  });
});

describe('gateway failures', () => {
  let up;
  let gw;
  let deadPort;
  before(async () => {
    up = await fakeUpstream('live', (req, res) => {
      if (req.url === '/hang') return; // never answers
      res.end(`live ${req.method}`);
    });
    deadPort = await freePort(); // nothing listens there
    gw = await startGateway({
      upstreams: { a: [`127.0.0.1:${deadPort}`, up.addr], d: [`127.0.0.1:${deadPort}`] },
      routes: [
        ['/', 'a'],
        ['/dead/', 'd'],
      ],
      settings: { first_byte_timeout_ms: 300 },
    });
  });
  after(async () => {
    await gw.stop();
    await up.close();
  });

  test('a refused target is skipped: no GET or POST fails', async () => {
    for (let i = 0; i < 10; i++) {
      const get = await fetch(`${gw.url}/g${i}`);
      assert.equal(await get.text(), 'live GET');
      const post = await fetch(`${gw.url}/p${i}`, { method: 'POST', body: 'x' });
      assert.equal(await post.text(), 'live POST');
    }
  });

  test('an upstream that cannot be reached answers 502 in PocketBase shape', async () => {
    const res = await fetch(`${gw.url}/dead/x`);
    assert.equal(res.status, 502);
    assert.deepEqual(await res.json(), {
      status: 502,
      message: 'The upstream failed to answer.',
      data: {},
    });
  });

  test('an upstream that does not answer in time gets 504', async () => {
    const t0 = Date.now();
    const res = await fetch(`${gw.url}/hang`, { method: 'POST', body: 'x' });
    assert.equal(res.status, 504);
    assert.equal((await res.json()).status, 504);
    assert.ok(Date.now() - t0 < 3000);
  });

  test('no route gives 404', async () => {
    const g = await startGateway({ upstreams: { a: [up.addr] }, routes: [['only.example/', 'a']] });
    const res = await fetch(`${g.url}/x`);
    assert.equal(res.status, 404);
    await res.text();
    assert.equal(await g.stop(), 0);
  });
});

describe('listen addresses', () => {
  test('the gateway answers on every address of its http list, IPv6 included, on every loop', async () => {
    const up = await fakeUpstream('u');
    const second = await freePort();
    const v6 = await freePort();
    const gw = await startGateway({
      upstreams: { api: [up.addr] },
      routes: [['/', 'api']],
      alsoListen: [`127.0.0.1:${second}`, `[::1]:${v6}`],
      settings: { loops: 2 },
    });
    try {
      for (const base of [gw.url, `http://127.0.0.1:${second}`, `http://[::1]:${v6}`]) {
        // Several connections, so that both loops' listeners take some.
        const answers = await Promise.all(
          Array.from({ length: 8 }, () =>
            fetch(`${base}/where`, { headers: { connection: 'close' } }).then((r) => r.json()),
          ),
        );
        for (const a of answers) assert.deepEqual(a, { upstream: 'u', url: '/where', bytes: 0 }, base);
      }
      const v6seen = up.seen.filter((s) => /\[::1\]/.test(s.headers.forwarded ?? ''));
      assert.equal(v6seen.length, 8, 'the IPv6 clients are forwarded as for="[::1]"');
    } finally {
      assert.equal(await gw.stop(), 0);
      await up.close();
    }
  });

  test('a bad, excess or taken address in the list stops the gateway with the reason', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cruder-gw-listen-'));
    try {
      const conf = path.join(dir, 'gateway.conf');
      const run = (http) => {
        fs.writeFileSync(conf, `http = ${http}\nupstream o 127.0.0.1:9\nroute / o\n`);
        return spawnSync(cruderBin(), ['gateway', '--config', conf], { encoding: 'utf8', timeout: 10_000 });
      };
      let r = run('127.0.0.1:0, nonsense');
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, /cannot parse listen address "nonsense"/);
      r = run('127.0.0.1:0,');
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, /cannot parse listen address ""/);
      r = run(`127.0.0.1:0, ${'1'.repeat(100)}:80`);
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, /listen address too long/);
      r = run(Array.from({ length: 9 }, () => '127.0.0.1:0').join(','));
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, /at most 8 listen addresses/);
      // The second address is taken: nothing is left listening on the first.
      const taken = net.createServer();
      await new Promise((res) => taken.listen(0, '127.0.0.1', res));
      try {
        r = run(`127.0.0.1:0, 127.0.0.1:${taken.address().port}`);
        assert.equal(r.status, 1, r.stderr);
        assert.match(r.stderr, /cannot listen on .*Address already in use/);
      } finally {
        taken.close();
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
