// Protocol upgrades (WebSocket and other tokens) and server-sent events
// through `cruder gateway`, against node upstreams written here: the 101 is
// passed on, then the two connections are joined both ways with bounded
// buffers; a non-101 answer is an ordinary response; event streams arrive
// event by event and are never stored by the cache. `cruder serve`, which has
// no WebSocket endpoint, keeps refusing upgrades with 400.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { rssKiB, startGateway } from './lib/gateway.mjs';
import { startServer } from './lib/server.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const asan = /asan/.test(process.env.CRUDER_BIN || '');
const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const wsAccept = (key) => crypto.createHash('sha1').update(key + WS_GUID).digest('base64');

// An upstream taking upgrades on these paths (after the 101 the protocol is
// raw bytes, not WebSocket frames: the gateway must not care):
//   /echo       echoes every byte back, with back-pressure (pipe)
//   /push?n=N   writes N bytes, counting what the socket accepted, then ends
//   /sink       reads nothing until told to (slow reader), counts bytes
//   /bye        writes "bye" and closes at once
//   /refuse     answers 403 with a body instead of switching
// Plain requests: /sse sends an event every 200 ms, five in all.
async function upgradeUpstream() {
  const st = {
    seen: [],
    pushWritten: 0,
    sinkRead: 0,
    sinkSocket: null,
    closed: 0,
    sseSent: 0,
    sseRequests: 0,
  };
  const srv = http.createServer((req, res) => {
    if (req.url === '/sse') {
      st.sseRequests++;
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      let n = 0;
      const t = setInterval(() => {
        n++;
        st.sseSent = n;
        res.write(`id: ${n}\ndata: event ${n}\n\n`);
        if (n === 5) {
          clearInterval(t);
          res.end();
        }
      }, 200);
      res.on('close', () => clearInterval(t));
      return;
    }
    res.end('plain');
  });
  const sockets = new Set();
  srv.on('upgrade', (req, socket, head) => {
    st.seen.push({ url: req.url, headers: req.headers, head: Buffer.from(head) });
    sockets.add(socket);
    socket.on('close', () => {
      sockets.delete(socket);
      st.closed++;
    });
    socket.on('error', () => {});
    const url = new URL(req.url, 'http://x');
    if (url.pathname === '/refuse') {
      socket.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno');
      return;
    }
    const token = req.headers.upgrade;
    const lines = ['HTTP/1.1 101 Switching Protocols', `Upgrade: ${token}`, 'Connection: Upgrade'];
    if (req.headers['sec-websocket-key']) {
      lines.push(`Sec-WebSocket-Accept: ${wsAccept(req.headers['sec-websocket-key'])}`);
    }
    lines.push('X-Upstream: yes');
    socket.write(`${lines.join('\r\n')}\r\n\r\n`);
    if (url.pathname === '/echo') {
      if (head.length) socket.write(head);
      socket.pipe(socket);
    } else if (url.pathname === '/push') {
      let left = Number(url.searchParams.get('n'));
      const chunk = Buffer.alloc(64 * 1024, 121);
      const pump = () => {
        while (left > 0) {
          const piece = left >= chunk.length ? chunk : chunk.subarray(0, left);
          left -= piece.length;
          st.pushWritten += piece.length;
          if (!socket.write(piece)) return socket.once('drain', pump);
        }
        socket.end();
      };
      pump();
    } else if (url.pathname === '/sink') {
      st.sinkSocket = socket;
      socket.pause();
      socket.on('data', (d) => (st.sinkRead += d.length));
    } else if (url.pathname === '/bye') {
      socket.end('bye');
    }
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  return {
    addr: `127.0.0.1:${srv.address().port}`,
    st,
    close: () =>
      new Promise((r) => {
        // Upgraded sockets have left the server's books: close them here.
        for (const s of sockets) s.destroy();
        srv.closeAllConnections();
        srv.close(r);
      }),
  };
}

// A raw client: sends an upgrade request (plus `early` bytes in the same
// write), resolves with the parsed response head, the bytes after it, and
// the socket.
function upgradeRequest(port, path, { token = 'websocket', extra = '', early = '' } = {}) {
  return new Promise((resolve, reject) => {
    const key = crypto.randomBytes(16).toString('base64');
    const sock = net.connect({ port, host: '127.0.0.1' });
    let buf = Buffer.alloc(0);
    const onData = (d) => {
      buf = Buffer.concat([buf, d]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      sock.removeListener('data', onData);
      sock.pause();
      const [status, ...lines] = buf.subarray(0, end).toString().split('\r\n');
      const headers = {};
      for (const l of lines) {
        const i = l.indexOf(':');
        headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
      }
      resolve({ status: Number(status.split(' ')[1]), headers, rest: buf.subarray(end + 4), sock, key });
    };
    sock.on('data', onData);
    sock.on('error', reject);
    sock.write(
      `GET ${path} HTTP/1.1\r\nHost: gw.test\r\nConnection: keep-alive, Upgrade\r\n` +
        `Upgrade: ${token}\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n` +
        `${extra}\r\n${early}`,
    );
  });
}

// Reads from sock until `n` bytes (after `have`) arrived or it closed.
function readBytes(sock, n, have = Buffer.alloc(0), timeoutMs = 10_000) {
  return new Promise((resolve) => {
    let buf = have;
    const done = (closed) => {
      clearTimeout(t);
      sock.removeListener('data', onData);
      sock.removeListener('close', onClose);
      resolve({ data: buf, closed });
    };
    const onData = (d) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= n) done(false);
    };
    const onClose = () => done(true);
    const t = setTimeout(() => done(false), timeoutMs);
    if (buf.length >= n) return done(false);
    sock.on('data', onData);
    sock.on('close', onClose);
    sock.resume();
  });
}

const closedWithin = (sock, ms) =>
  new Promise((resolve) => {
    if (sock.destroyed || sock.readableEnded) return resolve(true);
    const t = setTimeout(() => resolve(false), ms);
    sock.on('close', () => {
      clearTimeout(t);
      resolve(true);
    });
    sock.on('end', () => sock.destroy());
    sock.resume();
  });

describe('gateway upgrades to a node upstream', () => {
  let up;
  let gw;
  before(async () => {
    up = await upgradeUpstream();
    gw = await startGateway({
      upstreams: { u: [up.addr] },
      routes: [['/', 'u']],
      settings: { cache_max_bytes: '8m' },
    });
  });
  after(async () => {
    await gw.stop();
    await up.close();
  });

  test('a WebSocket upgrade gets the 101 and echoes both ways, early bytes first', async () => {
    const r = await upgradeRequest(gw.port, '/echo', { early: 'early!' });
    assert.equal(r.status, 101);
    assert.equal(r.headers.upgrade, 'websocket');
    assert.match(r.headers.connection, /^upgrade$/i);
    assert.equal(r.headers['sec-websocket-accept'], wsAccept(r.key));
    assert.equal(r.headers['x-upstream'], 'yes');
    assert.ok(r.headers['x-request-id']);
    const seen = up.st.seen.at(-1);
    assert.equal(seen.headers.upgrade, 'websocket');
    assert.match(seen.headers.connection, /^upgrade$/i);
    assert.equal(seen.headers['sec-websocket-key'], r.key);
    assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
    let got = await readBytes(r.sock, 6, r.rest);
    assert.equal(got.data.toString(), 'early!');
    for (const msg of ['hello', 'x'.repeat(100_000), 'last']) {
      r.sock.write(msg);
      got = await readBytes(r.sock, msg.length);
      assert.equal(got.data.toString(), msg);
    }
    r.sock.destroy();
  });

  test('any upgrade token passes, not only websocket', async () => {
    const r = await upgradeRequest(gw.port, '/echo', { token: 'x-echo/1' });
    assert.equal(r.status, 101);
    assert.equal(r.headers.upgrade, 'x-echo/1');
    assert.equal(up.st.seen.at(-1).headers.upgrade, 'x-echo/1');
    r.sock.write('ping');
    const got = await readBytes(r.sock, 4, r.rest);
    assert.equal(got.data.toString(), 'ping');
    r.sock.destroy();
  });

  test('a non-101 answer is an ordinary response, then the connection closes', async () => {
    const r = await upgradeRequest(gw.port, '/refuse');
    assert.equal(r.status, 403);
    assert.equal(r.headers.connection, 'close');
    const got = await readBytes(r.sock, 1000, r.rest, 5000);
    assert.equal(got.data.toString(), 'no');
    assert.equal(got.closed, true);
  });

  test('the upstream closing closes the client after its last bytes', async () => {
    const r = await upgradeRequest(gw.port, '/bye');
    assert.equal(r.status, 101);
    const got = await readBytes(r.sock, 1000, r.rest, 5000);
    assert.equal(got.data.toString(), 'bye');
    assert.equal(got.closed, true);
  });

  test('the client closing closes the upstream', async () => {
    const closed0 = up.st.closed;
    const r = await upgradeRequest(gw.port, '/echo');
    assert.equal(r.status, 101);
    r.sock.write('a');
    await readBytes(r.sock, 1, r.rest);
    r.sock.end();
    const deadline = Date.now() + 5000;
    while (up.st.closed === closed0 && Date.now() < deadline) await sleep(20);
    assert.equal(up.st.closed, closed0 + 1, 'the upstream side was not closed');
  });

  test('a slow client reading a large tunnel download: bounded memory, all bytes arrive', async () => {
    const N = 64 * 1024 * 1024;
    const written0 = up.st.pushWritten;
    const rss0 = rssKiB(gw.pid);
    const r = await upgradeRequest(gw.port, `/push?n=${N}`);
    assert.equal(r.status, 101);
    await sleep(1500);
    const written = up.st.pushWritten - written0;
    assert.ok(written < 24 * 1024 * 1024, `the upstream wrote ${written} bytes to a paused client`);
    const grew = rssKiB(gw.pid) - rss0;
    assert.ok(grew < (asan ? 32 : 8) * 1024, `gateway grew ${grew} KiB`);
    // Drip-read a little at a time for a while, then take the rest.
    let got = r.rest.length;
    r.sock.on('data', (d) => {
      got += d.length;
      if (dripping) r.sock.pause();
    });
    let dripping = true;
    for (let i = 0; i < 10; i++) {
      r.sock.resume();
      await sleep(50);
    }
    assert.ok(got < N / 2, `the drip read ${got} bytes`);
    dripping = false;
    const done = await closedWithin(r.sock, 60_000);
    assert.ok(done, 'the tunnel did not end');
    assert.equal(got, N);
    assert.equal(up.st.pushWritten - written0, N);
  });

  test('a slow upstream holds a fast uploading client back', async () => {
    const rss0 = rssKiB(gw.pid);
    const r = await upgradeRequest(gw.port, '/sink');
    assert.equal(r.status, 101);
    const chunk = Buffer.alloc(64 * 1024, 122);
    let sent = 0;
    // Write until the client's own socket pushes back for good.
    const deadline = Date.now() + 3000;
    while (Date.now() < deadline && sent < 128 * 1024 * 1024) {
      if (r.sock.write(chunk)) sent += chunk.length;
      else {
        sent += chunk.length;
        const drained = await Promise.race([
          new Promise((res) => r.sock.once('drain', () => res(true))),
          sleep(500).then(() => false),
        ]);
        if (!drained) break;
      }
    }
    assert.ok(sent < 64 * 1024 * 1024, `the client pushed ${sent} bytes into a paused tunnel`);
    const grew = rssKiB(gw.pid) - rss0;
    assert.ok(grew < (asan ? 32 : 8) * 1024, `gateway grew ${grew} KiB`);
    // The upstream reads: everything sent arrives.
    up.st.sinkSocket.resume();
    const until = Date.now() + 20_000;
    while (up.st.sinkRead < sent && Date.now() < until) await sleep(50);
    assert.equal(up.st.sinkRead, sent);
    r.sock.destroy();
  });

  test('server-sent events arrive one by one and are not stored', async () => {
    const requests0 = up.st.sseRequests;
    const res = await fetch(`${gw.url}/sse`);
    assert.equal(res.headers.get('content-type'), 'text/event-stream');
    const reader = res.body.getReader();
    const sentWhenReceived = [];
    let text = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += Buffer.from(value).toString();
      sentWhenReceived.push(up.st.sseSent);
    }
    assert.equal(text, [1, 2, 3, 4, 5].map((n) => `id: ${n}\ndata: event ${n}\n\n`).join(''));
    // Batching until the end would deliver everything after event 5.
    assert.ok(sentWhenReceived[0] <= 2, `first event seen after ${sentWhenReceived[0]} were sent`);
    assert.ok(sentWhenReceived.length >= 4, `only ${sentWhenReceived.length} reads`);
    const again = await fetch(`${gw.url}/sse`);
    await again.text();
    assert.equal(up.st.sseRequests, requests0 + 2, 'the second stream came from the cache');
    assert.doesNotMatch(again.headers.get('cache-status') ?? '', /; hit/);
  });
});

describe('gateway tunnel idle timeout', () => {
  let up;
  let gw;
  before(async () => {
    up = await upgradeUpstream();
    gw = await startGateway({
      upstreams: { u: [up.addr] },
      routes: [['/', 'u']],
      settings: { tunnel_idle_timeout_ms: 600 },
    });
  });
  after(async () => {
    await gw.stop();
    await up.close();
  });

  test('traffic keeps a tunnel open; silence closes both sides', async () => {
    const closed0 = up.st.closed;
    const r = await upgradeRequest(gw.port, '/echo');
    assert.equal(r.status, 101);
    let have = r.rest;
    for (let i = 0; i < 6; i++) {
      await sleep(250);
      r.sock.write('k');
      const got = await readBytes(r.sock, 1, have);
      assert.equal(got.closed, false, 'closed while traffic flowed');
      have = Buffer.alloc(0);
      r.sock.pause();
    }
    assert.ok(await closedWithin(r.sock, 10_000), 'the idle tunnel stayed open');
    const deadline = Date.now() + 5000;
    while (up.st.closed === closed0 && Date.now() < deadline) await sleep(20);
    assert.equal(up.st.closed, closed0 + 1);
  });
});

describe('gateway shutdown with an open tunnel', () => {
  test('SIGTERM closes it after shutdown_timeout_ms and exits cleanly', async () => {
    const up = await upgradeUpstream();
    const gw = await startGateway({
      upstreams: { u: [up.addr] },
      routes: [['/', 'u']],
      settings: { shutdown_timeout_ms: 500 },
    });
    try {
      const r = await upgradeRequest(gw.port, '/echo');
      assert.equal(r.status, 101);
      r.sock.write('x');
      await readBytes(r.sock, 1, r.rest);
      const closed = closedWithin(r.sock, 10_000);
      assert.equal(await gw.stop(), 0);
      assert.ok(await closed, 'the tunnel outlived the gateway');
    } finally {
      await gw.stop();
      await up.close();
    }
  });
});

describe('upgrades to cruder serve', () => {
  let srv;
  let gw;
  before(async () => {
    srv = await startServer();
    gw = await startGateway({
      upstreams: { api: [`127.0.0.1:${srv.port}`] },
      routes: [['/', 'api']],
    });
  });
  after(async () => {
    await gw.stop();
    await srv.stop();
  });

  test('cruder serve refuses a WebSocket upgrade with 400, directly and through the gateway', async () => {
    for (const port of [srv.port, gw.port]) {
      const r = await upgradeRequest(port, '/api/health');
      assert.equal(r.status, 400, `port ${port}`);
      const got = await readBytes(r.sock, 1 << 20, r.rest, 5000);
      assert.match(got.data.toString(), /Protocol upgrades are not supported/);
      assert.equal(got.closed, true);
    }
  });

  test('a lone h2c upgrade is ignored and answered in HTTP/1.1, directly and through the gateway', async () => {
    for (const port of [srv.port, gw.port]) {
      const r = await upgradeRequest(port, '/api/health', {
        token: 'h2c',
        extra: 'HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n',
      });
      assert.equal(r.status, 200, `port ${port}`);
      assert.equal(r.headers.connection, 'keep-alive');
      r.sock.destroy();
    }
  });
});
