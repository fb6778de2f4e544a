// Thumbnails end to end through the PocketBase SDK: pb.files.getURL(record,
// name, {thumb}) for every PocketBase mode, only for the sizes the field
// lists (and 100x100), the original for anything else, cached on disk,
// concurrent first requests answered alike, and an image claiming huge
// dimensions refused without being decoded. Test images are PNGs written
// here, so their sizes can be read back from the IHDR chunk.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { spawnSync } from 'node:child_process';

import PocketBase from 'pocketbase';

import { cruderBin, startServer } from './lib/server.mjs';

let srv;
let pb;

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}
// A w x h grey PNG; raw rows are given (a bomb) or a gradient.
function png(w, h, idat) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // greyscale
  if (!idat) {
    const raw = Buffer.alloc((w + 1) * h);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) raw[y * (w + 1) + 1 + x] = (x * 255) / w;
    idat = zlib.deflateSync(raw);
  }
  return Buffer.concat([
    Buffer.from('89504e470d0a1a0a', 'hex'),
    chunk('IHDR', ihdr),
    chunk('IDAT', idat),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}
function pngSize(buf) {
  assert.equal(buf.subarray(1, 4).toString('latin1'), 'PNG');
  return [buf.readUInt32BE(16), buf.readUInt32BE(20)];
}

before(async () => {
  srv = await startServer();
  const r = spawnSync(cruderBin(), ['superuser', 'upsert', 'thumbs@example.com', 'password123', '--dir', srv.dir]);
  assert.equal(r.status, 0, String(r.stderr));
  pb = new PocketBase(srv.url);
  pb.autoCancellation(false);
  await pb.collection('_superusers').authWithPassword('thumbs@example.com', 'password123');
  await pb.collections.create({
    name: 'pics',
    type: 'base',
    viewRule: '',
    createRule: '',
    fields: [{ name: 'img', type: 'file', maxSelect: 1, maxSize: 1 << 20, thumbs: ['20x20', '20x20t', '20x20b', '10x0', '0x5', '30x10f', '5x5'] }],
  });
});
after(async () => {
  if (srv) assert.equal(await srv.stop(), 0);
});

async function upload(bytes, name = 'photo.png') {
  const fd = new FormData();
  fd.append('img', new Blob([bytes], { type: 'image/png' }), name);
  return pb.collection('pics').create(fd);
}

async function get(url) {
  const res = await fetch(url);
  return { res, body: Buffer.from(await res.arrayBuffer()) };
}

test('thumb sizes and modes through pb.files.getURL', async () => {
  const original = png(40, 20);
  const rec = await upload(original);
  const cases = {
    '20x20': [20, 20],
    '20x20t': [20, 20],
    '20x20b': [20, 20],
    '10x0': [10, 5],
    '0x5': [10, 5],
    '30x10f': [20, 10],
    '100x100': [100, 100], // PocketBase's default size, always allowed
  };
  for (const [thumb, size] of Object.entries(cases)) {
    const { res, body } = await get(pb.files.getURL(rec, rec.img, { thumb }));
    assert.equal(res.status, 200, thumb);
    assert.equal(res.headers.get('content-type'), 'image/png', thumb);
    assert.deepEqual(pngSize(body), size, thumb);
    assert.match(res.headers.get('cache-control'), /public/);
    assert.ok(res.headers.get('etag'));
  }
  const dir = path.join(srv.dir, 'storage', rec.collectionId, rec.id, `thumbs_${rec.img}`);
  const made = fs.readdirSync(dir).sort();
  assert.deepEqual(made, Object.keys(cases).map((t) => `${t}_${rec.img}`).sort());

  // Unlisted or invalid sizes get the original, as in PocketBase.
  for (const thumb of ['50x50', 'abc', '0x0', '20x20z']) {
    const { res, body } = await get(pb.files.getURL(rec, rec.img, { thumb }));
    assert.equal(res.status, 200, thumb);
    assert.ok(body.equals(original), thumb);
  }

  // The cached thumbnail revalidates like any file.
  const first = await get(pb.files.getURL(rec, rec.img, { thumb: '20x20' }));
  const again = await fetch(pb.files.getURL(rec, rec.img, { thumb: '20x20' }), {
    headers: { 'If-None-Match': first.res.headers.get('etag') },
  });
  assert.equal(again.status, 304);
});

test('concurrent first requests for one thumbnail get the same bytes', async () => {
  const rec = await upload(png(400, 300));
  const url = pb.files.getURL(rec, rec.img, { thumb: '5x5' });
  const all = await Promise.all(Array.from({ length: 12 }, () => get(url)));
  for (const { res, body } of all) {
    assert.equal(res.status, 200);
    assert.deepEqual(pngSize(body), [5, 5]);
    assert.ok(body.equals(all[0].body));
  }
  const dir = path.join(srv.dir, 'storage', rec.collectionId, rec.id, `thumbs_${rec.img}`);
  assert.deepEqual(fs.readdirSync(dir), [`5x5_${rec.img}`]); // no temporaries left
});

test('an image claiming huge dimensions is refused, the original still served', async () => {
  const bomb = png(60000, 60000, zlib.deflateSync(Buffer.alloc(1 << 16)));
  const rec = await upload(bomb, 'bomb.png');
  const { res, body } = await get(pb.files.getURL(rec, rec.img, { thumb: '20x20' }));
  assert.equal(res.status, 400);
  const err = JSON.parse(body.toString());
  assert.equal(err.status, 400);
  assert.match(err.message, /too large to make a thumbnail/);
  assert.deepEqual(err.data, {});
  const orig = await get(pb.files.getURL(rec, rec.img));
  assert.equal(orig.res.status, 200);
  assert.ok(orig.body.equals(bomb));
  // and the server keeps serving
  assert.equal((await fetch(`${srv.url}/api/health`)).status, 200);
});

test('files that are not images get the original for any thumb', async () => {
  const fd = new FormData();
  fd.append('img', new Blob(['just text'], { type: 'text/plain' }), 'notes.txt');
  const rec = await pb.collection('pics').create(fd);
  const { res, body } = await get(pb.files.getURL(rec, rec.img, { thumb: '20x20' }));
  assert.equal(res.status, 200);
  assert.equal(body.toString(), 'just text');
});
