// Black-box tests of the HTTP/1.1 layer over raw sockets: keep-alive,
// pipelining, chunked bodies, every limit, ambiguous framing, connection
// limits and the SIGTERM drain.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startServer } from './lib/server.mjs';

// Opens a socket and collects everything it receives until it closes (or ms).
function exchange(port, chunks, { ms = 3000, gapMs = 0 } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let data = '';
    let closed = false;
    const timer = setTimeout(() => {
      sock.destroy();
      resolve({ data, closed });
    }, ms);
    sock.setEncoding('latin1');
    sock.on('data', (d) => (data += d));
    sock.on('error', () => {});
    sock.on('close', () => {
      closed = true;
      clearTimeout(timer);
      resolve({ data, closed });
    });
    sock.on('connect', async () => {
      for (const c of [].concat(chunks)) {
        if (sock.destroyed) break;
        sock.write(c);
        if (gapMs) await new Promise((r) => setTimeout(r, gapMs));
      }
    });
    sock.on('timeout', reject);
  });
}

const statuses = (data) => [...data.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => Number(m[1]));
const GET = 'GET /api/health HTTP/1.1\r\nHost: t\r\n\r\n';
const POST = '/api/collections/x/records';

let srv;
before(async () => {
  srv = await startServer({
    args: ['--max-header-bytes', '1024', '--max-headers', '20', '--max-request-line', '256',
      '--max-body-bytes', '1000', '--idle-timeout-ms', '300', '--access-log', 'false'],
  });
});
after(async () => {
  if (srv) await srv.stop();
});

test('keep-alive: two requests on one connection, in order', async () => {
  const { data, closed } = await exchange(srv.port, [GET, GET], { ms: 250, gapMs: 50 });
  assert.deepEqual(statuses(data), [200, 200]);
  assert.equal(closed, false);
  assert.match(data, /Connection: keep-alive\r\n/);
  assert.match(data, /Date: \w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT\r\n/);
});

test('pipelining: two requests in one write, both answered in order', async () => {
  const { data } = await exchange(srv.port, GET + `GET /nope HTTP/1.1\r\nHost: t\r\n\r\n` + GET, { ms: 250 });
  assert.deepEqual(statuses(data), [200, 404, 200]);
  assert.match(data, /"status":404,"message":"The requested resource wasn't found.","data":\{\}/);
});

test('chunked request body is read and answered', async () => {
  const req = `POST ${POST} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n` +
    '2\r\n{}\r\n0\r\n\r\n' + GET;
  const { data } = await exchange(srv.port, req, { ms: 300 });
  const st = statuses(data);
  assert.equal(st.length, 2);
  assert.ok(st[0] >= 400 && st[0] < 500 && ![408, 413, 431].includes(st[0]), `got ${st[0]}`);
  assert.equal(st[1], 200);
});

const limitCases = [
  ['431 header bytes', `GET /api/health HTTP/1.1\r\nHost: t\r\nX: ${'a'.repeat(2000)}\r\n\r\n`, 431],
  ['431 header count', `GET /api/health HTTP/1.1\r\nHost: t\r\n${Array.from({ length: 25 }, (_, i) => `X${i}: 1\r\n`).join('')}\r\n`, 431],
  ['414 request line', `GET /api/health?${'q'.repeat(400)} HTTP/1.1\r\nHost: t\r\n\r\n`, 414],
  ['413 content-length, body never sent', `POST ${POST} HTTP/1.1\r\nHost: t\r\nContent-Length: 1073741824\r\n\r\n`, 413],
  ['413 chunked running total', `POST ${POST} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n400\r\n${'a'.repeat(1024)}\r\n0\r\n\r\n`, 413],
];
for (const [name, req, want] of limitCases) {
  test(`limit: ${name}`, async () => {
    const { data, closed } = await exchange(srv.port, req);
    assert.deepEqual(statuses(data), [want]);
    assert.ok(closed, 'connection closed');
    assert.match(data, /Content-Type: application\/json\r\n/);
    assert.match(data, new RegExp(`\\{"status":${want},"message":"[^"]+","data":\\{\\}\\}$`));
  });
}

const framing = [
  ['two different Content-Length', `POST ${POST} HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab`],
  ['two equal Content-Length', `POST ${POST} HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\na`],
  ['Content-Length with Transfer-Encoding', `POST ${POST} HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`],
  ['Transfer-Encoding gzip', `POST ${POST} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n`],
  ['Transfer-Encoding gzip, chunked', `POST ${POST} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n`],
  ['invalid chunk size', `POST ${POST} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n`],
  ['obs-fold', 'GET /api/health HTTP/1.1\r\nHost: t\r\nX: a\r\n b\r\n\r\n'],
  ['NUL in head', 'GET /api/health HTTP/1.1\r\nHost: t\r\nX: a\0b\r\n\r\n'],
  ['HTTP/1.1 without Host', 'GET /api/health HTTP/1.1\r\n\r\n'],
  ['bare LF line ends', 'GET /api/health HTTP/1.1\nHost: t\n\n'],
  ['space before colon', 'GET /api/health HTTP/1.1\r\nHost : t\r\n\r\n'],
  ['Transfer-Encoding in HTTP/1.0', `POST ${POST} HTTP/1.0\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`],
  ['WebSocket upgrade (no route takes upgrades)', 'GET /api/health HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n'],
];
for (const [name, req] of framing) {
  test(`framing: ${name} -> 400 and close`, async () => {
    const { data, closed } = await exchange(srv.port, req);
    assert.deepEqual(statuses(data), [400]);
    assert.ok(closed);
    assert.match(data, /Connection: close\r\n/);
  });
}

test('idle keep-alive connection is closed after idle_timeout_ms', async () => {
  const t0 = Date.now();
  const { data, closed } = await exchange(srv.port, GET, { ms: 3000 });
  assert.deepEqual(statuses(data), [200]);
  assert.ok(closed);
  assert.ok(Date.now() - t0 >= 250, 'not before the idle timeout');
});

test('HEAD sends the length but no body', async () => {
  const { data } = await exchange(srv.port, 'HEAD /api/health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n');
  assert.deepEqual(statuses(data), [200]);
  assert.match(data, /Content-Length: [1-9]\d*\r\n/);
  assert.ok(data.endsWith('\r\n\r\n'));
});

test('header deadline: a drip-fed head gets 408 and is closed', async () => {
  const s = await startServer({ args: ['--header-timeout-ms', '300', '--access-log', 'false'] });
  try {
    const drip = 'GET /api/health HTTP/1.1\r\nHost: t\r\n'.split('').concat(['X: 1\r\n']);
    const t0 = Date.now();
    const { data, closed } = await exchange(s.port, drip, { ms: 5000, gapMs: 40 });
    assert.deepEqual(statuses(data), [408]);
    assert.ok(closed);
    assert.ok(Date.now() - t0 < 2500, 'the deadline is for the whole head');
  } finally {
    await s.stop();
  }
});

test('max_connections: the third connection gets 503 with Retry-After and is closed', async () => {
  const s = await startServer({ args: ['--max-connections', '2', '--access-log', 'false'] });
  const held = [];
  try {
    for (let i = 0; i < 2; i++) {
      const sock = net.connect(s.port, '127.0.0.1');
      await new Promise((r) => sock.on('connect', r));
      held.push(sock);
    }
    await new Promise((r) => setTimeout(r, 100));
    const { data, closed } = await exchange(s.port, [], { ms: 3000 });
    assert.deepEqual(statuses(data), [503]);
    assert.match(data, /Retry-After: \d+\r\n/);
    assert.ok(closed);
  } finally {
    for (const h of held) h.destroy();
    await s.stop();
  }
});

test('SIGTERM: an in-flight request is still answered, then new connections are refused', async () => {
  const s = await startServer({ args: ['--access-log', 'false'] });
  const sock = net.connect(s.port, '127.0.0.1');
  await new Promise((r) => sock.on('connect', r));
  let data = '';
  sock.setEncoding('latin1');
  sock.on('data', (d) => (data += d));
  const closed = new Promise((r) => sock.on('close', r));
  sock.write(`POST ${POST} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{`);
  await new Promise((r) => setTimeout(r, 100));
  const exited = s.stop('SIGTERM');
  await new Promise((r) => setTimeout(r, 200));
  sock.write('}');
  await closed;
  const st = statuses(data);
  assert.equal(st.length, 1);
  assert.ok(st[0] >= 400 && st[0] < 500 && st[0] !== 408, `got ${st[0]}`);
  assert.match(data, /Connection: close\r\n/);
  assert.equal(await exited, 0);
  await assert.rejects(new Promise((resolve, reject) => {
    const c = net.connect(s.port, '127.0.0.1');
    c.on('connect', () => { c.destroy(); resolve(); });
    c.on('error', reject);
  }));
});
