// Record files end to end: FormData uploads through the PocketBase SDK
// (create, append, remove, clear), downloads through pb.files.getURL with
// validators and ranges, protected files with pb.files.getToken, the
// validators (maxSize early, sniffed mimeTypes, maxSelect), path traversal,
// and a server killed in the middle of an upload.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import net from 'node:net';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';

import PocketBase, { ClientResponseError } from 'pocketbase';

import { cruderBin, startServer } from './lib/server.mjs';

let srv;
let pb; // superuser
const PNG = Buffer.from(
  '89504e470d0a1a0a0000000d4948445200000001000000010806000000' +
    '1f15c4890000000d4944415478da63f8ffff3f0005fe02fea7d6a4f60000000049454e44ae426082',
  'hex',
);

async function adminLogin(s) {
  const r = spawnSync(cruderBin(), ['superuser', 'upsert', 'files@example.com', 'password123', '--dir', s.dir]);
  assert.equal(r.status, 0, String(r.stderr));
  const c = new PocketBase(s.url);
  c.autoCancellation(false);
  await c.collection('_superusers').authWithPassword('files@example.com', 'password123');
  return c;
}

before(async () => {
  srv = await startServer();
  pb = await adminLogin(srv);
  await pb.collections.create({
    name: 'docs',
    type: 'base',
    listRule: '',
    viewRule: '',
    createRule: '',
    updateRule: '',
    deleteRule: '',
    fields: [
      { name: 'title', type: 'text' },
      { name: 'files', type: 'file', maxSelect: 3, maxSize: 1000 },
      { name: 'img', type: 'file', maxSelect: 1, mimeTypes: ['image/png'] },
      { name: 'secret', type: 'file', maxSelect: 1, protected: true },
    ],
  });
  await pb.collections.create({
    name: 'members',
    type: 'auth',
    createRule: '',
    viewRule: 'id = @request.auth.id',
    fields: [],
  });
});
after(async () => {
  if (srv) assert.equal(await srv.stop(), 0);
});

function blob(text, type = 'application/octet-stream') {
  return new Blob([text], { type });
}

function stored(rec) {
  return fs.readdirSync(path.join(srv.dir, 'storage', rec.collectionId, rec.id)).sort();
}

// A raw HTTP/1.1 exchange: the full response text (headers and body).
function raw(port, text, { closeAfter = 2000 } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    const chunks = [];
    sock.on('data', (c) => chunks.push(c));
    sock.on('error', reject);
    sock.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
    sock.write(text);
    setTimeout(() => sock.destroy(), closeAfter);
  });
}

test('FormData create, getURL download, append, remove and clear', async () => {
  const fd = new FormData();
  fd.append('title', 'first');
  fd.append('files', blob('hello world'), 'Hello World.TXT');
  fd.append('files', blob('second file'), '../../etc/passwd');
  const rec = await pb.collection('docs').create(fd);
  assert.equal(rec.files.length, 2);
  assert.match(rec.files[0], /^hello_world_[a-z0-9]{10}\.txt$/);
  assert.match(rec.files[1], /^passwd_[a-z0-9]{10}$/);
  assert.deepEqual(stored(rec), [...rec.files].sort());

  const url = pb.files.getURL(rec, rec.files[0]);
  let res = await fetch(url);
  assert.equal(res.status, 200);
  assert.equal(await res.text(), 'hello world');
  assert.equal(res.headers.get('content-type'), 'text/plain; charset=utf-8');
  assert.equal(res.headers.get('cache-control'), 'public, max-age=31536000, immutable');
  assert.equal(res.headers.get('content-disposition'), `inline; filename="${rec.files[0]}"`);
  const etag = res.headers.get('etag');
  const lm = res.headers.get('last-modified');
  assert.match(etag, /^"[0-9a-f]+-[0-9a-f]+"$/);

  res = await fetch(url, { headers: { 'If-None-Match': etag } });
  assert.equal(res.status, 304);
  res = await fetch(url, { headers: { 'If-Modified-Since': lm } });
  assert.equal(res.status, 304);
  res = await fetch(pb.files.getURL(rec, rec.files[0], { download: true }));
  assert.equal(res.headers.get('content-disposition'), `attachment; filename="${rec.files[0]}"`);
  res = await fetch(url, { method: 'HEAD' });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-length'), '11');

  // Ranges.
  res = await fetch(url, { headers: { Range: 'bytes=6-' } });
  assert.equal(res.status, 206);
  assert.equal(res.headers.get('content-range'), 'bytes 6-10/11');
  assert.equal(await res.text(), 'world');
  res = await fetch(url, { headers: { Range: 'bytes=-5' } });
  assert.equal(await res.text(), 'world');
  res = await fetch(url, { headers: { Range: 'bytes=0-0' } });
  assert.equal(await res.text(), 'h');
  res = await fetch(url, { headers: { Range: 'bytes=11-' } });
  assert.equal(res.status, 416);
  assert.equal(res.headers.get('content-range'), 'bytes */11');
  assert.equal((await res.json()).status, 416);
  res = await fetch(url, { headers: { Range: 'bytes=0-3,2-5' } });
  assert.equal(res.status, 416);
  res = await fetch(url, { headers: { Range: 'bytes=0-3', 'If-Range': '"stale"' } });
  assert.equal(res.status, 200);
  res = await fetch(url, { headers: { Range: 'bytes=0-3', 'If-Range': etag } });
  assert.equal(res.status, 206);
  assert.equal(await res.text(), 'hell');

  // Append one, remove one: the removed file is deleted after the commit.
  const upd = new FormData();
  upd.append('files+', blob('third'), 'c.bin');
  upd.append('files-', rec.files[0]);
  const rec2 = await pb.collection('docs').update(rec.id, upd);
  assert.equal(rec2.files.length, 2);
  assert.equal(rec2.files[0], rec.files[1]);
  await new Promise((r) => setTimeout(r, 200));
  assert.deepEqual(stored(rec2), [...rec2.files].sort());
  assert.equal((await fetch(url)).status, 404);

  // JSON can keep or drop files, never name files that were not uploaded.
  const rec3 = await pb.collection('docs').update(rec.id, { files: [rec2.files[1], 'made_up_0123456789.txt'] });
  assert.deepEqual(rec3.files, [rec2.files[1]]);
  const rec4 = await pb.collection('docs').update(rec.id, { files: [] });
  assert.deepEqual(rec4.files, []);
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(fs.existsSync(path.join(srv.dir, 'storage', rec.collectionId, rec.id)), false);

  // Deleting the record deletes its files.
  const rec5 = await pb.collection('docs').create({ title: 'x', files: [blob('abc')] });
  assert.equal(stored(rec5).length, 1);
  await pb.collection('docs').delete(rec5.id);
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(fs.existsSync(path.join(srv.dir, 'storage', rec5.collectionId, rec5.id)), false);
});

test('downloads answered from the loop cache follow deletes, removals and schema changes', async () => {
  const col = await pb.collections.create({
    name: 'hot',
    type: 'base',
    viewRule: '',
    fields: [{ name: 'f', type: 'file', maxSelect: 2, maxSize: 1 << 20 }],
  });
  const big = Buffer.alloc(100 << 10, 7); // kept open rather than in memory
  const make = () => {
    const fd = new FormData();
    fd.append('f', blob('small bytes'), 's.txt');
    fd.append('f', new Blob([big]), 'b.bin');
    return pb.collection('hot').create(fd);
  };
  const urls = (r) => r.f.map((n) => pb.files.getURL(r, n));
  const statuses = async (r) => Promise.all(urls(r).map(async (u) => (await fetch(u)).status));
  const warm = async (r) => {
    for (let i = 0; i < 3; i++) assert.deepEqual(await statuses(r), [200, 200]);
  };

  // A delete: no sleep, the cache must not outlive the commit's answer.
  let rec = await make();
  await warm(rec);
  assert.equal(Buffer.from(await (await fetch(urls(rec)[1])).arrayBuffer()).compare(big), 0);
  await pb.collection('hot').delete(rec.id);
  assert.deepEqual(await statuses(rec), [404, 404]);

  // A file removed by an update goes at once; the one kept stays.
  rec = await make();
  await warm(rec);
  await pb.collection('hot').update(rec.id, { 'f-': [rec.f[0]] });
  assert.deepEqual(await statuses(rec), [404, 200]);

  // The field turns protected: a token is needed at once.
  rec = await make();
  await warm(rec);
  const f = { ...col.fields.find((x) => x.name === 'f'), protected: true };
  await pb.collections.update('hot', { fields: [...col.fields.filter((x) => x.name !== 'f'), f] });
  assert.deepEqual(await statuses(rec), [403, 403]);
  const token = await pb.files.getToken();
  for (const n of rec.f) assert.equal((await fetch(pb.files.getURL(rec, n, { token }))).status, 200);
  await pb.collections.update('hot', { fields: [...col.fields.filter((x) => x.name !== 'f'), { ...f, protected: false }] });

  // Files deleted behind the server's back (another process): an open one
  // at once, one held in memory within the cache's second.
  await warm(rec);
  for (const n of rec.f) fs.unlinkSync(path.join(srv.dir, 'storage', rec.collectionId, rec.id, n));
  assert.equal((await fetch(urls(rec)[1])).status, 404);
  await new Promise((r) => setTimeout(r, 1100));
  assert.deepEqual(await statuses(rec), [404, 404]);
  await pb.collections.delete('hot');
});

test('files of records deleted by cascade are deleted after the commit', async () => {
  const docs = await pb.collections.getOne('docs');
  await pb.collections.create({
    name: 'notes',
    type: 'base',
    deleteRule: '',
    fields: [
      { name: 'doc', type: 'relation', collectionId: docs.id, maxSelect: 1, cascadeDelete: true },
      { name: 'note', type: 'relation', collectionId: docs.id, maxSelect: 1, cascadeDelete: false },
      { name: 'att', type: 'file', maxSelect: 1 },
    ],
  });
  const notes = await pb.collections.getOne('notes');
  // A second level: replies cascade from notes.
  await pb.collections.create({
    name: 'replies',
    type: 'base',
    fields: [
      { name: 'note', type: 'relation', collectionId: notes.id, maxSelect: 1, cascadeDelete: true },
      { name: 'att', type: 'file', maxSelect: 1 },
    ],
  });
  const parent = await pb.collection('docs').create({ title: 'p', files: [blob('parent')] });
  const other = await pb.collection('docs').create({ title: 'o', files: [blob('other')] });
  const child = await pb.collection('notes').create({ doc: parent.id, att: blob('child') });
  const kept = await pb.collection('notes').create({ note: parent.id, att: blob('kept') });
  const unrelated = await pb.collection('notes').create({ doc: other.id, att: blob('unrelated') });
  const reply = await pb.collection('replies').create({ note: child.id, att: blob('reply') });
  const dir = (r) => path.join(srv.dir, 'storage', r.collectionId, r.id);
  for (const r of [parent, child, kept, unrelated, reply]) assert.equal(stored(r).length, 1);

  await pb.collection('docs').delete(parent.id);
  await new Promise((r) => setTimeout(r, 200));
  for (const r of [parent, child, reply]) assert.equal(fs.existsSync(dir(r)), false, r.collectionName);
  // Not deleted by the cascade: a field without cascadeDelete is only cleared.
  assert.equal((await pb.collection('notes').getOne(kept.id)).note, '');
  assert.deepEqual(stored(kept), [kept.att]);
  assert.deepEqual(stored(unrelated), [unrelated.att]);
  assert.deepEqual(stored(other), other.files);

  // A cascade refused further down (a required relation to the child) rolls
  // back the whole delete, and no file goes.
  await pb.collections.create({
    name: 'pins',
    type: 'base',
    fields: [{ name: 'note', type: 'relation', collectionId: notes.id, maxSelect: 1, required: true }],
  });
  const pinned = await pb.collection('notes').create({ doc: other.id, att: blob('pinned') });
  await pb.collection('pins').create({ note: pinned.id });
  await assert.rejects(pb.collection('docs').delete(other.id), (e) => e.status === 400);
  await new Promise((r) => setTimeout(r, 200));
  assert.deepEqual(stored(other), other.files);
  assert.deepEqual(stored(unrelated), [unrelated.att]);
  assert.deepEqual(stored(pinned), [pinned.att]);
  await pb.collections.delete('pins');
  await pb.collection('docs').delete(other.id);
  await new Promise((r) => setTimeout(r, 200));
  for (const r of [other, unrelated, pinned]) assert.equal(fs.existsSync(dir(r)), false);
  await pb.collections.delete('replies');
  await pb.collections.delete('notes');
});

test('cruder superuser delete deletes the files of the records it cascaded to', async () => {
  const su = await pb.collections.getOne('_superusers');
  await pb.collections.create({
    name: 'su_notes',
    type: 'base',
    fields: [
      { name: 'owner', type: 'relation', collectionId: su.id, maxSelect: 1, cascadeDelete: true },
      { name: 'att', type: 'file', maxSelect: 1 },
    ],
  });
  const r = spawnSync(cruderBin(), ['superuser', 'upsert', 'gone@example.com', 'password123', '--dir', srv.dir]);
  assert.equal(r.status, 0, String(r.stderr));
  const gone = await pb.collection('_superusers').getFirstListItem('email = "gone@example.com"');
  const self = pb.authStore.record;
  const note = await pb.collection('su_notes').create({ owner: gone.id, att: blob('owned') });
  const mine = await pb.collection('su_notes').create({ owner: self.id, att: blob('mine') });
  assert.deepEqual(stored(note), [note.att]);

  const d = spawnSync(cruderBin(), ['superuser', 'delete', 'gone@example.com', '--dir', srv.dir]);
  assert.equal(d.status, 0, String(d.stderr));
  await assert.rejects(pb.collection('su_notes').getOne(note.id), (e) => e.status === 404);
  assert.equal(fs.existsSync(path.join(srv.dir, 'storage', note.collectionId, note.id)), false);
  assert.deepEqual(stored(mine), [mine.att]);
  await pb.collections.delete('su_notes');
});

test('validators: maxSize, sniffed mimeTypes, maxSelect; nothing stored on failure', async () => {
  const before_ = fs.readdirSync(path.join(srv.dir, 'storage', '.tmp')).length;
  await assert.rejects(
    pb.collection('docs').create({ title: 'big', files: [blob('x'.repeat(5000))] }),
    (e) => e instanceof ClientResponseError && e.status === 400 &&
      e.response.data.files.code === 'validation_file_size_limit',
  );
  // A lying Content-Type: the bytes are text, not PNG.
  await assert.rejects(
    pb.collection('docs').create({ img: blob('not a png', 'image/png') }),
    (e) => e.status === 400 && e.response.data.img.code === 'validation_invalid_mime_type',
  );
  const ok = await pb.collection('docs').create({ img: new Blob([PNG], { type: 'text/plain' }) });
  assert.match(ok.img, /^blob_[a-z0-9]{10}$/); // FormData's name for a Blob
  const res = await fetch(pb.files.getURL(ok, ok.img));
  assert.equal(res.headers.get('content-type'), 'image/png');
  await assert.rejects(
    pb.collection('docs').create({ files: [blob('1'), blob('2'), blob('3'), blob('4')] }),
    (e) => e.status === 400 && e.response.data.files.code === 'validation_too_many_values',
  );
  const list = await pb.collection('docs').getFullList({ filter: 'title = "big"' });
  assert.equal(list.length, 0);
  assert.equal(fs.readdirSync(path.join(srv.dir, 'storage', '.tmp')).length, before_);
});

test('bad input: traversal, missing record, bad multipart, truncated upload', async () => {
  const rec = await pb.collection('docs').create({ files: [blob('data')] });
  const base = `/api/files/${rec.collectionId}/${rec.id}/`;
  for (const p of ['..', '%2e%2e', '..%2f..%2fdata.db', '%00', 'a%5cb', '%2fetc%2fpasswd', '.tmp', rec.files[0] + '%00']) {
    const res = await fetch(srv.url + base + p);
    assert.equal(res.status, 404, p);
    assert.equal((await res.json()).status, 404);
  }
  assert.equal((await fetch(`${srv.url}/api/files/docs/nope00000000000/${rec.files[0]}`)).status, 404);
  assert.equal((await fetch(`${srv.url}/api/files/nope/${rec.id}/${rec.files[0]}`)).status, 404);
  assert.equal((await fetch(`${srv.url}/api/files/docs/..%2f${rec.id}/${rec.files[0]}`)).status, 404);

  const port = srv.port;
  // No boundary.
  let out = await raw(port, 'POST /api/collections/docs/records HTTP/1.1\r\nHost: x\r\n' +
    'Content-Type: multipart/form-data\r\nContent-Length: 4\r\nConnection: close\r\n\r\nabcd');
  assert.match(out, /^HTTP\/1.1 400/);
  assert.match(out, /boundary/);
  // A body that never reaches its closing delimiter.
  const body = '--XX\r\nContent-Disposition: form-data; name="files"; filename="a.txt"\r\n\r\nhalf a file';
  out = await raw(port, 'POST /api/collections/docs/records HTTP/1.1\r\nHost: x\r\n' +
    `Content-Type: multipart/form-data; boundary=XX\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
  assert.match(out, /^HTTP\/1.1 400/);
  // A client that stops in the middle.
  await raw(port, 'POST /api/collections/docs/records HTTP/1.1\r\nHost: x\r\n' +
    `Content-Type: multipart/form-data; boundary=XX\r\nContent-Length: 100000\r\n\r\n${body}`, { closeAfter: 200 });
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(fs.readdirSync(path.join(srv.dir, 'storage', '.tmp')).length, 0);
  const list = await pb.collection('docs').getList(1, 50);
  assert.ok(list.items.every((r) => r.files.every((f) => fs.existsSync(path.join(srv.dir, 'storage', r.collectionId, r.id, f)))));
  assert.equal((await fetch(`${srv.url}/api/health`)).status, 200);
});

test('bad input, continued: early maxSize, endless boundary, hostile names, ranges past the end', async () => {
  const keep = await pb.collection('docs').create({ title: 'keep', files: [blob('kept bytes')] });
  const keptPath = path.join(srv.dir, 'storage', keep.collectionId, keep.id, keep.files[0]);
  const port = srv.port;
  const post = (ct, len) => 'POST /api/collections/docs/records HTTP/1.1\r\nHost: x\r\n' +
    `Content-Type: ${ct}\r\nContent-Length: ${len}\r\n\r\n`;

  // Over maxSize (1000): answered as soon as the limit is passed, long
  // before the announced 64 MiB could arrive.
  const head = '--XX\r\nContent-Disposition: form-data; name="files"; filename="big.bin"\r\n\r\n';
  let out = await raw(port, post('multipart/form-data; boundary=XX', 64 << 20) + head + 'x'.repeat(4000),
    { closeAfter: 3000 });
  assert.match(out, /^HTTP\/1.1 400/);
  assert.match(out, /validation_file_size_limit/);

  // A boundary longer than RFC 2046 allows, and a body that never shows
  // its delimiter: refused without reading on.
  out = await raw(port, post(`multipart/form-data; boundary=${'b'.repeat(200)}`, 10) + '0123456789');
  assert.match(out, /^HTTP\/1.1 400/);
  assert.match(out, /boundary/);
  out = await raw(port, post('multipart/form-data; boundary=XX', 1 << 20) + 'junk '.repeat(1000),
    { closeAfter: 3000 });
  assert.match(out, /^HTTP\/1.1 400/);
  assert.equal(JSON.parse(out.slice(out.indexOf('\r\n\r\n') + 4)).status, 400);

  // Client file names are never paths: backslashes, absolute paths; a NUL
  // in a part's headers makes them malformed.
  const fd = new FormData();
  fd.append('files', blob('a'), '..\\..\\evil.TXT');
  fd.append('files', blob('b'), '/etc/passwd');
  const rec = await pb.collection('docs').create(fd);
  assert.match(rec.files[0], /^evil_[a-z0-9]{10}\.txt$/);
  assert.match(rec.files[1], /^passwd_[a-z0-9]{10}$/);
  assert.deepEqual(stored(rec), [...rec.files].sort());
  const nul = new FormData();
  nul.append('files', blob('c'), 'nul\u0000.sh');
  await assert.rejects(pb.collection('docs').create(nul),
    (e) => e.status === 400 && /Malformed multipart/.test(e.response.message));

  // "+files" puts new files first, as PocketBase's prepend does.
  const pre = new FormData();
  pre.append('+files', blob('d'), 'first.txt');
  const rec2 = await pb.collection('docs').update(rec.id, pre);
  assert.match(rec2.files[0], /^first_/);
  assert.deepEqual(rec2.files.slice(1), rec.files);

  // A range ending past the file is cut at its end.
  const url = pb.files.getURL(keep, keep.files[0]);
  const res = await fetch(url, { headers: { Range: 'bytes=5-999999' } });
  assert.equal(res.status, 206);
  assert.equal(res.headers.get('content-range'), 'bytes 5-9/10');
  assert.equal(await res.text(), 'bytes');

  // Nothing stored before changed, and the server still serves.
  assert.equal(fs.readFileSync(keptPath, 'utf8'), 'kept bytes');
  assert.equal(await (await fetch(url)).text(), 'kept bytes');
  assert.equal(fs.readdirSync(path.join(srv.dir, 'storage', '.tmp')).length, 0);
  await pb.collection('docs').delete(rec.id);
  await pb.collection('docs').delete(keep.id);
});

test('protected files need a file token of a caller the view rule admits', async () => {
  const rec = await pb.collection('docs').create({ secret: blob('top secret') });
  const url = pb.files.getURL(rec, rec.secret);
  let res = await fetch(url);
  assert.equal(res.status, 403);
  assert.equal((await res.json()).status, 403);
  res = await fetch(url + '?token=garbage');
  assert.equal(res.status, 403);

  const token = await pb.files.getToken();
  assert.equal(typeof token, 'string');
  res = await fetch(pb.files.getURL(rec, rec.secret, { token }));
  assert.equal(res.status, 200);
  assert.equal(await res.text(), 'top secret');
  assert.match(res.headers.get('cache-control'), /^private/);

  const anon = new PocketBase(srv.url);
  await assert.rejects(anon.files.getToken(), (e) => e.status === 401);

  // A member's token: the view rule of docs is "" (everyone), so it passes.
  await anon.collection('members').create({ email: 'm@example.com', password: 'password123', passwordConfirm: 'password123' });
  await anon.collection('members').authWithPassword('m@example.com', 'password123');
  const mt = await anon.files.getToken();
  res = await fetch(anon.files.getURL(rec, rec.secret, { token: mt }));
  assert.equal(res.status, 200);
  // An auth token is not a file token.
  res = await fetch(anon.files.getURL(rec, rec.secret, { token: anon.authStore.token }));
  assert.equal(res.status, 403);
});

test('a server killed in the middle of an upload leaves nothing half-written', async () => {
  const s = await startServer();
  try {
    const c = await adminLogin(s);
    const col = await c.collections.create({
      name: 'big', type: 'base', createRule: '', viewRule: '', listRule: '',
      fields: [{ name: 'f', type: 'file', maxSelect: 1, maxSize: 1 << 30 }],
    });
    const port = s.port;
    const head = '--B\r\nContent-Disposition: form-data; name="f"; filename="big.bin"\r\n\r\n';
    const total = 64 << 20;
    await new Promise((resolve, reject) => {
      const sock = net.connect(port, '127.0.0.1', () => {
        sock.write('POST /api/collections/big/records HTTP/1.1\r\nHost: x\r\n' +
          `Content-Type: multipart/form-data; boundary=B\r\nContent-Length: ${total}\r\n\r\n${head}`);
        const chunk = Buffer.alloc(1 << 20, 97);
        let sent = 0;
        const pump = () => {
          while (sent < 16) {
            sent++;
            if (!sock.write(chunk)) return sock.once('drain', pump);
          }
          resolve();
        };
        pump();
      });
      sock.on('error', () => {});
      sock.on('close', () => resolve());
      setTimeout(() => reject(new Error('upload stalled')), 10000);
    });
    await new Promise((r) => setTimeout(r, 300));
    const tmp = path.join(s.dir, 'storage', '.tmp');
    assert.ok(fs.readdirSync(tmp).length >= 1, 'the upload is in flight in a temporary file');
    await s.kill9();
    const again = await startServer({ dir: s.dir });
    try {
      assert.equal(fs.readdirSync(tmp).length, 0, 'the sweep deleted the temporary');
      const c2 = new PocketBase(again.url);
      const list = await c2.collection('big').getList(1, 10);
      assert.equal(list.totalItems, 0);
      assert.equal(fs.existsSync(path.join(s.dir, 'storage', col.id)), false);
    } finally {
      await again.stop();
    }
  } finally {
    await s.stop().catch(() => {});
  }
});
