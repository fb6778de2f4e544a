// Collections API, black-box: superuser access, PocketBase shapes, schema
// validation and migrations that keep data.
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
});
after(async () => {
  assert.equal(await srv.stop(), 0);
});

describe('access', () => {
  test('anonymous callers get 401 in PocketBase error shape', async () => {
    const r = await anon.get('/api/collections');
    assert.equal(r.status, 401);
    assert.deepEqual(r.body, {
      status: 401,
      message: 'The request requires valid record authorization token.',
      data: {},
    });
  });
  test('a tampered token is anonymous', async () => {
    const bad = client(srv, 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e30.AAAA');
    assert.equal((await bad.get('/api/collections')).status, 401);
  });
});

describe('create, view, list, update, delete', () => {
  test('create a base collection with every field type', async () => {
    const r = await su.post('/api/collections', {
      name: 'posts',
      type: 'base',
      listRule: '',
      viewRule: '',
      fields: [
        { name: 'title', type: 'text', required: true, min: 2, max: 50 },
        { name: 'views', type: 'number', min: 0, onlyInt: true },
        { name: 'published', type: 'bool' },
        { name: 'author_email', type: 'email' },
        { name: 'link', type: 'url' },
        { name: 'due', type: 'date' },
        { name: 'tags', type: 'select', values: ['a', 'b', 'c'], maxSelect: 2 },
        { name: 'meta', type: 'json', maxSize: 1000 },
        { name: 'created', type: 'autodate', onCreate: true, onUpdate: false },
        { name: 'updated', type: 'autodate', onCreate: true, onUpdate: true },
      ],
      indexes: ['CREATE INDEX `idx_posts_views` ON `posts` (`views`)'],
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.name, 'posts');
    assert.equal(r.body.type, 'base');
    assert.match(r.body.id, /^pbc_\d+$/);
    const names = r.body.fields.map((f) => f.name);
    assert.deepEqual(names, ['id', 'title', 'views', 'published', 'author_email', 'link', 'due',
      'tags', 'meta', 'created', 'updated']);
    assert.equal(r.body.listRule, '');
    assert.equal(r.body.createRule, null);
    assert.deepEqual(r.body.indexes, ['CREATE INDEX `idx_posts_views` ON `posts` (`views`)']);
  });

  test('view by name and by id', async () => {
    const byName = await su.get('/api/collections/posts');
    assert.equal(byName.status, 200);
    const byId = await su.get(`/api/collections/${byName.body.id}`);
    assert.equal(byId.status, 200);
    assert.equal(byId.body.name, 'posts');
  });

  test('list is paginated and includes _superusers', async () => {
    const r = await su.get('/api/collections?perPage=100');
    assert.equal(r.status, 200);
    assert.equal(r.body.page, 1);
    assert.equal(r.body.perPage, 100);
    const names = r.body.items.map((c) => c.name);
    assert.ok(names.includes('posts'));
    assert.ok(names.includes('_superusers'));
    assert.equal(r.body.totalItems, names.length);
  });

  test('duplicate names are refused case-insensitively', async () => {
    const r = await su.post('/api/collections', { name: 'POSTS', type: 'base', fields: [] });
    assert.equal(r.status, 400);
    assert.equal(r.body.data.name.code, 'validation_collection_name_exists');
  });

  test('invalid names never reach SQL', async () => {
    for (const name of ['', 'a b', 'x"; DROP TABLE posts; --', '1abc', 'a'.repeat(300)]) {
      const r = await su.post('/api/collections', { name, type: 'base', fields: [] });
      assert.equal(r.status, 400, name);
      assert.ok(r.body.data.name, name);
    }
    const bad = await su.post('/api/collections', {
      name: 'ok1', type: 'base', fields: [{ name: 'x" TEXT); --', type: 'text' }],
    });
    assert.equal(bad.status, 400);
    assert.ok(bad.body.data.fields);
  });

  test('indexes must name existing fields', async () => {
    const r = await su.post('/api/collections', {
      name: 'idxbad',
      type: 'base',
      fields: [{ name: 'a', type: 'text' }],
      indexes: ['CREATE INDEX idx_x ON idxbad (nope)'],
    });
    assert.equal(r.status, 400);
    assert.ok(r.body.data.indexes);
  });

  test('fields are added, renamed and removed without losing data', async () => {
    const rec = await su.post('/api/collections/posts/records', { title: 'keep me', views: 7 });
    assert.equal(rec.status, 200, JSON.stringify(rec.body));
    const col = (await su.get('/api/collections/posts')).body;
    const fields = col.fields
      .filter((f) => f.name !== 'link')
      .map((f) => (f.name === 'views' ? { ...f, name: 'hits' } : f));
    fields.push({ name: 'subtitle', type: 'text' });
    const up = await su.patch('/api/collections/posts', {
      fields,
      indexes: ['CREATE INDEX `idx_posts_hits` ON `posts` (`hits`)'],
    });
    assert.equal(up.status, 200, JSON.stringify(up.body));
    const got = await su.get(`/api/collections/posts/records/${rec.body.id}`);
    assert.equal(got.status, 200);
    assert.equal(got.body.title, 'keep me');
    assert.equal(got.body.hits, 7);
    assert.equal(got.body.subtitle, '');
    assert.equal('link' in got.body, false);
    assert.equal('views' in got.body, false);
  });

  // Regression: a save replaced its collection in the schema by pointer, so
  // when the collections watch had republished the schema meanwhile (it reads
  // the store every 200 ms after any save) a stale copy stayed beside the new
  // one and shadowed it: a read right after a rename missed the field.
  test('each change is seen by the very next request, whatever the collections watch does', async () => {
    const made = await su.post('/api/collections', {
      name: 'renames', listRule: '', viewRule: '', fields: [{ name: 'f0', type: 'text' }],
    });
    assert.equal(made.status, 200, JSON.stringify(made.body));
    const rec = (await su.post('/api/collections/renames/records', { f0: 'kept' })).body.id;
    for (let i = 1; i <= 40; i++) {
      const col = (await su.get('/api/collections/renames')).body;
      const fields = col.fields.map((f) => (f.name === `f${i - 1}` ? { ...f, name: `f${i}` } : f));
      assert.equal((await su.patch('/api/collections/renames', { fields })).status, 200);
      const got = await su.get(`/api/collections/renames/records/${rec}`);
      assert.equal(got.body[`f${i}`], 'kept', `rename ${i}: ${JSON.stringify(got.body)}`);
      // Now and then wait for the watch's look, so some renames race it.
      if (i % 4 === 0) await new Promise((r) => setTimeout(r, 150 + (i % 3) * 40));
    }
    assert.equal((await su.del('/api/collections/renames')).status, 204);
  });

  test('a field type cannot change', async () => {
    const col = (await su.get('/api/collections/posts')).body;
    const fields = col.fields.map((f) => (f.name === 'title' ? { ...f, type: 'number' } : f));
    const r = await su.patch('/api/collections/posts', { fields });
    assert.equal(r.status, 400);
  });

  test('delete a collection, then it is gone', async () => {
    const c = await su.post('/api/collections', { name: 'temp', type: 'base', fields: [] });
    assert.equal(c.status, 200);
    const d = await su.del('/api/collections/temp');
    assert.equal(d.status, 204);
    assert.equal((await su.get('/api/collections/temp')).status, 404);
    assert.equal((await su.get('/api/collections/temp/records')).status, 404);
  });

  test('system collections cannot be deleted', async () => {
    const r = await su.del('/api/collections/_superusers');
    assert.equal(r.status, 400);
  });

  test('the schema survives a restart', async () => {
    const dir = srv.dir;
    assert.equal(await srv.stop(), 0);
    srv = await startServer({ dir });
    su = client(srv, await superuserToken(srv, 'admin@example.com', 'password123'));
    const r = await su.get('/api/collections/posts');
    assert.equal(r.status, 200);
    assert.ok(r.body.fields.some((f) => f.name === 'hits'));
  });
});
