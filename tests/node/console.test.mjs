// End-to-end tests of the console (/_/) in headless Chromium driven by
// playwright-core, against the real binary: sign-in, a collection created
// with several field types, records created, edited (a validation error on
// its field, a 412 conflict showing both versions), filtered, sorted and
// deleted, the server view, small screens, the dark theme, sign-out, and the
// weight of the first page load. Screenshots go to build/console-shots/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startServer, superuserToken } from './lib/server.mjs';
import { buildConsole } from '../../console/build.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SHOTS = path.join(ROOT, 'build/console-shots');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const EMAIL = 'admin@example.com';
const PASSWORD = 'console-pass-123';
const PAGE_BUDGET = 150 * 1024;

let srv;
let token;
let browser;
let page;

before(async () => {
  assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} missing: make deps installs Debian's chromium`);
  fs.mkdirSync(SHOTS, { recursive: true });
  srv = await startServer();
  token = await superuserToken(srv, EMAIL, PASSWORD);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
  page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
  page.setDefaultTimeout(10_000);
  page.on('pageerror', (e) => assert.fail(`page error: ${e.message}`));
});

after(async () => {
  await browser?.close();
  if (srv) assert.equal(await srv.stop(), 0);
});

const shot = (name) => page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });

async function api(method, p, body) {
  const res = await fetch(`${srv.url}${p}`, {
    method,
    headers: { authorization: token, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json().catch(() => null) };
}

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

test('first page load: HTML, JS and CSS under 150 KB compressed', async () => {
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

  const titles = () => page.locator('tbody tr td:nth-child(2)').allTextContents();
  await page.getByRole('button', { name: 'views', exact: true }).click();
  await page.locator('th[aria-sort=ascending]').waitFor();
  await page.waitForFunction(() => document.querySelector('tbody tr td:nth-child(2)')?.textContent === 'Hello');
  assert.deepEqual(await titles(), ['Hello', 'Third', 'Second']);
  await page.getByRole('button', { name: /^views/ }).click();
  await page.locator('th[aria-sort=descending]').waitFor();
  await page.waitForFunction(() => document.querySelector('tbody tr td:nth-child(2)')?.textContent === 'Second');
  assert.deepEqual(await titles(), ['Second', 'Third', 'Hello']);

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
  assert.equal(await conflict.locator('.changed').first().textContent(), 'title: Changed elsewhere\n');
  await shot('05-conflict');
  const kept = (await api('GET', `/api/collections/posts/records/${rec.id}`)).body;
  assert.equal(kept.title, 'Changed elsewhere');
  assert.equal(kept.views, 50);

  await dlg.getByRole('button', { name: 'Use the saved version' }).click();
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

test('server view: live charts from /metrics', async () => {
  await page.getByRole('link', { name: 'Server' }).click();
  await page.getByRole('heading', { name: 'Requests per second' }).waitFor();
  // Two scrapes make the first rate; requests in between make it non-zero.
  for (let i = 0; i < 5; i++) await fetch(`${srv.url}/api/health`).then((r) => r.arrayBuffer());
  await page.waitForFunction(() => /req\/s: \d/.test(document.body.textContent), null, { timeout: 8000 });
  await page.waitForFunction(() => /p50: \d/.test(document.body.textContent), null, { timeout: 8000 });
  const conns = await page.getByText(/open: \d/).textContent();
  assert.ok(Number(conns.match(/open: (\d+)/)[1]) >= 1, conns);
  assert.ok((await page.locator('polyline').count()) >= 7);
  await shot('06-server');
});

test('390 px wide and dark theme: no horizontal scroll, dark background', async () => {
  await page.goto(`${srv.url}/_/#/c/posts`);
  await page.setViewportSize({ width: 390, height: 844 });
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.getByRole('button', { name: 'New record' }).waitFor();
  await shot('07-mobile-dark');
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  const wide = await page.evaluate(() =>
    [...document.querySelectorAll('body *')]
      .filter((el) => el.getBoundingClientRect().right > 391 && !el.closest('.table-wrap'))
      .map((el) => el.tagName + '.' + el.className + ':' + el.getBoundingClientRect().right),
  );
  assert.ok(width <= 390, `page is ${width}px wide: ${wide.join(' ')}`);
  const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  assert.equal(bg, 'rgb(20, 22, 26)');
  await page.emulateMedia({ colorScheme: 'light' });
  assert.equal(await page.evaluate(() => getComputedStyle(document.body).backgroundColor), 'rgb(247, 247, 248)');
  await page.setViewportSize({ width: 1280, height: 860 });
});

test('keyboard only: sign out, then sign in again with Tab and Enter', async () => {
  await page.getByRole('button', { name: 'Sign out' }).focus();
  await page.keyboard.press('Enter');
  await page.getByLabel('Email').waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.id), await page.getByLabel('Email').getAttribute('id'));
  await page.keyboard.type(EMAIL);
  await page.keyboard.press('Tab');
  await page.keyboard.type(PASSWORD);
  await page.keyboard.press('Enter');
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
  // Every control on the page has an accessible name.
  const unnamed = await page.evaluate(() =>
    [...document.querySelectorAll('input, select, textarea, button')]
      .filter((el) => !(el.labels?.length || el.getAttribute('aria-label') || el.textContent.trim()))
      .map((el) => el.outerHTML),
  );
  assert.deepEqual(unnamed, []);
});
