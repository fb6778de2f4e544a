// ?expand= and ?fields= on create and update answers, as PocketBase allows:
// the related records under their own view rules, as on a view.
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
    name: 'tags', type: 'base', listRule: '', viewRule: 'name != "private"', fields: [{ name: 'name', type: 'text' }],
  });
  assert.equal(tags.status, 200, JSON.stringify(tags.body));
  const posts = await su.post('/api/collections', {
    name: 'posts', type: 'base', listRule: '', viewRule: '', createRule: '', updateRule: '',
    fields: [
      { name: 'title', type: 'text' },
      { name: 'tags', type: 'relation', collectionId: tags.body.id, maxSelect: 9 },
      { name: 'main', type: 'relation', collectionId: tags.body.id, maxSelect: 1 },
    ],
  });
  assert.equal(posts.status, 200, JSON.stringify(posts.body));
  ids.red = (await su.post('/api/collections/tags/records', { name: 'red' })).body.id;
  ids.priv = (await su.post('/api/collections/tags/records', { name: 'private' })).body.id;
});

after(async () => {
  assert.equal(await srv.stop(), 0);
});

test('create answers with the expanded relations the caller may view', async () => {
  const r = await anon.post('/api/collections/posts/records?expand=tags,main', {
    title: 'a', tags: [ids.red, ids.priv], main: ids.red,
  });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  ids.post = r.body.id;
  assert.deepEqual(r.body.expand.tags.map((t) => t.name), ['red']);
  assert.equal(r.body.expand.main.name, 'red');
  assert.deepEqual(r.body.tags, [ids.red, ids.priv]);
  const etag = r.headers.get('etag');
  const v = await anon.get(`/api/collections/posts/records/${ids.post}`);
  assert.equal(v.headers.get('etag'), etag, 'the answer carries the written version');
});

test('update answers expanded too, with fields=', async () => {
  const r = await anon.patch(`/api/collections/posts/records/${ids.post}?expand=main&fields=id,title,expand.main.name`, {
    title: 'b', main: ids.priv,
  });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.deepEqual(r.body, { id: ids.post, title: 'b' }, 'a hidden relation expands to nothing');
  const s = await su.patch(`/api/collections/posts/records/${ids.post}?expand=main`, { title: 'c' });
  assert.equal(s.status, 200);
  assert.equal(s.body.expand.main.name, 'private');
  const plain = await anon.patch(`/api/collections/posts/records/${ids.post}`, { title: 'd' });
  assert.equal(plain.body.expand, undefined);
  assert.equal(plain.body.title, 'd');
});
