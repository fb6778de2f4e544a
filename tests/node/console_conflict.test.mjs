// Optimistic concurrency as a person sees it, with two people in two browser
// sessions editing the same record: every save sends If-Match; the save
// that arrives second gets 412 and shows both versions (what each side
// changed marked) while the stored record stays the other person's; the
// user then keeps the saved version, or overwrites deliberately with a new
// save carrying the fresh ETag, which a third change made meanwhile stops
// again. Nothing is ever overwritten silently: each test counts the saves
// that went through. Screenshots go to build/console-shots/conflict-*.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, superuserToken } from './lib/server.mjs';
import { openBrowser, overflowing, screenshotEach, shot, signIn, unnamedControls } from './lib/browser.mjs';
import { client } from './lib/api.mjs';

const EMAIL = 'conflict@example.com';
const PASSWORD = 'conflict-pass-1';

let srv;
let token;
let b;
let alice;
let bob;
// Alice's writes to the record: [{ifMatch, status}], in order.
let writes = [];

async function api(method, p, body) {
  const r = await client(srv, token).call(method, p, { body });
  return { ...r, etag: r.headers.get('etag') };
}

before(async () => {
  srv = await startServer();
  token = await superuserToken(srv, EMAIL, PASSWORD);
  const made = await api('POST', '/api/collections', {
    name: 'notes',
    type: 'base',
    fields: [
      { name: 'title', type: 'text' },
      { name: 'body', type: 'text' },
      { name: 'count', type: 'number' },
      { name: 'meta', type: 'json' },
    ],
  });
  assert.equal(made.status, 200, JSON.stringify(made.body));
  b = await openBrowser();
  alice = b.page;
  bob = await b.newPage();
  alice.on('response', (res) => {
    const req = res.request();
    if (req.method() === 'PATCH' && req.url().includes('/api/collections/notes/records/')) {
      writes.push({ ifMatch: req.headers()['if-match'], status: res.status() });
    }
  });
  await signIn(alice, srv.url, EMAIL, PASSWORD);
  await signIn(bob, srv.url, EMAIL, PASSWORD);
});

after(async () => {
  await b?.close();
  if (srv) assert.equal(await srv.stop(), 0);
});

screenshotEach(() => alice, 'conflict');

async function newNote(title) {
  const r = await api('POST', '/api/collections/notes/records', { title, body: 'v1', count: 1, meta: { a: 1 } });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  writes = [];
  return r.body;
}

/** Opens the edit form of record `id` on `page` and waits until it holds the saved version. */
async function edit(page, id) {
  await page.goto(`${srv.url}/_/#/c/notes`);
  await page.reload();
  await page.getByRole('button', { name: `Edit ${id}` }).click();
  await page.getByRole('dialog').getByLabel('title').waitFor();
  return page.getByRole('dialog');
}

const conflictOf = (dlg) => dlg.getByRole('alert').filter({ hasText: 'changed by someone else' });
const marked = (conflict, version) => conflict.locator(`[data-version=${version}] mark`).allTextContents();

test('the second save gets 412 and shows both versions; keeping the saved one writes nothing', async () => {
  const rec = await newNote('Plan');
  const a = await edit(alice, rec.id);
  const bb = await edit(bob, rec.id);
  await bb.getByLabel('body').fill('Bob’s body');
  await bb.getByRole('button', { name: 'Save record' }).click();
  await bb.waitFor({ state: 'detached' });

  await a.getByLabel('title').fill('Alice’s title');
  await a.getByRole('button', { name: 'Save record' }).click();
  const conflict = conflictOf(a);
  await conflict.waitFor();
  await shot(alice, 'conflict-both-versions');
  assert.deepEqual(await unnamedControls(alice), []);
  // On a phone the two versions stack instead of overflowing.
  await alice.setViewportSize({ width: 390, height: 844 });
  try {
    await shot(alice, 'conflict-both-versions-390');
    assert.deepEqual(await overflowing(alice), []);
    const [mine, theirs] = await Promise.all(['mine', 'theirs'].map((v) => conflict.locator(`[data-version=${v}]`).boundingBox()));
    assert.ok(theirs.y >= mine.y + mine.height, 'stacked');
  } finally {
    await alice.setViewportSize({ width: 1280, height: 860 });
  }
  // Each side's own change is marked; the JSON nobody touched is not.
  assert.deepEqual(await marked(conflict, 'mine'), ['title: Alice’s title\n']);
  assert.deepEqual(await marked(conflict, 'theirs'), ['body: Bob’s body\n']);
  assert.match(await conflict.locator('[data-version=mine]').textContent(), /^title: Alice’s title\nbody: v1\ncount: 1\nmeta: \{"a":1\}\n$/);
  assert.match(await conflict.locator('[data-version=theirs]').textContent(), /^title: Plan\nbody: Bob’s body\ncount: 1\nmeta: \{"a":1\}\n$/);
  assert.equal(await a.getByRole('button', { name: 'Save record' }).isDisabled(), true, 'no save past the conflict without a choice');
  assert.deepEqual(
    writes.map((w) => w.status),
    [412],
  );
  assert.ok(writes[0].ifMatch, 'the save carried If-Match');
  const stored = (await api('GET', `/api/collections/notes/records/${rec.id}`)).body;
  assert.equal(stored.title, 'Plan');
  assert.equal(stored.body, 'Bob’s body');

  await a.getByRole('button', { name: 'Keep the saved version' }).click();
  await conflict.waitFor({ state: 'detached' });
  assert.equal(await a.getByLabel('title').inputValue(), 'Plan');
  assert.equal(await a.getByLabel('body').inputValue(), 'Bob’s body');
  await a.getByText('Showing the saved version; your changes were dropped.').waitFor();
  await a.getByRole('button', { name: 'Cancel' }).click();
  assert.deepEqual(
    writes.map((w) => w.status),
    [412],
  );
  assert.equal((await api('GET', `/api/collections/notes/records/${rec.id}`)).body.body, 'Bob’s body');
});

test('overwrite deliberately: the new save carries the fresh ETag, and a third change stops it again', async () => {
  const rec = await newNote('Race');
  const a = await edit(alice, rec.id);
  assert.equal((await api('PATCH', `/api/collections/notes/records/${rec.id}`, { count: 2 })).status, 200);
  await a.getByLabel('count').fill('10');
  await a.getByRole('button', { name: 'Save record' }).click();
  await conflictOf(a).waitFor();
  assert.deepEqual(await marked(conflictOf(a), 'theirs'), ['count: 2\n']);

  // Someone saves again while Alice reads the comparison.
  const third = await api('PATCH', `/api/collections/notes/records/${rec.id}`, { count: 3, body: 'third' });
  assert.equal(third.status, 200);
  await a.getByRole('button', { name: 'Overwrite with my version' }).click();
  await a.locator('[data-version=theirs]').filter({ hasText: 'body: third' }).waitFor();
  assert.deepEqual(await marked(conflictOf(a), 'theirs'), ['body: third\n', 'count: 3\n']);
  assert.deepEqual(
    writes.map((w) => w.status),
    [412, 412],
  );
  assert.notEqual(writes[1].ifMatch, writes[0].ifMatch, 'the overwrite used the version it was shown');
  const kept = (await api('GET', `/api/collections/notes/records/${rec.id}`)).body;
  assert.equal(kept.count, 3);
  assert.equal(kept.body, 'third');

  await a.getByRole('button', { name: 'Overwrite with my version' }).click();
  await a.waitFor({ state: 'detached' });
  const latest = await api('GET', `/api/collections/notes/records/${rec.id}`);
  assert.deepEqual(
    writes.map((w) => w.status),
    [412, 412, 200],
  );
  assert.equal(writes[2].ifMatch, third.etag, 'the overwrite named the version the user saw');
  assert.equal(latest.body.count, 10);
  assert.equal(latest.body.body, 'v1', 'the overwrite is the user’s whole version');
  await alice.getByText(`Saved ${rec.id}.`).waitFor();
});

test('a record deleted meanwhile is not recreated by a save', async () => {
  const rec = await newNote('Gone');
  const a = await edit(alice, rec.id);
  assert.equal((await api('DELETE', `/api/collections/notes/records/${rec.id}`)).status, 204);
  await a.getByLabel('title').fill('Still here?');
  await a.getByRole('button', { name: 'Save record' }).click();
  await a.getByText('This record was deleted by someone else; your changes were not saved.').waitFor();
  assert.equal((await api('GET', `/api/collections/notes/records/${rec.id}`)).status, 404);
  assert.equal(writes.filter((w) => w.status < 300).length, 0);
});
