// Large transfers: a client that stops reading a file download is dropped
// after the send timeout while the server keeps serving, and a large upload
// streamed while the body is paused for each write arrives whole, and so do
// chunked uploads cut in uneven pieces, two at once.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import crypto from 'node:crypto';
import net from 'node:net';
import { spawnSync } from 'node:child_process';

import PocketBase from 'pocketbase';

import { cruderBin, startServer } from './lib/server.mjs';

let srv;
let pb;
const SIZE = 64 << 20; // more than loopback socket buffers hold

before(async () => {
  srv = await startServer({ args: ['--body-timeout-ms=1500'] });
  const r = spawnSync(cruderBin(), ['superuser', 'upsert', 'big@example.com', 'password123', '--dir', srv.dir]);
  assert.equal(r.status, 0, String(r.stderr));
  pb = new PocketBase(srv.url);
  pb.autoCancellation(false);
  await pb.collection('_superusers').authWithPassword('big@example.com', 'password123');
  await pb.collections.create({
    name: 'big',
    type: 'base',
    viewRule: '',
    createRule: '',
    fields: [{ name: 'blob', type: 'file', maxSelect: 1, maxSize: 2 * SIZE }],
  });
});
after(async () => {
  if (srv) assert.equal(await srv.stop(), 0);
});

let rec;
let digest;

test('a large upload arrives whole', async () => {
  const bytes = crypto.randomBytes(SIZE);
  digest = crypto.createHash('sha256').update(bytes).digest('hex');
  const fd = new FormData();
  fd.append('blob', new Blob([bytes]), 'big.bin');
  rec = await pb.collection('big').create(fd);
  const res = await fetch(pb.files.getURL(rec, rec.blob));
  assert.equal(res.status, 200);
  const got = Buffer.from(await res.arrayBuffer());
  assert.equal(got.length, SIZE);
  assert.equal(crypto.createHash('sha256').update(got).digest('hex'), digest);
});

test('a client that stops reading a download is dropped after the send timeout', async () => {
  const u = new URL(pb.files.getURL(rec, rec.blob));
  const sock = net.connect(Number(u.port), '127.0.0.1');
  sock.pause(); // read nothing: the server's sendfile fills the buffers and stalls
  let received = 0;
  sock.on('data', (c) => (received += c.length));
  const closed = new Promise((resolve) => sock.on('close', resolve));
  sock.on('error', () => {});
  sock.write(`GET ${u.pathname} HTTP/1.1\r\nHost: x\r\n\r\n`);
  // Meanwhile the server answers others.
  await new Promise((r) => setTimeout(r, 300));
  assert.equal((await fetch(`${srv.url}/api/health`)).status, 200);
  // 1.5 s without progress, then at most the 2 s linger.
  await new Promise((r) => setTimeout(r, 4500));
  sock.resume(); // what the kernel still holds, then the end: never the whole file
  const timer = new Promise((_, reject) => setTimeout(() => reject(new Error('not dropped')), 5000));
  await Promise.race([closed, timer]);
  assert.ok(received < SIZE, `received ${received}`);
  assert.equal((await fetch(`${srv.url}/api/health`)).status, 200);
});

test('a chunked upload, two files in uneven chunks, arrives whole', async () => {
  // Without a Content-Length every piece may be the last, so each piece's
  // file bytes are written before the next is read.
  const a = crypto.randomBytes(3 << 20);
  const b = crypto.randomBytes(1000);
  const part = (name, file) =>
    `--C\r\nContent-Disposition: form-data; name="${name}"; filename="${file}"\r\n\r\n`;
  const body = Buffer.concat([
    Buffer.from(part('blob', 'a.bin')), a, Buffer.from('\r\n--C--\r\n'),
  ]);
  // A second request's file, to check no byte goes to the wrong file.
  const body2 = Buffer.concat([Buffer.from(part('blob', 'b.bin')), b, Buffer.from('\r\n--C--\r\n')]);
  const send = (bytes) => new Promise((resolve, reject) => {
    const sock = net.connect(srv.port, '127.0.0.1', () => {
      sock.write('POST /api/collections/big/records HTTP/1.1\r\nHost: x\r\nConnection: close\r\n' +
        'Content-Type: multipart/form-data; boundary=C\r\nTransfer-Encoding: chunked\r\n\r\n');
      for (let at = 0, n = 1; at < bytes.length; at += n, n = (n * 7) % 70001 + 1) {
        const piece = bytes.subarray(at, at + n);
        sock.write(`${piece.length.toString(16)}\r\n`);
        sock.write(piece);
        sock.write('\r\n');
      }
      sock.write('0\r\n\r\n');
    });
    const got = [];
    sock.on('data', (c) => got.push(c));
    sock.on('error', reject);
    sock.on('close', () => resolve(Buffer.concat(got).toString('latin1')));
  });
  const [out, out2] = await Promise.all([send(body), send(body2)]);
  for (const [o, bytes] of [[out, a], [out2, b]]) {
    assert.match(o, /^HTTP\/1.1 200/);
    const r = JSON.parse(o.slice(o.indexOf('\r\n\r\n') + 4));
    const res = await fetch(`${srv.url}/api/files/${r.collectionId}/${r.id}/${r.blob}`);
    assert.ok(Buffer.from(await res.arrayBuffer()).equals(bytes));
  }
});
