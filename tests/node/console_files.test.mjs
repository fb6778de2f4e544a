// File fields of the record form in headless Chromium against the real
// binary: files dropped on the field (a real drop event carrying a
// DataTransfer), a local preview of a dropped image, one progress bar per
// file that ends at the file's size, the server's thumbnail of a saved image,
// download links that download the saved bytes (protected files through a
// file token), a single-file field keeping only the last file dropped, and
// saved files removed from the form.
// Screenshots go to build/console-shots/files-*.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import zlib from 'node:zlib';
import { startServer, superuserToken } from './lib/server.mjs';
import { openBrowser, screenshotEach, shot, signIn, unnamedControls } from './lib/browser.mjs';
import { client } from './lib/api.mjs';

const EMAIL = 'files@example.com';
const PASSWORD = 'files-pass-123';
// Large enough for the upload to report progress more than once.
const NOTES = 'notes line\n'.repeat(40_000);

let srv;
let token;
let b;
let page;

function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(zlib.crc32(body));
  return Buffer.concat([len, body, crc]);
}
// A w x h greyscale gradient PNG.
function png(w, h) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8;
  const raw = Buffer.alloc((w + 1) * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) raw[y * (w + 1) + 1 + x] = (x * 255) / w;
  return Buffer.concat([
    Buffer.from('89504e470d0a1a0a', 'hex'),
    chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}
const PNG = png(200, 150);

const api = (method, p, body) => client(srv, token).call(method, p, { body });

const byLabel = async (label) => (await api('GET', `/api/collections/docs/records?filter=${encodeURIComponent(`label='${label}'`)}`)).body.items[0];

before(async () => {
  srv = await startServer();
  token = await superuserToken(srv, EMAIL, PASSWORD);
  const made = await api('POST', '/api/collections', {
    name: 'docs',
    type: 'base',
    fields: [
      { name: 'label', type: 'text' },
      { name: 'files', type: 'file', maxSelect: 3, maxSize: 2 << 20 },
      { name: 'cover', type: 'file', maxSelect: 1, maxSize: 1 << 20 },
      { name: 'secret', type: 'file', maxSelect: 1, maxSize: 1 << 20, protected: true },
    ],
  });
  assert.equal(made.status, 200, JSON.stringify(made.body));
  b = await openBrowser();
  page = b.page;
  await signIn(page, srv.url, EMAIL, PASSWORD);
});

after(async () => {
  await b?.close();
  if (srv) assert.equal(await srv.stop(), 0);
});

screenshotEach(() => page, 'files');

const dialog = () => page.getByRole('dialog');
// The drop zone of file field `name` in the open form.
const zone = (name) => dialog().locator('.drop').filter({ has: page.getByText(name, { exact: true }) });

async function openDocs() {
  await page.goto(`${srv.url}/_/#/c/docs`);
  await page.reload();
  await page.getByRole('button', { name: 'New record' }).waitFor();
}

/** Drags `files` ([{name, type, base64}]) over the drop zone of `field` and drops them. */
async function drop(field, files) {
  const dt = await page.evaluateHandle(async (list) => {
    const d = new DataTransfer();
    for (const f of list) {
      const blob = await (await fetch(`data:application/octet-stream;base64,${f.base64}`)).blob();
      d.items.add(new File([blob], f.name, { type: f.type }));
    }
    return d;
  }, files.map((f) => ({ name: f.name, type: f.type, base64: Buffer.from(f.bytes).toString('base64') })));
  await zone(field).dispatchEvent('dragenter', { dataTransfer: dt });
  await zone(field).dispatchEvent('dragover', { dataTransfer: dt });
  await zone(field).getByText('Drop to add.').waitFor();
  await zone(field).dispatchEvent('drop', { dataTransfer: dt });
  await dt.dispose();
}

test('drop two files: previews and a progress bar each, filled when the upload is done', async () => {
  await openDocs();
  await page.getByRole('button', { name: 'New record' }).click();
  await dialog().getByLabel('label').fill('dropped');
  await drop('files', [
    { name: 'pixel.png', type: 'image/png', bytes: PNG },
    { name: 'notes.txt', type: 'text/plain', bytes: Buffer.from(NOTES) },
  ]);
  const bars = zone('files').getByRole('progressbar');
  assert.equal(await bars.count(), 2);
  assert.equal(await zone('files').getByRole('progressbar', { name: 'Upload of pixel.png' }).getAttribute('max'), String(PNG.length));
  assert.equal(await zone('files').getByRole('progressbar', { name: 'Upload of notes.txt' }).getAttribute('max'), String(NOTES.length));
  // The dropped image is previewed from the browser's copy before any upload.
  const preview = zone('files').locator('img.thumb');
  assert.equal(await preview.count(), 1);
  assert.match(await preview.getAttribute('src'), /^blob:/);
  await page.waitForFunction(() => document.querySelector('dialog .drop img.thumb')?.naturalWidth === 200);
  await shot(page, 'files-dropped');
  assert.deepEqual(await unnamedControls(page), []);

  // Every value each bar takes on the way, as the page renders it.
  await page.evaluate(() => {
    window.seen = {};
    new MutationObserver(() => {
      for (const p of document.querySelectorAll('dialog progress')) {
        const k = p.getAttribute('aria-label');
        (window.seen[k] ||= []).push(Number(p.value));
      }
    }).observe(document.body, { subtree: true, attributes: true, attributeFilter: ['value'] });
  });
  await dialog().getByRole('button', { name: 'Create record' }).click();
  await dialog().waitFor({ state: 'detached' });
  const seen = await page.evaluate(() => window.seen);
  for (const [name, size] of [['pixel.png', PNG.length], ['notes.txt', NOTES.length]]) {
    const values = seen[`Upload of ${name}`];
    assert.ok(values?.length, `no progress shown for ${name}: ${JSON.stringify(seen)}`);
    assert.equal(values[values.length - 1], size, `${name}: ${values}`);
    assert.deepEqual(values, [...values].sort((x, y) => x - y), `${name} went backwards: ${values}`);
  }

  const rec = await byLabel('dropped');
  assert.equal(rec.files.length, 2);
  assert.match(rec.files[0], /^pixel.*\.png$/);
  assert.match(rec.files[1], /^notes.*\.txt$/);
});

test('a saved image shows the server thumbnail; its download link downloads the file', async () => {
  const rec = await byLabel('dropped');
  await openDocs();
  await page.getByRole('button', { name: `Edit ${rec.id}` }).click();
  const thumb = zone('files').locator('img.thumb');
  await thumb.waitFor();
  assert.equal(await thumb.count(), 1, 'only the image has a thumbnail');
  const src = await thumb.getAttribute('src');
  assert.ok(src.endsWith(`/${rec.id}/${rec.files[0]}?thumb=100x100`), src);
  await page.waitForFunction(() => document.querySelector('dialog img.thumb')?.naturalWidth > 0);
  await shot(page, 'files-thumbnail');
  const t = Buffer.from(await (await fetch(new URL(src, srv.url))).arrayBuffer());
  assert.deepEqual([t.readUInt32BE(16), t.readUInt32BE(20)], [100, 100], 'a 100x100 thumbnail, not the 200x150 original');

  for (const [name, bytes] of [
    [rec.files[0], PNG],
    [rec.files[1], Buffer.from(NOTES)],
  ]) {
    const link = zone('files').getByRole('link', { name });
    assert.equal(await link.getAttribute('download'), name);
    const [download] = await Promise.all([page.waitForEvent('download'), link.click()]);
    assert.equal(download.suggestedFilename(), name);
    assert.ok(fs.readFileSync(await download.path()).equals(bytes), `${name}: downloaded bytes differ`);
  }
  await dialog().getByRole('button', { name: 'Cancel' }).click();
});

test('a single-file field keeps the last file dropped; a queued file can be dropped again before saving', async () => {
  await openDocs();
  await page.getByRole('button', { name: 'New record' }).click();
  await dialog().getByLabel('label').fill('single');
  await drop('cover', [
    { name: 'first.png', type: 'image/png', bytes: PNG },
    { name: 'second.png', type: 'image/png', bytes: PNG },
  ]);
  assert.deepEqual(await zone('cover').getByRole('progressbar').evaluateAll((l) => l.map((p) => p.getAttribute('aria-label'))), ['Upload of second.png']);
  await drop('files', [
    { name: 'keep.txt', type: 'text/plain', bytes: Buffer.from('keep') },
    { name: 'skip.txt', type: 'text/plain', bytes: Buffer.from('skip') },
  ]);
  await zone('files').getByRole('button', { name: 'Don’t upload skip.txt' }).click();
  // A drop that misses the zone is swallowed: the browser would otherwise open the file instead of the console.
  const missed = await page.evaluate(() => {
    const d = new DataTransfer();
    d.items.add(new File(['x'], 'missed.txt', { type: 'text/plain' }));
    const e = new DragEvent('drop', { dataTransfer: d, bubbles: true, cancelable: true });
    document.querySelector('dialog h2').dispatchEvent(e);
    return e.defaultPrevented;
  });
  assert.equal(missed, true);
  assert.equal(await dialog().getByText('missed.txt').count(), 0);
  assert.equal(await zone('files').getByRole('progressbar').count(), 1);
  await dialog().getByRole('button', { name: 'Create record' }).click();
  await dialog().waitFor({ state: 'detached' });
  const rec = await byLabel('single');
  assert.match(rec.cover, /^second.*\.png$/);
  assert.equal(rec.files.length, 1);
  assert.match(rec.files[0], /^keep.*\.txt$/);
});

test('remove a saved file and drop its replacement in one save', async () => {
  const rec = await byLabel('single');
  await openDocs();
  await page.getByRole('button', { name: `Edit ${rec.id}` }).click();
  await zone('files').getByRole('button', { name: `Remove ${rec.files[0]}` }).click();
  assert.equal(await zone('files').getByRole('link').count(), 0);
  await drop('files', [{ name: 'new.txt', type: 'text/plain', bytes: Buffer.from('new') }]);
  await dialog().getByRole('button', { name: 'Save record' }).click();
  await dialog().waitFor({ state: 'detached' });
  const now = (await api('GET', `/api/collections/docs/records/${rec.id}`)).body;
  assert.equal(now.files.length, 1);
  assert.match(now.files[0], /^new.*\.txt$/);
  assert.equal(now.cover, rec.cover);
});

test('a file over the field’s maxSize: the server’s error is shown on that field, nothing saved', async () => {
  await openDocs();
  await page.getByRole('button', { name: 'New record' }).click();
  await dialog().getByLabel('label').fill('too big');
  await drop('cover', [{ name: 'big.png', type: 'image/png', bytes: Buffer.alloc((1 << 20) + 1) }]);
  await dialog().getByRole('button', { name: 'Create record' }).click();
  const err = zone('cover').getByRole('alert');
  await err.waitFor();
  assert.match(await err.textContent(), /^Failed to upload "big_\w+\.png" - the maximum allowed file size is 1048576 bytes\.$/);
  assert.equal(await zone('cover').getByLabel('cover').getAttribute('aria-invalid'), 'true');
  assert.equal(await zone('files').getByRole('alert').count(), 0);
  assert.equal(await byLabel('too big'), undefined);
});

test('a protected file downloads through a file token', async () => {
  await openDocs();
  await page.getByRole('button', { name: 'New record' }).click();
  await dialog().getByLabel('label').fill('protected');
  await drop('secret', [{ name: 'secret.txt', type: 'text/plain', bytes: Buffer.from('top secret') }]);
  await dialog().getByRole('button', { name: 'Create record' }).click();
  await dialog().waitFor({ state: 'detached' });
  const rec = await byLabel('protected');
  const bare = await fetch(`${srv.url}/api/files/docs/${rec.id}/${rec.secret}`);
  assert.equal(bare.status, 403, 'no token, no file');

  await page.getByRole('button', { name: `Edit ${rec.id}` }).click();
  const link = zone('secret').getByRole('link', { name: rec.secret });
  await page.waitForFunction(() => /[?&]token=/.test(document.querySelector('dialog .drop a[href*="secret"]')?.href || ''));
  const [download] = await Promise.all([page.waitForEvent('download'), link.click()]);
  assert.equal(fs.readFileSync(await download.path(), 'utf8'), 'top secret');
  await dialog().getByRole('button', { name: 'Cancel' }).click();
});
