// End-to-end tests of the console (/_/) in headless Chromium driven by
// playwright-core, against the real binary: sign-in, a collection created
// with several field types (and the options of every type), records created,
// paged, edited (a validation error on its field, a 412 conflict showing both
// versions), filtered, sorted and deleted, a collection deleted, the server
// view, keyboard-only use, a name on every control of every view, 1280 and
// 390 px, the dark theme, sign-out, and the weight of the first page load.
// The relation pickers, file fields and the full conflict flow have their
// own files (console_relations, console_files, console_conflict).
// Screenshots of every test go to build/console-shots/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer, superuserToken } from './lib/server.mjs';
import { openBrowser, overflowing, screenshotEach, shot as shotOf, unnamedControls } from './lib/browser.mjs';
import { buildConsole } from '../../console/build.mjs';
import { client } from './lib/api.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const EMAIL = 'admin@example.com';
const PASSWORD = 'console-pass-123';
const PAGE_BUDGET = 150 * 1024;

let srv;
let token;
let b;
let page;

before(async () => {
  srv = await startServer();
  token = await superuserToken(srv, EMAIL, PASSWORD);
  b = await openBrowser();
  page = b.page;
});

after(async () => {
  await b?.close();
  if (srv) assert.equal(await srv.stop(), 0);
});

screenshotEach(() => page, 'console');
const shot = (name) => shotOf(page, name);

const api = (method, p, body) => client(srv, token).call(method, p, { body });

// The bytes the server sends for `url` with Accept-Encoding `enc`, undecoded.
function encodedSize(url, enc) {
  return new Promise((resolve, reject) => {
    http
      .get(url, { headers: { 'accept-encoding': enc } }, (res) => {
        let n = 0;
        res.on('data', (c) => (n += c.length));
        res.on('end', () => resolve({ n, status: res.statusCode, encoding: res.headers['content-encoding'] }));
      })
      .on('error', reject);
  });
}

test('the committed bundle is what console/ builds', async () => {
  const built = await buildConsole();
  for (const [name, bytes] of Object.entries(built)) {
    const committed = fs.readFileSync(path.join(ROOT, 'web/assets', name));
    assert.ok(committed.equals(Buffer.from(bytes)), `web/assets/${name} is stale: run make console`);
  }
});

test('first page load: HTML, JS and CSS under 150 KB compressed', async (t) => {
  const urls = [];
  page.on('request', (r) => urls.push(r.url()));
  await page.goto(`${srv.url}/_/`);
  await page.getByLabel('Email').waitFor();
  page.removeAllListeners('request');
  const own = urls.filter((u) => u.startsWith(srv.url));
  assert.ok(own.some((u) => /\/_\/assets\/console\.[0-9a-f]{10}\.js$/.test(u)), own.join('\n'));
  assert.ok(own.some((u) => /\/_\/assets\/console\.[0-9a-f]{10}\.css$/.test(u)), own.join('\n'));
  for (const enc of ['gzip', 'br']) {
    let sum = 0;
    for (const u of own) {
      const r = await encodedSize(u, enc);
      assert.equal(r.status, 200, u);
      sum += r.n;
    }
    t.diagnostic(`first page load, ${enc}: ${sum} bytes`);
    assert.ok(sum < PAGE_BUDGET, `${enc}: ${sum} bytes`);
    assert.ok(sum > 5000, `${enc}: ${sum} bytes is too small to be the console`);
  }
});

test('sign-in: a wrong password is refused, the right one shows the collections', async () => {
  await page.getByLabel('Email').fill(EMAIL);
  await page.getByLabel('Password').fill('wrong-password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('alert').filter({ hasText: 'Wrong email or password.' }).waitFor();
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByLabel('Password').press('Enter');
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
  await page.getByText('No collections yet.').waitFor();
  await shot('01-signed-in');
});

test('create a collection with several field types and an index', async () => {
  await page.getByRole('link', { name: '+ New collection' }).click();
  await page.getByLabel('Collection name').fill('posts');
  const names = page.getByLabel('Field name');
  await names.nth(0).fill('title');
  await page.getByLabel('Required').nth(0).check();
  await page.getByLabel('Max length').nth(0).fill('20');

  const add = async (type, name) => {
    await page.getByLabel('New field type').selectOption(type);
    await page.getByRole('button', { name: 'Add field' }).click();
    await names.last().fill(name);
  };
  await add('number', 'views');
  await page.getByLabel('Integers only').check();
  await add('bool', 'published');
  await add('select', 'tag');
  await page.getByLabel('Values').fill('news, tech');
  await add('json', 'meta');
  await add('autodate', 'created');

  await page.getByRole('button', { name: 'Add index' }).click();
  await page.getByLabel('Index 1').fill('CREATE INDEX idx_posts_views ON posts (views)');
  await page.getByLabel('List/search rule: superusers only').uncheck();
  // checked as typed, against the unsaved draft's fields, before saving
  const rule = page.getByLabel('List/search rule', { exact: true });
  await rule.fill("views > 1 && titel = 'x'");
  await page.locator('.err').filter({ hasText: 'at character 14: “titel' }).waitFor();
  assert.equal(await rule.getAttribute('aria-invalid'), 'true');
  assert.match(await page.locator(`#${await rule.getAttribute('aria-describedby')}`.split(' ')[0]).innerText(), /titel/);
  await shot('02-rule-error');
  await rule.fill("title != ''");
  await page.waitForFunction(() => !document.querySelector('textarea[aria-invalid=true]'));
  await shot('02-collection-form');
  await page.getByRole('button', { name: 'Create collection' }).click();
  await page.waitForURL(/#\/c\/posts$/).catch(async (e) => {
    await shot('02-collection-failed');
    throw new Error(`${e.message}\n${await page.getByRole('status').first().textContent()}`);
  });
  await page.getByRole('heading', { name: 'posts' }).waitFor();

  const got = await api('GET', '/api/collections/posts');
  assert.equal(got.status, 200);
  const byName = Object.fromEntries(got.body.fields.map((f) => [f.name, f]));
  assert.equal(byName.title.type, 'text');
  assert.equal(byName.title.required, true);
  assert.equal(byName.title.max, 20);
  assert.equal(byName.views.type, 'number');
  assert.equal(byName.views.onlyInt, true);
  assert.equal(byName.published.type, 'bool');
  assert.deepEqual(byName.tag.values, ['news', 'tech']);
  assert.equal(byName.meta.type, 'json');
  assert.equal(byName.created.onCreate, true);
  assert.deepEqual(got.body.indexes, ['CREATE INDEX idx_posts_views ON posts (views)']);
  assert.equal(got.body.listRule, "title != ''");
  assert.equal(got.body.viewRule, null);
});

test('a server error on a collection field is shown on that field', async () => {
  await page.getByRole('link', { name: 'Settings' }).click();
  await page.getByLabel('Collection name').fill('bad name!');
  await page.getByRole('button', { name: 'Save changes' }).click();
  const name = page.getByLabel('Collection name');
  await assert.doesNotReject(page.waitForFunction(() =>
    document.querySelector('[aria-invalid=true]')?.closest('.field')?.textContent.includes('Collection name'),
  ));
  assert.equal(await name.getAttribute('aria-invalid'), 'true');
  await page.getByRole('link', { name: 'Records' }).click();
  await page.getByRole('button', { name: 'New record' }).waitFor();
});

async function createRecord(title, views, tag) {
  await page.getByRole('button', { name: 'New record' }).click();
  const dlg = page.getByRole('dialog');
  await dlg.getByLabel('title').fill(title);
  await dlg.getByLabel('views').fill(String(views));
  if (tag) await dlg.getByLabel('tag').selectOption(tag);
  await dlg.getByLabel('meta').fill('{"a": 1}');
  await dlg.getByRole('button', { name: 'Create record' }).click();
  await dlg.waitFor({ state: 'detached' });
  await page.getByRole('cell', { name: title, exact: true }).waitFor();
}

test('create records from the generated form; filter and sort the table', async () => {
  await createRecord('Hello', 3, 'news');
  await createRecord('Second', 50, 'tech');
  await createRecord('Third', 7);
  const list = await api('GET', '/api/collections/posts/records?sort=views');
  assert.deepEqual(list.body.items.map((r) => [r.title, r.views]), [['Hello', 3], ['Third', 7], ['Second', 50]]);
  assert.deepEqual(list.body.items[0].meta, { a: 1 });
  assert.equal(list.body.items[0].tag, 'news');

  // The unsorted table already starts with Hello: wait for the whole order.
  const order = (want) =>
    page.waitForFunction((w) => [...document.querySelectorAll('tbody tr td:nth-child(2)')].map((td) => td.textContent).join() === w, want.join());
  await page.getByRole('button', { name: 'views', exact: true }).click();
  await page.locator('th[aria-sort=ascending]').waitFor();
  await order(['Hello', 'Third', 'Second']);
  await page.getByRole('button', { name: /^views/ }).click();
  await page.locator('th[aria-sort=descending]').waitFor();
  await order(['Second', 'Third', 'Hello']);

  const search = page.getByRole('searchbox', { name: 'Filter' });
  await search.fill('views > 5');
  await search.press('Enter');
  await page.getByText('2 records, page 1 of 1').waitFor();
  await search.fill('nosuchfield = 1');
  await search.press('Enter');
  await page.getByRole('alert').filter({ hasText: 'nosuchfield' }).waitFor();
  assert.equal(await search.getAttribute('aria-invalid'), 'true');
  await shot('03-filter-error');
  await search.fill('');
  await search.press('Enter');
  await page.getByText('3 records, page 1 of 1').waitFor();
  assert.equal(await search.getAttribute('aria-invalid'), null);
});

test('edit: a validation error from the server is shown on its field', async () => {
  await page.locator('summary', { hasText: 'Columns' }).click();
  await page.getByRole('group', { name: 'Shown columns' }).getByLabel('published').uncheck();
  await page.locator('summary', { hasText: 'Columns' }).click();
  assert.equal(await page.getByRole('columnheader', { name: 'published' }).count(), 0);

  const hello = (await api('GET', '/api/collections/posts/records?filter=title%3D%22Hello%22')).body.items[0];
  await page.getByRole('button', { name: `Edit ${hello.id}` }).click();
  const dlg = page.getByRole('dialog');
  const title = dlg.getByLabel('title');
  await title.fill('This title is far too long for the field');
  await dlg.getByRole('button', { name: 'Save record' }).click();
  await dlg.getByRole('alert').filter({ hasText: 'Must be no more than 20 character(s).' }).waitFor();
  assert.equal(await title.getAttribute('aria-invalid'), 'true');
  await shot('04-validation-error');
  await title.fill('Hello again');
  await dlg.getByRole('button', { name: 'Save record' }).click();
  await dlg.waitFor({ state: 'detached' });
  await page.getByRole('cell', { name: 'Hello again', exact: true }).waitFor();
});

test('412: a record changed meanwhile shows both versions, nothing is overwritten', async () => {
  const rec = (await api('GET', '/api/collections/posts/records?filter=title%3D%22Second%22')).body.items[0];
  await page.getByRole('button', { name: `Edit ${rec.id}` }).click();
  const dlg = page.getByRole('dialog');
  // The form shows once it holds the saved version and its ETag.
  await dlg.getByLabel('views').waitFor();
  const other = await api('PATCH', `/api/collections/posts/records/${rec.id}`, { title: 'Changed elsewhere' });
  assert.equal(other.status, 200);

  await dlg.getByLabel('views').fill('99');
  await dlg.getByRole('button', { name: 'Save record' }).click();
  const conflict = dlg.getByRole('alert').filter({ hasText: 'changed by someone else' });
  await conflict.waitFor();
  assert.match(await conflict.locator('[data-version=mine]').textContent(), /title: Second\n[\s\S]*views: 99/);
  assert.match(await conflict.locator('[data-version=theirs]').textContent(), /title: Changed elsewhere\n[\s\S]*views: 50/);
  assert.deepEqual(await conflict.locator('[data-version=mine] mark').allTextContents(), ['views: 99\n']);
  assert.deepEqual(await conflict.locator('[data-version=theirs] mark').allTextContents(), ['title: Changed elsewhere\n']);
  await shot('05-conflict');
  const kept = (await api('GET', `/api/collections/posts/records/${rec.id}`)).body;
  assert.equal(kept.title, 'Changed elsewhere');
  assert.equal(kept.views, 50);

  await dlg.getByRole('button', { name: 'Keep the saved version' }).click();
  assert.equal(await dlg.getByLabel('title').inputValue(), 'Changed elsewhere');
  await dlg.getByLabel('views').fill('60');
  await dlg.getByRole('button', { name: 'Save record' }).click();
  await dlg.waitFor({ state: 'detached' });
  const now = (await api('GET', `/api/collections/posts/records/${rec.id}`)).body;
  assert.equal(now.title, 'Changed elsewhere');
  assert.equal(now.views, 60);
});

test('delete a record after confirming; cancelling keeps it', async () => {
  const rec = (await api('GET', '/api/collections/posts/records?filter=title%3D%22Third%22')).body.items[0];
  await page.getByRole('button', { name: `Delete ${rec.id}` }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Cancel' }).click();
  assert.equal((await api('GET', `/api/collections/posts/records/${rec.id}`)).status, 200);
  await page.getByRole('button', { name: `Delete ${rec.id}` }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click();
  await page.getByText(`Deleted ${rec.id}.`).waitFor();
  assert.equal((await api('GET', `/api/collections/posts/records/${rec.id}`)).status, 404);
  await page.getByRole('cell', { name: 'Third', exact: true }).waitFor({ state: 'detached' });
});

test('auth collection: the form sets a password; the user can sign in with it', async () => {
  const made = await api('POST', '/api/collections', { name: 'members', type: 'auth', fields: [{ name: 'nick', type: 'text' }] });
  assert.equal(made.status, 200, JSON.stringify(made.body));
  await page.goto(`${srv.url}/_/#/c/members`);
  await page.reload();
  await page.getByRole('button', { name: 'New record' }).click();
  const dlg = page.getByRole('dialog');
  await dlg.getByLabel('email', { exact: true }).fill('member@example.com');
  await dlg.getByLabel('password', { exact: true }).fill('member-pass-1');
  await dlg.getByLabel('nick').fill('m1');
  assert.equal(await dlg.getByLabel('tokenKey').count(), 0);
  await dlg.getByRole('button', { name: 'Create record' }).click();
  await dlg.waitFor({ state: 'detached' });
  const res = await fetch(`${srv.url}/api/collections/members/auth-with-password`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ identity: 'member@example.com', password: 'member-pass-1' }),
  });
  assert.equal(res.status, 200, await res.text());
});

test('file field: upload from the form, then a download link', async (t) => {
  const made = await api('POST', '/api/collections', {
    name: 'docs',
    type: 'base',
    fields: [
      { name: 'label', type: 'text' },
      { name: 'doc', type: 'file', maxSelect: 2, maxSize: 1 << 20 },
    ],
  });
  assert.equal(made.status, 200, JSON.stringify(made.body));
  const probe = new FormData();
  probe.append('label', 'probe');
  probe.append('doc', new Blob(['x']), 'probe.txt');
  const res = await fetch(`${srv.url}/api/collections/docs/records`, {
    method: 'POST',
    headers: { authorization: token },
    body: probe,
  });
  if (res.status !== 200) {
    t.skip(`this server does not take uploads yet (${res.status}: ${(await res.json()).message})`);
    return;
  }
  await page.goto(`${srv.url}/_/#/c/docs`);
  await page.getByRole('button', { name: 'New record' }).click();
  const dlg = page.getByRole('dialog');
  await dlg.getByLabel('label').fill('with a file');
  await dlg.getByLabel('doc').setInputFiles({ name: 'hello.txt', mimeType: 'text/plain', buffer: Buffer.from('hello file') });
  await dlg.getByRole('progressbar', { name: 'Upload of hello.txt' }).waitFor();
  await dlg.getByRole('button', { name: 'Create record' }).click();
  await dlg.waitFor({ state: 'detached' });
  const rec = (await api('GET', '/api/collections/docs/records?filter=label%3D%22with%20a%20file%22')).body.items[0];
  assert.equal(rec.doc.length, 1);
  assert.match(rec.doc[0], /^hello.*\.txt$/);
  await page.getByRole('button', { name: `Edit ${rec.id}` }).click();
  const link = page.getByRole('dialog').getByRole('link', { name: rec.doc[0] });
  const href = await link.getAttribute('href');
  const file = await fetch(new URL(href, srv.url));
  assert.equal(await file.text(), 'hello file');
  await page.getByRole('dialog').getByRole('button', { name: 'Cancel' }).click();
});

test('every field type has its options in the editor; a collection is deleted after confirming', async () => {
  await page.goto(`${srv.url}/_/#/new`);
  await page.getByLabel('Collection name').fill('kitchen');
  const names = page.getByLabel('Field name');
  await names.nth(0).fill('f_text');
  // The options each type offers, by label, as the server names them.
  const options = {
    number: ['Min', 'Max', 'Integers only'],
    bool: [],
    email: ['Only domains', 'Except domains'],
    url: ['Only domains', 'Except domains'],
    date: ['Min date', 'Max date'],
    select: ['Values', 'Max selected'],
    json: ['Max size (bytes)'],
    autodate: ['Set on create', 'Set on update'],
    relation: ['Related collection', 'Cascade delete', 'Min selected', 'Max selected'],
    file: ['Max files', 'Max size (bytes)', 'MIME types', 'Thumb sizes', 'Protected'],
  };
  for (const [type, labels] of Object.entries(options)) {
    await page.getByLabel('New field type').selectOption(type);
    await page.getByRole('button', { name: 'Add field' }).click();
    await names.last().fill(`f_${type}`);
    const card = page.locator('fieldset.fieldcard').last();
    assert.equal(await card.getByLabel('Type', { exact: true }).inputValue(), type);
    for (const label of labels) assert.equal(await card.getByLabel(label, { exact: true }).count(), 1, `${type}: ${label}`);
  }
  const card = (type) => page.locator('fieldset.fieldcard').nth(['text', ...Object.keys(options)].indexOf(type));
  await card('relation').getByLabel('Related collection').selectOption({ label: 'posts' });
  await card('date').getByLabel('Max date').fill('2030-01-01 00:00:00.000Z');
  await card('select').getByLabel('Values').fill('a, b');
  await card('file').getByLabel('Thumb sizes').fill('50x50');
  assert.deepEqual(await unnamedControls(page), []);
  await page.getByRole('button', { name: 'Create collection' }).click();
  await page.waitForURL(/#\/c\/kitchen$/);

  const got = (await api('GET', '/api/collections/kitchen')).body;
  const types = Object.fromEntries(got.fields.filter((f) => f.name.startsWith('f_')).map((f) => [f.name, f.type]));
  assert.deepEqual(types, Object.fromEntries(['text', ...Object.keys(options)].map((t) => [`f_${t}`, t])));
  const byName = Object.fromEntries(got.fields.map((f) => [f.name, f]));
  assert.equal(byName.f_relation.collectionId, (await api('GET', '/api/collections/posts')).body.id);
  assert.deepEqual(byName.f_select.values, ['a', 'b']);
  assert.deepEqual(byName.f_file.thumbs, ['50x50']);
  assert.match(byName.f_date.max, /^2030-01-01/);

  // Edit: one more field, saved.
  await page.getByRole('link', { name: 'Settings' }).click();
  await page.getByLabel('New field type').selectOption('text');
  await page.getByRole('button', { name: 'Add field' }).click();
  await names.last().fill('f_extra');
  await page.getByRole('button', { name: 'Save changes' }).click();
  await page.getByRole('status').filter({ hasText: 'Saved.' }).waitFor();
  assert.ok((await api('GET', '/api/collections/kitchen')).body.fields.some((f) => f.name === 'f_extra' && f.type === 'text'));

  await page.getByRole('button', { name: 'Delete collection' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Cancel' }).click();
  assert.equal((await api('GET', '/api/collections/kitchen')).status, 200);
  await page.getByRole('button', { name: 'Delete collection' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click();
  await page.getByRole('link', { name: /^kitchen/ }).waitFor({ state: 'detached' });
  assert.equal((await api('GET', '/api/collections/kitchen')).status, 404);
});

test('server-side pagination: 45 records, 20 a page, Next and Previous', async () => {
  for (let i = 1; i <= 43; i++) {
    const r = await api('POST', '/api/collections/posts/records', { title: `Bulk ${String(i).padStart(2, '0')}`, views: 1000 + i });
    assert.equal(r.status, 200, JSON.stringify(r.body));
  }
  await page.goto(`${srv.url}/_/#/c/posts`);
  await page.reload();
  await page.getByText('45 records, page 1 of 3').waitFor();
  const rows = page.locator('tbody tr');
  assert.equal(await rows.count(), 20);
  const listed = page.waitForRequest((r) => new URL(r.url()).searchParams.get('page') === '2');
  await page.getByRole('button', { name: 'Next' }).click();
  await listed;
  await page.getByText('45 records, page 2 of 3').waitFor();
  assert.equal(await rows.count(), 20);
  await page.getByRole('button', { name: 'Next' }).click();
  await page.getByText('45 records, page 3 of 3').waitFor();
  assert.equal(await rows.count(), 5);
  assert.equal(await page.getByRole('button', { name: 'Next' }).isDisabled(), true);
  await page.getByRole('button', { name: 'Previous' }).click();
  await page.getByText('45 records, page 2 of 3').waitFor();
  // Sorting starts again from page 1, sorted by the server over all pages.
  await page.getByRole('button', { name: 'views', exact: true }).click();
  await page.locator('th[aria-sort=ascending]').waitFor();
  await page.getByRole('button', { name: /^views/ }).click();
  await page.locator('th[aria-sort=descending]').waitFor();
  await page.getByText('45 records, page 1 of 3').waitFor();
  await page.waitForFunction(() => document.querySelector('tbody tr td:nth-child(2)')?.textContent === 'Bulk 43');
});

test('server view: version, uptime, data directory, partitions and live charts from /metrics', async () => {
  await page.getByRole('link', { name: 'Server' }).click();
  await page.getByRole('heading', { name: 'Requests per second' }).waitFor();
  const info = (await api('GET', '/api/cruder/info')).body;
  const stat = (k) => page.locator(`[data-stat=${k}]`);
  await page.waitForFunction(() => document.querySelector('[data-stat=dir]')?.textContent !== '—');
  assert.equal(await stat('version').textContent(), info.version);
  assert.equal(await stat('dir').textContent(), srv.dir);
  assert.equal(await stat('partitions').textContent(), String(info.partitions));
  assert.match(await stat('uptime').textContent(), /^(\d+d )?\d+h \d+m \d+s$/);
  // Two scrapes make the first rate; requests and writes in between make it non-zero.
  for (let i = 0; i < 5; i++) await fetch(`${srv.url}/api/health`).then((r) => r.arrayBuffer());
  await page.waitForFunction(() => /req\/s: \d/.test(document.body.textContent), null, { timeout: 8000 });
  await page.waitForFunction(() => /p50: \d/.test(document.body.textContent), null, { timeout: 8000 });
  const conns = await page.getByText(/open: \d/).textContent();
  assert.ok(Number(conns.match(/open: (\d+)/)[1]) >= 1, conns);
  // Writes between two scrapes show as commits and their batch size.
  const deadline = Date.now() + 10_000;
  let batch = 0;
  while (!(batch > 0) && Date.now() < deadline) {
    await api('POST', '/api/collections/posts/records', { title: 'metrics', views: 1 });
    await new Promise((r) => setTimeout(r, 300));
    batch = Number((await page.getByText(/writes per commit: /).textContent()).match(/writes per commit: ([\d.]+|—)/)[1]);
  }
  assert.ok(batch >= 1, `writes per commit: ${batch}`);
  assert.ok((await page.locator('polyline').count()) >= 7);
  assert.deepEqual(await unnamedControls(page), []);
  await shot('06-server');
});

test('390 px wide and dark theme: no horizontal scroll in any view, dark background', async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  await page.emulateMedia({ colorScheme: 'dark' });
  try {
    await page.goto(`${srv.url}/_/#/c/posts`);
    await page.getByRole('button', { name: 'New record' }).waitFor();
    await shot('07-mobile-dark');
    assert.deepEqual(await overflowing(page), [], 'records');
    await page.getByRole('button', { name: 'New record' }).click();
    await page.getByRole('dialog').getByLabel('title').waitFor();
    await shot('07-mobile-form');
    assert.deepEqual(await overflowing(page), [], 'record form');
    await page.keyboard.press('Escape');
    await page.getByRole('dialog').waitFor({ state: 'detached' });
    await page.getByRole('link', { name: 'Settings' }).click();
    await page.getByRole('button', { name: 'Save changes' }).waitFor();
    await shot('07-mobile-settings');
    assert.deepEqual(await overflowing(page), [], 'collection settings');
    await page.getByRole('link', { name: 'Server' }).click();
    await page.getByRole('heading', { name: 'Latency' }).waitFor();
    assert.deepEqual(await overflowing(page), [], 'server');
    const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    assert.equal(bg, 'rgb(20, 22, 26)');
    await page.emulateMedia({ colorScheme: 'light' });
    assert.equal(await page.evaluate(() => getComputedStyle(document.body).backgroundColor), 'rgb(247, 247, 248)');
  } finally {
    await page.emulateMedia({ colorScheme: 'light' });
    await page.setViewportSize({ width: 1280, height: 860 });
  }
});

// Presses Tab until the focused element's accessible name is `name`.
async function tabTo(name) {
  for (let i = 0; i < 80; i++) {
    await page.keyboard.press('Tab');
    const at = await page.evaluate(() => {
      const el = document.activeElement;
      return el?.getAttribute('aria-label') || el?.labels?.[0]?.textContent.trim() || el?.textContent.trim();
    });
    if (at === name) return;
  }
  assert.fail(`Tab never reached “${name}”`);
}

test('keyboard only: sign out and in, open a collection, sort, create a record, close a form with Escape', async () => {
  await page.goto(`${srv.url}/_/#/`);
  await page.getByRole('button', { name: 'Sign out' }).focus();
  await page.keyboard.press('Enter');
  // The sign-in form takes the focus once it is mounted, so typing goes to the email.
  await page.waitForFunction(() => document.activeElement?.getAttribute('name') === 'email');
  assert.deepEqual(await unnamedControls(page), [], 'sign-in page');
  await page.keyboard.type(EMAIL);
  await page.keyboard.press('Tab');
  await page.keyboard.type(PASSWORD);
  await page.keyboard.press('Enter');
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
  assert.deepEqual(await unnamedControls(page), [], 'collections page');

  await tabTo('postsbase');
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: 'posts' }).waitFor();
  await tabTo('views');
  await page.keyboard.press('Enter');
  await page.locator('th[aria-sort=ascending]').waitFor();
  assert.deepEqual(await unnamedControls(page), [], 'records page');

  await tabTo('New record');
  await page.keyboard.press('Enter');
  const dlg = page.getByRole('dialog');
  // Typing starts in the first field of the form.
  await page.waitForFunction(() => document.activeElement?.closest('dialog') && document.activeElement.tagName === 'INPUT');
  assert.equal(await dlg.getByLabel('title').evaluate((el) => el === document.activeElement), true);
  await page.keyboard.type('By keyboard');
  await page.keyboard.press('Tab');
  await page.keyboard.type('7');
  assert.deepEqual(await unnamedControls(page), [], 'record form');
  await page.keyboard.press('Enter');
  await dlg.waitFor({ state: 'detached' });
  const made = (await api('GET', `/api/collections/posts/records?filter=${encodeURIComponent("title='By keyboard'")}`)).body.items;
  assert.equal(made.length, 1);
  assert.equal(made[0].views, 7);

  await tabTo('New record');
  await page.keyboard.press('Enter');
  await dlg.waitFor();
  await page.keyboard.press('Escape');
  await dlg.waitFor({ state: 'detached' });
  // The keyboard can still reach the skip link and the content after a dialog.
  await page.keyboard.press('Tab');
  assert.ok(await page.evaluate(() => document.activeElement !== document.body));
});
