// ?expand: single and multiple relations, nested paths, back-relations,
// fields= inside expand, and the related collection's view rule applied to
// every expanded record, so an expand never shows what a view would hide.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { client } from './lib/api.mjs';
import { startServer, superuserToken } from './lib/server.mjs';

let srv;
let su;
let anon;
let alice;
const ids = {};

before(async () => {
  srv = await startServer();
  su = client(srv, await superuserToken(srv, 'root@example.com', 'password123'));
  anon = client(srv);
  const mk = async (body) => {
    const r = await su.post('/api/collections', body);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.id;
  };
  const usersId = await mk({
    name: 'users', type: 'auth', listRule: 'id = @request.auth.id', viewRule: 'id = @request.auth.id',
  });
  const tagsId = await mk({ name: 'tags', type: 'base', listRule: '', viewRule: '', fields: [{ name: 'name', type: 'text' }] });
  const secretId = await mk({ name: 'secrets', type: 'base', fields: [{ name: 'code', type: 'text' }] });
  const postsId = await mk({
    name: 'posts', type: 'base', listRule: '', viewRule: '',
    fields: [
      { name: 'title', type: 'text' },
      { name: 'author', type: 'relation', collectionId: usersId, maxSelect: 1 },
      { name: 'tags', type: 'relation', collectionId: tagsId, maxSelect: 10 },
      { name: 'secret', type: 'relation', collectionId: secretId, maxSelect: 1 },
    ],
  });
  const upd = await su.patch('/api/collections/posts', {
    fields: [
      ...(await su.get('/api/collections/posts')).body.fields,
      { name: 'parent', type: 'relation', collectionId: postsId, maxSelect: 1 },
    ],
  });
  assert.equal(upd.status, 200, JSON.stringify(upd.body));
  await mk({
    name: 'comments', type: 'base', listRule: '', viewRule: '',
    fields: [
      { name: 'text', type: 'text' },
      { name: 'post', type: 'relation', collectionId: postsId, maxSelect: 1 },
    ],
  });
  const user = await su.post('/api/collections/users/records', {
    email: 'alice@example.com', password: 'secret-pass-1', passwordConfirm: 'secret-pass-1',
  });
  ids.alice = user.body.id;
  const login = await anon.post('/api/collections/users/auth-with-password', {
    identity: 'alice@example.com', password: 'secret-pass-1',
  });
  alice = client(srv, login.body.token);
  ids.red = (await su.post('/api/collections/tags/records', { name: 'red' })).body.id;
  ids.blue = (await su.post('/api/collections/tags/records', { name: 'blue' })).body.id;
  ids.secret = (await su.post('/api/collections/secrets/records', { code: 'xyzzy' })).body.id;
  ids.root = (await su.post('/api/collections/posts/records', {
    title: 'root', author: ids.alice, tags: [ids.blue],
  })).body.id;
  const post = await su.post('/api/collections/posts/records', {
    title: 'child', author: ids.alice, tags: [ids.red, ids.blue], secret: ids.secret, parent: ids.root,
  });
  assert.equal(post.status, 200, JSON.stringify(post.body));
  ids.post = post.body.id;
  for (const text of ['first', 'second']) {
    await su.post('/api/collections/comments/records', { text, post: ids.post });
  }
});
after(async () => {
  assert.equal(await srv.stop(), 0);
});

const view = (c, q) => c.get(`/api/collections/posts/records/${ids.post}?${q}`);

test('anonymous: only what its view rules allow is expanded', async () => {
  const r = await view(anon, 'expand=author,tags,secret');
  assert.equal(r.status, 200);
  assert.deepEqual(r.body.expand.tags.map((t) => t.name), ['red', 'blue']);
  assert.equal(r.body.expand.author, undefined, 'users are private to themselves');
  assert.equal(r.body.expand.secret, undefined, 'null view rule: superusers only');
  assert.equal(r.body.author, ids.alice, 'the relation value itself stays');
});

test('the related record itself sees its expand; secrets never appear', async () => {
  const r = await view(alice, 'expand=author,secret');
  assert.equal(r.body.expand.author.id, ids.alice);
  assert.equal(r.body.expand.author.email, 'alice@example.com');
  assert.equal(r.body.expand.author.password, undefined);
  assert.equal(r.body.expand.author.tokenKey, undefined);
  assert.equal(r.body.expand.secret, undefined);
});

test('superusers expand everything', async () => {
  const r = await view(su, 'expand=author,secret');
  assert.equal(r.body.expand.author.id, ids.alice);
  assert.equal(r.body.expand.secret.code, 'xyzzy');
  assert.equal(r.body.expand.author.tokenKey, undefined);
});

test('nested paths and back-relations', async () => {
  const r = await view(anon, 'expand=parent.tags,comments_via_post,parent.author');
  assert.equal(r.body.expand.parent.id, ids.root);
  assert.deepEqual(r.body.expand.parent.expand.tags.map((t) => t.name), ['blue']);
  assert.equal(r.body.expand.parent.expand.author, undefined);
  assert.deepEqual(r.body.expand.comments_via_post.map((c) => c.text).sort(), ['first', 'second']);
  const deep = await view(su, 'expand=comments_via_post.post.parent');
  const c0 = deep.body.expand.comments_via_post[0];
  assert.equal(c0.expand.post.id, ids.post);
  assert.equal(c0.expand.post.expand.parent.title, 'root');
});

test('fields= reaches into expand', async () => {
  const r = await view(anon, 'expand=tags&fields=title,expand.tags.name');
  assert.deepEqual(r.body, { title: 'child', expand: { tags: [{ name: 'red' }, { name: 'blue' }] } });
});

test('list: every item expanded; unknown relations expand to nothing', async () => {
  const r = await anon.get('/api/collections/posts/records?sort=title&expand=tags,nope');
  assert.equal(r.status, 200);
  assert.deepEqual(r.body.items.map((p) => p.expand.tags.map((t) => t.name)), [['red', 'blue'], ['blue']]);
  const none = await anon.get('/api/collections/comments/records?expand=post.secret');
  for (const c of none.body.items) {
    assert.equal(c.expand.post.id, ids.post);
    assert.equal(c.expand.post.expand, undefined);
  }
});
