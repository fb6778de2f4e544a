// Uploads that fail while their bytes are being written on the work pool:
// a client that goes away in the middle, and a disk that refuses the bytes
// (a file size limit stands in for a full disk). Either way the answer is
// PocketBase-shaped when the client is still there, no temporary file is
// left, no record is created, and the server goes on serving uploads.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';

import PocketBase from 'pocketbase';

import { cruderBin, startServer } from './lib/server.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function setup(s) {
  const r = spawnSync(cruderBin(), ['superuser', 'upsert', 'faults@example.com', 'password123', '--dir', s.dir]);
  assert.equal(r.status, 0, String(r.stderr));
  const pb = new PocketBase(s.url);
  pb.autoCancellation(false);
  await pb.collection('_superusers').authWithPassword('faults@example.com', 'password123');
  await pb.collections.create({
    name: 'up',
    type: 'base',
    createRule: '',
    viewRule: '',
    listRule: '',
    fields: [{ name: 'f', type: 'file', maxSelect: 1, maxSize: 1 << 30 }],
  });
  return pb;
}

// Sends the head of a multipart upload announcing `total` bytes, then
// `sendMB` MiB of file bytes; resolves with the response text (if any) once
// the server closes, or after `closeAfter` ms (then it destroys the socket).
function upload(port, { total, sendMB, closeAfter }) {
  return new Promise((resolve) => {
    const head = '--B\r\nContent-Disposition: form-data; name="f"; filename="big.bin"\r\n\r\n';
    const sock = net.connect(port, '127.0.0.1');
    const got = [];
    let timer;
    const done = () => {
      clearTimeout(timer);
      resolve(Buffer.concat(got).toString('latin1'));
    };
    sock.on('data', (c) => got.push(c));
    sock.on('error', () => {});
    sock.on('close', done);
    sock.write('POST /api/collections/up/records HTTP/1.1\r\nHost: x\r\n' +
      `Content-Type: multipart/form-data; boundary=B\r\nContent-Length: ${total}\r\n\r\n${head}`);
    const chunk = Buffer.alloc(1 << 20, 97);
    let sent = 0;
    const pump = () => {
      while (sent < sendMB && !sock.destroyed) {
        sent++;
        if (!sock.write(chunk)) return sock.once('drain', pump);
      }
    };
    pump();
    timer = setTimeout(() => sock.destroy(), closeAfter);
  });
}

// Waits (generously: ASan, a loaded box) for the temporaries to go.
async function tmpEmpty(dir) {
  const tmp = path.join(dir, 'storage', '.tmp');
  for (let i = 0; i < 100 && fs.readdirSync(tmp).length; i++) await sleep(50);
  return fs.readdirSync(tmp);
}

async function uploadStillWorks(pb, s) {
  const rec = await pb.collection('up').create({ f: new Blob(['after the fault']) });
  const res = await fetch(`${s.url}/api/files/${rec.collectionId}/${rec.id}/${rec.f}`);
  assert.equal(res.status, 200);
  assert.equal(await res.text(), 'after the fault');
  await pb.collection('up').delete(rec.id);
}

let srv;
let pb;
before(async () => {
  srv = await startServer();
  pb = await setup(srv);
});
after(async () => {
  if (srv) assert.equal(await srv.stop(), 0);
});

test('clients that go away while their bytes are written leave nothing behind', async () => {
  // Several at once, cut at different points, so some go while a batch is
  // on the work pool and the body is paused.
  const cuts = [];
  for (let i = 0; i < 6; i++) {
    cuts.push(upload(srv.port, { total: 256 << 20, sendMB: 4 + 3 * i, closeAfter: 150 + 60 * i }));
  }
  await Promise.all(cuts);
  assert.deepEqual(await tmpEmpty(srv.dir), []);
  const list = await pb.collection('up').getList(1, 10);
  assert.equal(list.totalItems, 0);
  await uploadStillWorks(pb, srv);
});

test('a write the disk refuses answers 500 and leaves nothing behind', async (t) => {
  // A file size limit makes write(2) fail with EFBIG past it (SIGXFSZ
  // ignored, as a shell trap's ignore survives exec): the same path as a
  // full disk. The database stays far below the limit.
  const limit = 24 << 20;
  const wrapDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cruder-fsize-'));
  const wrapper = path.join(wrapDir, 'cruder');
  fs.writeFileSync(wrapper,
    `#!/bin/sh\ntrap '' XFSZ\nexec prlimit --fsize=${limit}:${limit} '${cruderBin()}' "$@"\n`, { mode: 0o755 });
  const saved = process.env.CRUDER_BIN;
  process.env.CRUDER_BIN = wrapper;
  let s;
  try {
    s = await startServer();
  } finally {
    process.env.CRUDER_BIN = saved;
  }
  t.after(async () => {
    await s.stop();
    fs.rmSync(wrapDir, { recursive: true, force: true });
  });
  const c = await setup(s);
  const total = 40 << 20;
  const out = await upload(s.port, { total, sendMB: 40, closeAfter: 15000 });
  assert.match(out, /^HTTP\/1.1 500 /);
  assert.match(out, /"status":500/);
  assert.match(s.stderr(), /cannot write a temporary file: File too large/);
  assert.deepEqual(await tmpEmpty(s.dir), []);
  const list = await c.collection('up').getList(1, 10);
  assert.equal(list.totalItems, 0);
  await uploadStillWorks(c, s);
});
