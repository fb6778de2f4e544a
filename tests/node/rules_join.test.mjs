// A list rule and the caller's ?filter= compile into one query, so terms on
// the same multi-valued path constrain the same related record, as in
// PocketBase; and only superusers may write @request.* or @collection.* in a
// filter or sort.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { client } from './lib/api.mjs';
import { startServer, superuserToken } from './lib/server.mjs';

let srv;
let su;
let anon;
const ids = {};

before(async () => {
  srv = await startServer();
  su = client(srv, await superuserToken(srv, 'root@example.com', 'password123'));
  anon = client(srv);
  const tags = await su.post('/api/collections', {
    name: 'tags', type: 'base', listRule: '', viewRule: '',
    fields: [{ name: 'name', type: 'text' }, { name: 'public', type: 'bool' }],
  });
  assert.equal(tags.status, 200, JSON.stringify(tags.body));
  // Visible: the posts with a public tag.
  const rule = 'tags.public ?= true';
  const posts = await su.post('/api/collections', {
    name: 'posts', type: 'base', listRule: rule, viewRule: rule,
    fields: [
      { name: 'title', type: 'text' },
      { name: 'tags', type: 'relation', collectionId: tags.body.id, maxSelect: 9 },
    ],
  });
  assert.equal(posts.status, 200, JSON.stringify(posts.body));
  const tag = async (name, pub) =>
    (await su.post('/api/collections/tags/records', { name, public: pub })).body.id;
  ids.redPublic = await tag('red', true);
  ids.bluePrivate = await tag('blue', false);
  ids.bluePublic = await tag('blue', true);
  const post = async (title, t) => {
    const r = await su.post('/api/collections/posts/records', { title, tags: t });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.id;
  };
  // a public red tag and a private blue one: blue, but not publicly blue
  ids.mixed = await post('mixed', [ids.redPublic, ids.bluePrivate]);
  ids.blue = await post('blue', [ids.bluePublic]);
  ids.hidden = await post('hidden', [ids.bluePrivate]);
});

after(async () => {
  assert.equal(await srv.stop(), 0);
});

const list = async (c, filter) => {
  const r = await c.get(`/api/collections/posts/records?sort=title&filter=${encodeURIComponent(filter)}`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.items.map((i) => i.title);
};

test('a rule term and a filter term on one multi-valued path share the related record', async () => {
  // rule `tags.public ?= true` and filter `tags.name ?= 'blue'` need one
  // tag that is both; compiled apart, "mixed" would be listed too
  assert.deepEqual(await list(anon, "tags.name ?= 'blue'"), ['blue']);
  assert.deepEqual(await list(anon, "tags.name ?= 'red'"), ['mixed']);
  assert.deepEqual(await list(anon, "title != ''"), ['blue', 'mixed']);
  // superusers have no rule: both blue posts
  assert.deepEqual(await list(su, "tags.name ?= 'blue'"), ['blue', 'hidden', 'mixed']);
});

test('a filter cannot widen the rule with ||', async () => {
  assert.deepEqual(await list(anon, "title = 'hidden' || title = 'blue'"), ['blue']);
  const r = await anon.get(`/api/collections/posts/records?filter=${encodeURIComponent("title = 'x') || (title != 'x'")}`);
  assert.equal(r.status, 400);
});

test('only superusers may filter or sort by @request.* and @collection.*', async () => {
  for (const [param, value, field] of [
    ['filter', "@request.auth.id = ''", '@request.'],
    ['filter', "@collection.tags.name ?= 'red'", '@collection.'],
    ['sort', '@request.auth.id', '@request.'],
  ]) {
    const r = await anon.get(`/api/collections/posts/records?${param}=${encodeURIComponent(value)}`);
    assert.equal(r.status, 403, value);
    assert.equal(r.body.message, `Only superusers can filter by ${field}`);
  }
  assert.deepEqual(await list(su, "@request.auth.collectionName = '_superusers' && title = 'hidden'"), ['hidden']);
  assert.deepEqual(await list(su, "@collection.tags.name ?= 'red' && tags.id ?= @collection.tags.id"), ['mixed']);
});

test('a ruled view reads the record and its version in one answer', async () => {
  const ok = await anon.get(`/api/collections/posts/records/${ids.blue}`);
  assert.equal(ok.status, 200);
  assert.equal(ok.body.title, 'blue');
  const etag = ok.headers.get('etag');
  assert.match(etag, /^"[^"]+"$/);
  const same = await anon.get(`/api/collections/posts/records/${ids.blue}`, { headers: { 'if-none-match': etag } });
  assert.equal(same.status, 304);
  const direct = await su.get(`/api/collections/posts/records/${ids.blue}`);
  assert.equal(direct.headers.get('etag'), etag);
  assert.equal((await anon.get(`/api/collections/posts/records/${ids.hidden}`)).status, 404);
  assert.equal((await anon.get('/api/collections/posts/records/nope')).status, 404);
  await su.patch(`/api/collections/posts/records/${ids.blue}`, { title: 'blue' });
  const after = await anon.get(`/api/collections/posts/records/${ids.blue}`, { headers: { 'if-none-match': etag } });
  assert.equal(after.status, 200);
  assert.notEqual(after.headers.get('etag'), etag);
  assert.equal(after.headers.get('etag'), (await su.get(`/api/collections/posts/records/${ids.blue}`)).headers.get('etag'));
});
