// Slow and dripping clients of `cruder gateway` (issue 6: "a client that
// drips a request or reads a response slowly ties up one connection's
// bounded buffers and nothing else"): dripped heads get 408 at the header
// deadline, a slow reader of a 64 MiB response and a slow sender of a body
// hold the upstream back instead of filling the gateway's memory, and other
// clients are served normally meanwhile. Bounds are counts and generous
// sizes, so they hold under ASan on a loaded box.

import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { rssKiB, startGateway } from './lib/gateway.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const asan = /asan/.test(process.env.CRUDER_BIN || '');
const rssBoundKiB = (asan ? 32 : 8) * 1024;
const BIG = 64 * 1024 * 1024;
const HEADER_TIMEOUT_MS = 1500;
const BODY_TIMEOUT_MS = 1500;

// The upstream: /fast answers at once; /big sends BIG bytes, counting what
// its socket accepted; /upload counts the body as it arrives (reading it
// only while `uploadReading`), noting when the first byte came.
async function upstream() {
  const st = {
    urls: [],
    bigWritten: 0,
    uploadBytes: 0,
    uploadFirstAt: 0,
    uploadDone: 0,
    uploadAborted: 0,
    uploadReading: true,
    uploadReq: null,
  };
  const srv = http.createServer((req, res) => {
    st.urls.push(req.url);
    if (req.url === '/big') {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': BIG });
      const chunk = Buffer.alloc(64 * 1024, 120);
      let left = BIG;
      const pump = () => {
        while (left > 0) {
          left -= chunk.length;
          st.bigWritten += chunk.length;
          if (!res.write(chunk)) return res.once('drain', pump);
        }
        res.end();
      };
      pump();
      return;
    }
    if (req.url === '/upload') {
      st.uploadReq = req;
      let got = 0;
      req.on('data', (d) => {
        if (!got) st.uploadFirstAt = Date.now();
        got += d.length;
        st.uploadBytes += d.length;
      });
      req.on('end', () => {
        st.uploadDone++;
        res.end(JSON.stringify({ bytes: got }));
      });
      req.on('aborted', () => st.uploadAborted++);
      req.on('error', () => {});
      if (!st.uploadReading) req.pause();
      return;
    }
    req.resume();
    req.on('end', () => res.end('{"fast":true}'));
  });
  srv.keepAliveTimeout = 60_000;
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  return {
    addr: `127.0.0.1:${srv.address().port}`,
    st,
    close: () =>
      new Promise((r) => {
        srv.closeAllConnections();
        srv.close(r);
      }),
  };
}

// `n` requests for /fast from a few concurrent clients while `during` runs;
// resolves to how many got a 200, and the slowest one's time.
async function othersServed(url, n) {
  let ok = 0;
  let slowest = 0;
  const one = async () => {
    const t0 = Date.now();
    const r = await fetch(`${url}/fast`);
    if (r.status === 200 && (await r.text()) === '{"fast":true}') ok++;
    slowest = Math.max(slowest, Date.now() - t0);
  };
  for (let i = 0; i < n; i += 5) await Promise.all([one(), one(), one(), one(), one()]);
  return { ok, slowest };
}

// Writes `text` one byte every `gapMs` until the server answers or closes;
// resolves to what came back, whether it closed, and when.
function drip(port, text, gapMs) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const sock = net.connect({ port, host: '127.0.0.1' });
    let data = '';
    let i = 0;
    let timer = null;
    const next = () => {
      if (i < text.length && !sock.destroyed) {
        sock.write(text[i++]);
        timer = setTimeout(next, gapMs);
      }
    };
    sock.on('connect', next);
    sock.on('data', (d) => (data += d));
    sock.on('error', () => {});
    sock.on('close', () => {
      clearTimeout(timer);
      resolve({ data, closed: true, ms: Date.now() - t0, sent: i });
    });
  });
}

describe('slow and dripping clients of the gateway', () => {
  let up;
  let gw;
  before(async () => {
    up = await upstream();
    gw = await startGateway({
      upstreams: { u: [up.addr] },
      routes: [['/', 'u']],
      settings: {
        header_timeout_ms: HEADER_TIMEOUT_MS,
        body_timeout_ms: BODY_TIMEOUT_MS,
        health_interval_ms: 0,
      },
    });
  });
  after(async () => {
    await gw.stop();
    await up.close();
  });

  test('clients dripping their head one byte at a time get 408 at the deadline; others are served', async () => {
    const head = `GET /dripped HTTP/1.1\r\nHost: x\r\nX-Pad: ${'a'.repeat(200)}\r\n\r\n`;
    const drippers = Array.from({ length: 20 }, () => drip(gw.port, head, 50));
    const others = await othersServed(gw.url, 100);
    const results = await Promise.all(drippers);
    assert.equal(others.ok, 100);
    for (const r of results) {
      assert.match(r.data, /^HTTP\/1\.1 408 /);
      assert.ok(r.closed);
      // The deadline covers the whole head, from the connection's start.
      assert.ok(r.ms >= HEADER_TIMEOUT_MS - 200, `408 after ${r.ms} ms`);
      assert.ok(r.ms < HEADER_TIMEOUT_MS + 5000, `408 after ${r.ms} ms`);
      assert.ok(r.sent < head.length, 'the whole head went out before the deadline');
    }
    assert.ok(!up.st.urls.includes('/dripped'), 'a dripped head reached the upstream');
  });

  test('a slow reader of a 64 MiB response holds the upstream back; memory stays bounded; others are served', async () => {
    const rss0 = rssKiB(gw.pid);
    const written0 = up.st.bigWritten;
    const sock = net.connect({ port: gw.port, host: '127.0.0.1' });
    await new Promise((r) => sock.once('connect', r));
    sock.write('GET /big HTTP/1.1\r\nHost: x\r\n\r\n');
    // One read each 50 ms: a client on a slow link.
    let got = 0;
    let slow = true;
    sock.on('data', (d) => {
      got += d.length;
      if (slow) sock.pause();
    });
    const ticker = setInterval(() => sock.resume(), 50);
    const others = await othersServed(gw.url, 100);
    await sleep(1500);
    const written = up.st.bigWritten - written0;
    const grew = rssKiB(gw.pid) - rss0;
    clearInterval(ticker);
    assert.equal(others.ok, 100);
    assert.ok(got < BIG / 2, `the slow reader got ${got} bytes`);
    // Kernel buffers on three hops plus the gateway's bounded queues.
    assert.ok(written - got < 24 * 1024 * 1024, `upstream ${written} bytes ahead of the client's ${got}`);
    assert.ok(grew < rssBoundKiB, `gateway grew ${grew} KiB`);
    slow = false;
    sock.resume();
    const deadline = Date.now() + 30_000;
    while (got < BIG && Date.now() < deadline) await sleep(50);
    assert.ok(got > BIG, `client got ${got} of ${BIG} body bytes`);
    sock.destroy();
  });

  test('a dripped request body streams up as it comes; others are served', async () => {
    const body = 'x'.repeat(60);
    const bytes0 = up.st.uploadBytes;
    const done0 = up.st.uploadDone;
    const head = `POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`;
    const sock = net.connect({ port: gw.port, host: '127.0.0.1' });
    await new Promise((r) => sock.once('connect', r));
    sock.write(head);
    let answer = '';
    sock.on('data', (d) => (answer += d));
    const closed = new Promise((r) => sock.on('close', r));
    const t0 = Date.now();
    const sender = (async () => {
      for (const ch of body) {
        sock.write(ch);
        await sleep(25);
      }
    })();
    const others = await othersServed(gw.url, 50);
    await sender;
    await closed;
    assert.equal(others.ok, 50);
    assert.match(answer, /^HTTP\/1\.1 200 /);
    assert.match(answer, /\{"bytes":60\}$/);
    assert.equal(up.st.uploadDone, done0 + 1);
    assert.equal(up.st.uploadBytes - bytes0, 60);
    // Streamed, not stored until complete: the first byte was upstream
    // long before the last one was sent.
    assert.ok(up.st.uploadFirstAt - t0 < 60 * 25 - 500, 'the body was held until complete');
  });

  test('a body that stops mid-way gets 408 at the body deadline; the upstream never sees it complete', async () => {
    const done0 = up.st.uploadDone;
    const aborted0 = up.st.uploadAborted;
    const sock = net.connect({ port: gw.port, host: '127.0.0.1' });
    await new Promise((r) => sock.once('connect', r));
    const t0 = Date.now();
    sock.write('POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly ten b');
    let answer = '';
    sock.on('data', (d) => (answer += d));
    sock.on('error', () => {});
    await new Promise((r) => sock.on('close', r));
    const ms = Date.now() - t0;
    assert.ok(ms >= BODY_TIMEOUT_MS - 200 && ms < BODY_TIMEOUT_MS + 5000, `closed after ${ms} ms`);
    assert.match(answer, /^HTTP\/1\.1 (408|400) /);
    const deadline = Date.now() + 3000;
    while (up.st.uploadAborted === aborted0 && Date.now() < deadline) await sleep(20);
    assert.equal(up.st.uploadDone, done0, 'the cut body reached the upstream as complete');
    assert.equal(up.st.uploadAborted, aborted0 + 1);
  });

  test('a fast upload to a slow upstream holds the client back; memory stays bounded', async () => {
    up.st.uploadReading = false;
    const rss0 = rssKiB(gw.pid);
    const bytes0 = up.st.uploadBytes;
    const req = http.request(`${gw.url}/upload`, {
      method: 'POST',
      headers: { 'content-length': BIG },
      agent: false,
    });
    const answer = new Promise((resolve, reject) => {
      req.on('response', (res) => {
        let t = '';
        res.on('data', (d) => (t += d));
        res.on('end', () => resolve(t));
      });
      req.on('error', reject);
    });
    const chunk = Buffer.alloc(64 * 1024, 97);
    let sent = 0;
    let stalled = false;
    const pump = async () => {
      while (sent < BIG) {
        sent += chunk.length;
        if (!req.write(chunk)) {
          await new Promise((r) => req.once('drain', r));
        }
      }
      req.end();
    };
    const pumping = pump();
    await sleep(1500);
    stalled = sent < BIG / 2;
    const grew = rssKiB(gw.pid) - rss0;
    const others = await othersServed(gw.url, 50);
    assert.equal(others.ok, 50);
    assert.ok(stalled, `the client pushed ${sent} bytes into a paused upstream`);
    assert.ok(grew < rssBoundKiB, `gateway grew ${grew} KiB`);
    up.st.uploadReading = true;
    up.st.uploadReq.resume();
    await pumping;
    assert.equal(await answer, JSON.stringify({ bytes: BIG }));
    assert.equal(up.st.uploadBytes - bytes0, BIG);
  });
});
