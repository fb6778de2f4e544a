// Records API, black-box: CRUD, validation errors, the list query language,
// validators (ETag, If-None-Match, If-Match) and multipart bodies.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { client } from './lib/api.mjs';
import { startServer, superuserToken } from './lib/server.mjs';

let srv;
let su;
let anon;

before(async () => {
  srv = await startServer();
  su = client(srv, await superuserToken(srv, 'admin@example.com', 'password123'));
  anon = client(srv);
  const r = await su.post('/api/collections', {
    name: 'books',
    type: 'base',
    listRule: '',
    viewRule: '',
    fields: [
      { name: 'title', type: 'text', required: true, max: 100 },
      { name: 'pages', type: 'number', min: 1, onlyInt: true },
      { name: 'genre', type: 'select', values: ['scifi', 'poetry', 'crime'], maxSelect: 1 },
      { name: 'tags', type: 'select', values: ['new', 'classic', 'short'], maxSelect: 3 },
      { name: 'available', type: 'bool' },
      { name: 'meta', type: 'json' },
      { name: 'created', type: 'autodate', onCreate: true },
      { name: 'updated', type: 'autodate', onCreate: true, onUpdate: true },
    ],
    indexes: ['CREATE INDEX idx_books_pages ON books (pages)'],
  });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const books = [
    ['Dune', 412, 'scifi', ['classic'], true],
    ['Neuromancer', 271, 'scifi', ['classic', 'short'], false],
    ['Ariel', 88, 'poetry', ['short'], true],
    ['The Big Sleep', 231, 'crime', [], true],
    ['Hyperion', 482, 'scifi', ['new'], false],
  ];
  for (const [title, pages, genre, tags, available] of books) {
    const c = await su.post('/api/collections/books/records', { title, pages, genre, tags, available });
    assert.equal(c.status, 200, JSON.stringify(c.body));
  }
});
after(async () => {
  assert.equal(await srv.stop(), 0);
});

describe('create', () => {
  test('returns the full record with a generated id and an ETag', async () => {
    const r = await su.post('/api/collections/books/records', { title: 'Solaris', pages: 204 });
    assert.equal(r.status, 200);
    assert.match(r.body.id, /^[a-z0-9]{15}$/);
    assert.equal(r.body.collectionName, 'books');
    assert.equal(r.body.title, 'Solaris');
    assert.equal(r.body.pages, 204);
    assert.equal(r.body.genre, '');
    assert.deepEqual(r.body.tags, []);
    assert.equal(r.body.available, false);
    assert.equal(r.body.meta, null);
    assert.match(r.body.created, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.equal(r.headers.get('etag'), `"${r.body.id}.1"`);
  });

  test('a client-given id is used when valid and refused otherwise', async () => {
    const ok = await su.post('/api/collections/books/records', { id: 'abcdefghij12345', title: 'Given' });
    assert.equal(ok.status, 200);
    assert.equal(ok.body.id, 'abcdefghij12345');
    const dup = await su.post('/api/collections/books/records', { id: 'abcdefghij12345', title: 'Again' });
    assert.equal(dup.status, 400);
    assert.ok(dup.body.data.id);
    const bad = await su.post('/api/collections/books/records', { id: 'NOT-valid', title: 'Bad' });
    assert.equal(bad.status, 400);
    assert.ok(bad.body.data.id);
  });

  test('validation errors name each field with a code and message', async () => {
    const r = await su.post('/api/collections/books/records', {
      pages: 1.5, genre: 'cooking', tags: ['new', 'nope'],
    });
    assert.equal(r.status, 400);
    assert.equal(r.body.status, 400);
    assert.equal(r.body.data.title.code, 'validation_required');
    assert.equal(r.body.data.pages.code, 'validation_only_int_constraint');
    assert.equal(r.body.data.genre.code, 'validation_invalid_value');
    assert.ok(r.body.data.tags.code);
    for (const e of Object.values(r.body.data)) assert.equal(typeof e.message, 'string');
  });

  test('malformed JSON is a 400, and the server keeps serving', async () => {
    const r = await su.call('POST', '/api/collections/books/records', {
      raw: '{"title": ', headers: { 'content-type': 'application/json' },
    });
    assert.equal(r.status, 400);
    assert.equal((await anon.get('/api/health')).status, 200);
  });

  test('multipart/form-data with @jsonPayload', async () => {
    const fd = new FormData();
    fd.append('title', 'From a form');
    fd.append('pages', '120');
    fd.append('available', 'true');
    fd.append('tags', 'new');
    fd.append('tags', 'short');
    fd.append('@jsonPayload', JSON.stringify({ meta: { isbn: 42 } }));
    const res = await fetch(`${srv.url}/api/collections/books/records`, {
      method: 'POST', headers: { authorization: su.token }, body: fd,
    });
    const body = await res.json();
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.equal(body.title, 'From a form');
    assert.equal(body.pages, 120);
    assert.equal(body.available, true);
    assert.deepEqual(body.tags, ['new', 'short']);
    assert.deepEqual(body.meta, { isbn: 42 });
  });

  test('anonymous create is refused by the null createRule', async () => {
    const r = await anon.post('/api/collections/books/records', { title: 'x' });
    assert.equal(r.status, 403);
  });

  test('unknown collection is 404', async () => {
    assert.equal((await su.post('/api/collections/nope/records', { a: 1 })).status, 404);
  });
});

describe('list', () => {
  const titles = (r) => r.body.items.map((i) => i.title);

  test('paging shape and totals', async () => {
    const r = await anon.get('/api/collections/books/records?perPage=2&page=2&sort=title');
    assert.equal(r.status, 200);
    assert.equal(r.body.page, 2);
    assert.equal(r.body.perPage, 2);
    assert.ok(r.body.totalItems >= 5);
    assert.equal(r.body.totalPages, Math.ceil(r.body.totalItems / 2));
    assert.equal(r.body.items.length, 2);
    // a public list: shared caches may keep it (see gateway_records_cache.test.mjs)
    assert.equal(r.headers.get('cache-control'), 'public, no-cache');
    assert.ok(r.headers.get('etag'));
  });

  test('totals follow every write (the cached count is never stale)', async () => {
    const path = `/api/collections/books/records?${new URLSearchParams({ filter: "genre = 'crime'" })}`;
    const before = (await anon.get(path)).body.totalItems;
    const c = await su.post('/api/collections/books/records', { title: 'Red Harvest', genre: 'crime' });
    assert.equal((await anon.get(path)).body.totalItems, before + 1);
    await su.del(`/api/collections/books/records/${c.body.id}`);
    assert.equal((await anon.get(path)).body.totalItems, before);
  });

  test('skipTotal', async () => {
    const r = await anon.get('/api/collections/books/records?skipTotal=1');
    assert.equal(r.body.totalItems, -1);
    assert.equal(r.body.totalPages, -1);
  });

  test('perPage is capped at 500', async () => {
    const r = await anon.get('/api/collections/books/records?perPage=100000');
    assert.equal(r.body.perPage, 500);
  });

  test('filter and multi-key sort', async () => {
    const q = new URLSearchParams({ filter: "genre = 'scifi' && pages > 300", sort: '-pages,title' });
    const r = await anon.get(`/api/collections/books/records?${q}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(titles(r), ['Hyperion', 'Dune']);
  });

  test('any-of operators on a multi-select', async () => {
    const q = new URLSearchParams({ filter: "tags ?= 'short'", sort: 'title' });
    const r = await anon.get(`/api/collections/books/records?${q}`);
    assert.deepEqual(titles(r).filter((t) => t !== 'From a form'), ['Ariel', 'Neuromancer']);
  });

  test('like, or, parentheses, bool', async () => {
    const q = new URLSearchParams({
      filter: "(title ~ 'er' || title ~ 'sleep') && available = true", sort: 'title',
    });
    const r = await anon.get(`/api/collections/books/records?${q}`);
    assert.deepEqual(titles(r), ['The Big Sleep']);
  });

  test('a filter syntax error is a precise 400', async () => {
    const q = new URLSearchParams({ filter: "title = 'x' &&" });
    const r = await anon.get(`/api/collections/books/records?${q}`);
    assert.equal(r.status, 400);
    assert.match(r.body.message, /filter/i);
    const unknown = await anon.get(`/api/collections/books/records?${new URLSearchParams({ filter: 'nope = 1' })}`);
    assert.equal(unknown.status, 400);
    const badSort = await anon.get('/api/collections/books/records?sort=nope');
    assert.equal(badSort.status, 400);
  });

  test('an injection attempt is only data', async () => {
    const q = new URLSearchParams({ filter: "title = \"x' OR 1=1 --\"" });
    const r = await anon.get(`/api/collections/books/records?${q}`);
    assert.equal(r.status, 200);
    assert.equal(r.body.items.length, 0);
  });

  test('fields picks keys and excerpts', async () => {
    const q = new URLSearchParams({ fields: 'id,title:excerpt(3,true)', filter: "title = 'Neuromancer'" });
    const r = await anon.get(`/api/collections/books/records?${q}`);
    assert.deepEqual(Object.keys(r.body.items[0]).sort(), ['id', 'title']);
    assert.equal(r.body.items[0].title, 'Neu...');
  });

  test('@random sort returns every row', async () => {
    const r = await anon.get('/api/collections/books/records?sort=@random&perPage=500&skipTotal=1');
    const all = await anon.get('/api/collections/books/records?perPage=500');
    assert.equal(r.body.items.length, all.body.totalItems);
  });

  test('If-None-Match on a list gives 304', async () => {
    const r = await anon.get('/api/collections/books/records?sort=title');
    const again = await anon.get('/api/collections/books/records?sort=title', {
      headers: { 'if-none-match': r.headers.get('etag') },
    });
    assert.equal(again.status, 304);
  });
});

describe('view, update, delete with validators', () => {
  let rec;
  before(async () => {
    rec = (await su.post('/api/collections/books/records', { title: 'Versioned', pages: 10 })).body;
  });

  test('view carries ETag and Cache-Control; 304 on a match', async () => {
    const r = await anon.get(`/api/collections/books/records/${rec.id}`);
    assert.equal(r.status, 200);
    assert.equal(r.body.title, 'Versioned');
    const etag = r.headers.get('etag');
    assert.equal(etag, `"${rec.id}.1"`);
    assert.equal(r.headers.get('cache-control'), 'public, no-cache');
    const mine = await su.get(`/api/collections/books/records/${rec.id}`);
    assert.equal(mine.headers.get('cache-control'), 'private, no-cache');
    const again = await anon.get(`/api/collections/books/records/${rec.id}`, {
      headers: { 'if-none-match': etag },
    });
    assert.equal(again.status, 304);
    assert.equal(again.headers.get('etag'), etag);
  });

  test('update with a matching If-Match succeeds and bumps the version', async () => {
    const r = await su.patch(`/api/collections/books/records/${rec.id}`, { pages: 11 }, {
      headers: { 'if-match': `"${rec.id}.1"` },
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.pages, 11);
    assert.equal(r.body.title, 'Versioned');
    assert.equal(r.headers.get('etag'), `"${rec.id}.2"`);
    assert.notEqual(r.body.updated, rec.updated === r.body.updated ? null : rec.updated);
  });

  test('a stale If-Match is 412 and changes nothing', async () => {
    const r = await su.patch(`/api/collections/books/records/${rec.id}`, { pages: 99 }, {
      headers: { 'if-match': `"${rec.id}.1"` },
    });
    assert.equal(r.status, 412);
    const got = await anon.get(`/api/collections/books/records/${rec.id}`);
    assert.equal(got.body.pages, 11);
    const del = await su.del(`/api/collections/books/records/${rec.id}`, {
      headers: { 'if-match': `"${rec.id}.1"` },
    });
    assert.equal(del.status, 412);
    const other = await su.patch(`/api/collections/books/records/${rec.id}`, { pages: 5 }, {
      headers: { 'if-match': '"someotherid0000.2"' },
    });
    assert.equal(other.status, 412);
  });

  test('an invalid update is 400 and changes nothing', async () => {
    const r = await su.patch(`/api/collections/books/records/${rec.id}`, { title: '' });
    assert.equal(r.status, 400);
    assert.equal(r.body.data.title.code, 'validation_required');
    assert.equal((await anon.get(`/api/collections/books/records/${rec.id}`)).body.title, 'Versioned');
  });

  test('delete with the current If-Match, then 404', async () => {
    const r = await su.del(`/api/collections/books/records/${rec.id}`, {
      headers: { 'if-match': `"${rec.id}.2"` },
    });
    assert.equal(r.status, 204);
    assert.equal((await anon.get(`/api/collections/books/records/${rec.id}`)).status, 404);
    assert.equal((await su.del(`/api/collections/books/records/${rec.id}`)).status, 404);
    assert.equal((await su.patch(`/api/collections/books/records/${rec.id}`, { pages: 1 })).status, 404);
  });
});

// PocketBase shows hidden fields to superusers only, and the password hash
// and tokenKey to nobody (apis/record_helpers.go autoResolveRecordsFlags,
// core Record.PublicExport).
describe('hidden fields', () => {
  let memberId;
  let noteId;
  let member;
  before(async () => {
    let r = await su.post('/api/collections', {
      name: 'members',
      type: 'auth',
      listRule: '',
      viewRule: '',
      fields: [{ name: 'note', type: 'text', hidden: true }],
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    r = await su.post('/api/collections/members/records', {
      email: 'm@example.com', password: 'member-pass-1', passwordConfirm: 'member-pass-1', note: 'vip',
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    memberId = r.body.id;
    assert.equal(r.body.note, 'vip', 'a superuser create answers the hidden field');
    r = await su.post('/api/collections', {
      name: 'notes',
      listRule: '',
      viewRule: '',
      fields: [
        { name: 'text', type: 'text' },
        { name: 'secret', type: 'text', hidden: true },
        { name: 'owner', type: 'relation', collectionId: (await su.get('/api/collections/members')).body.id, maxSelect: 1 },
      ],
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    r = await su.post('/api/collections/notes/records', { text: 'hi', secret: 's3', owner: memberId });
    noteId = r.body.id;
    assert.equal(r.body.secret, 's3');
    const auth = await anon.post('/api/collections/members/auth-with-password', {
      identity: 'm@example.com', password: 'member-pass-1',
    });
    assert.equal(auth.status, 200, JSON.stringify(auth.body));
    assert.equal(auth.body.record.note, undefined, 'a member does not see its own hidden field');
    member = client(srv, auth.body.token);
  });

  test('a superuser sees them in views, lists, expands and writes; others never', async () => {
    const view = `/api/collections/notes/records/${noteId}`;
    assert.equal((await su.get(view)).body.secret, 's3');
    assert.equal((await su.get('/api/collections/notes/records')).body.items[0].secret, 's3');
    assert.equal((await su.get(`${view}?fields=secret`)).body.secret, 's3');
    const up = await su.patch(view, { text: 'hello' });
    assert.equal(up.body.secret, 's3');
    for (const c of [anon, member]) {
      assert.equal((await c.get(view)).body.secret, undefined);
      assert.equal((await c.get('/api/collections/notes/records')).body.items[0].secret, undefined);
      assert.equal((await c.get(`${view}?expand=owner`)).body.expand.owner.note, undefined);
    }
    const expanded = await su.get(`${view}?expand=owner`);
    assert.equal(expanded.body.expand.owner.note, 'vip');
    assert.equal(expanded.body.expand.owner.password, undefined);
    assert.equal(expanded.body.expand.owner.tokenKey, undefined);
  });

  test('an auth record shows a superuser its hidden fields, never the password hash or tokenKey', async () => {
    for (const r of [
      (await su.get(`/api/collections/members/records/${memberId}`)).body,
      (await su.get('/api/collections/members/records')).body.items[0],
    ]) {
      assert.equal(r.note, 'vip');
      assert.equal(r.email, 'm@example.com');
      assert.equal(r.password, undefined);
      assert.equal(r.tokenKey, undefined);
    }
    const own = (await member.get(`/api/collections/members/records/${memberId}`)).body;
    assert.equal(own.note, undefined);
    assert.equal(own.password, undefined);
    assert.equal(own.tokenKey, undefined);
  });

  test('only a superuser may filter on a hidden field', async () => {
    const r = await su.get(`/api/collections/notes/records?filter=${encodeURIComponent("secret = 's3'")}`);
    assert.equal(r.body.totalItems, 1);
    const m = await member.get(`/api/collections/notes/records?filter=${encodeURIComponent("secret = 's3'")}`);
    assert.equal(m.status, 400);
  });
});
