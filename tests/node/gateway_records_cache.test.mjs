// The records API behind the gateway's shared cache: public answers (rule "",
// not an auth collection, no Authorization, nothing private expanded) are
// stored and served as hits; a write through the gateway purges what it made
// stale by tag, so the next read is a miss with the new data; answers that
// depend on the caller are never stored. See docs/caching.md.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { client } from './lib/api.mjs';
import { startGateway } from './lib/gateway.mjs';
import { startServer, superuserToken } from './lib/server.mjs';

// Long enough that nothing expires mid-test on a loaded box or under ASan.
const MAX_AGE = 300;

let srv;
let gw;
let su; // straight to the server
let suToken;
const ids = {};

async function via(path, { method = 'GET', body, token, headers = {} } = {}) {
  const h = { ...headers };
  if (token) h.authorization = token;
  if (body !== undefined) h['content-type'] = 'application/json';
  const r = await fetch(`${gw.url}${path}`, {
    method,
    headers: h,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  return {
    status: r.status,
    body: text ? JSON.parse(text) : null,
    cs: r.headers.get('cache-status') ?? '',
    h: r.headers,
  };
}

const isHit = (r) => /^cruder; hit/.test(r.cs);

before(async () => {
  srv = await startServer({ args: ['--records-shared-max-age', String(MAX_AGE)] });
  suToken = await superuserToken(srv, 'root@example.com', 'password123');
  su = client(srv, suToken);
  gw = await startGateway({
    upstreams: { api: [`127.0.0.1:${srv.port}`] },
    routes: [['/', 'api']],
    settings: {
      cache_max_bytes: '4m',
      cache_tag_field: 'Cache-Tag',
      cache_targeted_field: 'Cruder-Cache-Control',
      health_interval_ms: 0,
    },
  });
  const mk = async (body) => {
    const r = await su.post('/api/collections', body);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.id;
  };
  ids.tags = await mk({ name: 'tags', type: 'base', listRule: '', viewRule: '', fields: [{ name: 'name', type: 'text' }] });
  ids.users = await mk({ name: 'users', type: 'auth', listRule: '', viewRule: '' });
  ids.secrets = await mk({ name: 'secrets', type: 'base', listRule: '', viewRule: null, fields: [{ name: 'code', type: 'text' }] });
  ids.posts = await mk({
    name: 'posts', type: 'base', listRule: '', viewRule: '', createRule: '', updateRule: '', deleteRule: '',
    fields: [
      { name: 'title', type: 'text' },
      { name: 'tag', type: 'relation', collectionId: ids.tags, maxSelect: 1 },
      { name: 'secret', type: 'relation', collectionId: ids.secrets, maxSelect: 1 },
      { name: 'author', type: 'relation', collectionId: ids.users, maxSelect: 1 },
    ],
  });
  ids.ruled = await mk({ name: 'ruled', type: 'base', listRule: 'title != "hidden"', viewRule: 'title != "hidden"', fields: [{ name: 'title', type: 'text' }] });
  ids.tag1 = (await su.post('/api/collections/tags/records', { name: 'red' })).body.id;
  ids.secret1 = (await su.post('/api/collections/secrets/records', { code: 's1' })).body.id;
  const u = await su.post('/api/collections/users/records', {
    email: 'u@example.com', password: 'secret-pass-1', passwordConfirm: 'secret-pass-1',
  });
  ids.user1 = u.body.id;
  const p1 = await su.post('/api/collections/posts/records', {
    title: 'one', tag: ids.tag1, secret: ids.secret1, author: ids.user1,
  });
  assert.equal(p1.status, 200, JSON.stringify(p1.body));
  ids.p1 = p1.body.id;
  ids.p2 = (await su.post('/api/collections/posts/records', { title: 'two' })).body.id;
  ids.r1 = (await su.post('/api/collections/ruled/records', { title: 'shown' })).body.id;
});

after(async () => {
  if (gw) assert.equal(await gw.stop(), 0);
  if (srv) assert.equal(await srv.stop(), 0);
});

describe('answers of cruder serve', () => {
  test('a public view and list say public, with the gateway freshness, tags and validators', async () => {
    const v = await fetch(`${srv.url}/api/collections/posts/records/${ids.p1}`);
    assert.equal(v.status, 200);
    assert.equal(v.headers.get('cache-control'), 'public, no-cache');
    assert.equal(v.headers.get('cruder-cache-control'), `max-age=${MAX_AGE}`);
    assert.equal(v.headers.get('cache-tag'), `${ids.posts}/${ids.p1}, ${ids.posts}/*`);
    assert.equal(v.headers.get('vary'), 'Authorization');
    const etag = v.headers.get('etag');
    assert.match(etag, /^"[a-z0-9]+\.\d+"$/);
    const head = await fetch(`${srv.url}/api/collections/posts/records/${ids.p1}`, { method: 'HEAD' });
    assert.equal(head.headers.get('cache-control'), 'public, no-cache');
    assert.equal(head.headers.get('etag'), etag);
    const nm = await fetch(`${srv.url}/api/collections/posts/records/${ids.p1}`, { headers: { 'if-none-match': etag } });
    assert.equal(nm.status, 304);
    assert.equal(nm.headers.get('cache-control'), 'public, no-cache');

    const l = await fetch(`${srv.url}/api/collections/posts/records?sort=title`);
    assert.equal(l.headers.get('cache-control'), 'public, no-cache');
    assert.equal(l.headers.get('cache-tag'), ids.posts);
    const letag = l.headers.get('etag');
    assert.match(letag, /^W\/"[0-9a-f]{16}"$/);
    const lnm = await fetch(`${srv.url}/api/collections/posts/records?sort=title`, { headers: { 'if-none-match': letag } });
    assert.equal(lnm.status, 304);

    // expanding public collections adds their tags
    const e = await fetch(`${srv.url}/api/collections/posts/records/${ids.p1}?expand=tag`);
    assert.equal(e.headers.get('cache-control'), 'public, no-cache');
    assert.equal(e.headers.get('cache-tag'), `${ids.posts}/${ids.p1}, ${ids.posts}/*, ${ids.tags}`);
    // an expanded answer's ETag follows the expanded records too, and still
    // names the record's version for If-Match
    const eEtag = e.headers.get('etag');
    assert.match(eEtag, /^"[a-z0-9]+\.\d+-[0-9a-f]{16}"$/);
    assert.ok(eEtag.startsWith(etag.slice(0, -1)), `${eEtag} vs ${etag}`);
    const tagged = await su.patch(`/api/collections/tags/records/${ids.tag1}`, { name: 'crimson' });
    assert.equal(tagged.status, 200);
    const e2 = await fetch(`${srv.url}/api/collections/posts/records/${ids.p1}?expand=tag`, {
      headers: { 'if-none-match': eEtag },
    });
    assert.equal(e2.status, 200);
    assert.notEqual(e2.headers.get('etag'), eEtag);
    const cas = await su.patch(`/api/collections/posts/records/${ids.p1}`, { title: 'one' }, { headers: { 'if-match': eEtag } });
    assert.equal(cas.status, 200, JSON.stringify(cas.body));
    const stale = await su.patch(`/api/collections/posts/records/${ids.p1}`, { title: 'one' }, { headers: { 'if-match': eEtag } });
    assert.equal(stale.status, 412);
    await su.patch(`/api/collections/tags/records/${ids.tag1}`, { name: 'red' });
  });

  test('answers that depend on the caller stay private', async () => {
    const cases = [
      [`/api/collections/posts/records/${ids.p1}`, suToken], // a superuser
      ['/api/collections/posts/records', 'not-a-valid-token'], // any Authorization
      [`/api/collections/ruled/records/${ids.r1}`],
      ['/api/collections/ruled/records'],
      [`/api/collections/users/records/${ids.user1}`],
      ['/api/collections/users/records'],
      [`/api/collections/posts/records/${ids.p1}?expand=secret`], // null view rule
      [`/api/collections/posts/records/${ids.p1}?expand=author`], // an auth collection
      [`/api/collections/posts/records?expand=tag,author`],
    ];
    for (const [path, token] of cases) {
      const r = await fetch(`${srv.url}${path}`, { headers: token ? { authorization: token } : {} });
      assert.equal(r.status, 200, path);
      assert.equal(r.headers.get('cache-control'), 'private, no-cache', path);
      assert.equal(r.headers.get('cruder-cache-control'), null, path);
      assert.equal(r.headers.get('cache-tag'), null, path);
    }
  });

  test('writes name the tags they make stale', async () => {
    const c = await fetch(`${srv.url}/api/collections/posts/records`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"title":"tmp"}',
    });
    const made = await c.json();
    assert.equal(c.status, 200);
    assert.equal(c.headers.get('cache-control'), 'private, no-cache');
    assert.equal(c.headers.get('cache-tag'), `${ids.posts}, ${ids.posts}/${made.id}`);
    const d = await fetch(`${srv.url}/api/collections/posts/records/${made.id}`, { method: 'DELETE' });
    assert.equal(d.status, 204);
    assert.equal(d.headers.get('cache-tag'), `${ids.posts}, ${ids.posts}/${made.id}`);
    const bad = await fetch(`${srv.url}/api/collections/posts/records/${made.id}`, { method: 'DELETE' });
    assert.equal(bad.status, 404);
    assert.equal(bad.headers.get('cache-tag'), null);
  });

  test('a wide cascade names its collections whole once its tags reach 4 KiB', async () => {
    const root = (await su.post('/api/collections', { name: 'root', listRule: '', viewRule: '' })).body.id;
    const top = (await su.post('/api/collections/root/records', {})).body.id;
    const kids = [];
    for (let k = 0; k < 10; k++) {
      const name = `leaf${k}`;
      const made = await su.post('/api/collections', {
        name, fields: [{ name: 'up', type: 'relation', collectionId: root, maxSelect: 1, cascadeDelete: true }],
      });
      kids.push(made.body.id);
      for (let i = 0; i < 14; i++) assert.equal((await su.post(`/api/collections/${name}/records`, { up: top })).status, 200);
    }
    const d = await fetch(`${srv.url}/api/collections/root/records/${top}`, { method: 'DELETE', headers: { authorization: suToken } });
    assert.equal(d.status, 204);
    const field = d.headers.get('cache-tag');
    assert.ok(field.length < 4096 + 200, `${field.length} bytes`);
    const tags = field.split(', ');
    for (const cid of kids) assert.ok(tags.includes(cid), `${cid} named`);
    // The first collections are tagged record by record, the last ones whole.
    assert.equal(tags.filter((t) => t.startsWith(`${kids[0]}/`)).length, 14);
    assert.ok(tags.includes(`${kids.at(-1)}/*`));
    for (let k = 0; k < 10; k++) assert.equal((await su.del(`/api/collections/leaf${k}`)).status, 204);
    assert.equal((await su.del('/api/collections/root')).status, 204);
  });

  test("a collection's update and delete name every tag of its answers", async () => {
    const made = await su.post('/api/collections', { name: 'scratch', listRule: '', viewRule: '' });
    assert.equal(made.status, 200);
    assert.equal(made.headers.get('cache-tag'), null, 'a new collection has nothing stored');
    const cid = made.body.id;
    const up = await fetch(`${srv.url}/api/collections/scratch`, {
      method: 'PATCH',
      headers: { authorization: suToken, 'content-type': 'application/json' },
      body: JSON.stringify({ viewRule: null }),
    });
    assert.equal(up.status, 200);
    assert.equal(up.headers.get('cache-tag'), `${cid}, ${cid}/*`);
    const bad = await fetch(`${srv.url}/api/collections/scratch`, {
      method: 'PATCH',
      headers: { authorization: suToken, 'content-type': 'application/json' },
      body: JSON.stringify({ name: '' }),
    });
    assert.equal(bad.status, 400);
    assert.equal(bad.headers.get('cache-tag'), null);
    const del = await fetch(`${srv.url}/api/collections/scratch`, { method: 'DELETE', headers: { authorization: suToken } });
    assert.equal(del.status, 204);
    assert.equal(del.headers.get('cache-tag'), `${cid}, ${cid}/*`);
  });

  test("a delete names the tags of the records its cascade removed, a collection's whole past 15", async () => {
    const parents = (await su.post('/api/collections', { name: 'parents', listRule: '', viewRule: '' })).body.id;
    const kids = (
      await su.post('/api/collections', {
        name: 'kids', listRule: '', viewRule: '',
        fields: [{ name: 'parent', type: 'relation', collectionId: parents, maxSelect: 1, cascadeDelete: true }],
      })
    ).body.id;
    const mom = (await su.post('/api/collections/parents/records', {})).body.id;
    const kid = (await su.post('/api/collections/kids/records', { parent: mom })).body.id;
    let d = await fetch(`${srv.url}/api/collections/parents/records/${mom}`, { method: 'DELETE', headers: { authorization: suToken } });
    assert.equal(d.status, 204);
    assert.equal(d.headers.get('cache-tag'), `${parents}, ${parents}/${mom}, ${kids}, ${kids}/${kid}`);
    const dad = (await su.post('/api/collections/parents/records', {})).body.id;
    const many = [];
    for (let i = 0; i < 20; i++) many.push((await su.post('/api/collections/kids/records', { parent: dad })).body.id);
    d = await fetch(`${srv.url}/api/collections/parents/records/${dad}`, { method: 'DELETE', headers: { authorization: suToken } });
    assert.equal(d.status, 204);
    const tags = d.headers.get('cache-tag').split(', ');
    assert.equal(new Set(tags).size, tags.length, 'no tag twice');
    assert.deepEqual(tags.slice(0, 3), [parents, `${parents}/${dad}`, kids]);
    assert.equal(tags.filter((t) => t.startsWith(`${kids}/`) && t !== `${kids}/*`).length, 15);
    assert.equal(tags.at(-1), `${kids}/*`);
    for (const id of many) assert.equal((await su.get(`/api/collections/kids/records/${id}`)).status, 404);
    for (const name of ['kids', 'parents']) assert.equal((await su.del(`/api/collections/${name}`)).status, 204);
  });
});

describe('through the gateway', () => {
  test('list and view are hits on the second request', async () => {
    const path = `/api/collections/posts/records/${ids.p2}`;
    const a = await via(path);
    assert.equal(a.status, 200);
    assert.match(a.cs, /fwd=uri-miss.*stored/);
    const b = await via(path);
    assert.ok(isHit(b), b.cs);
    assert.deepEqual(b.body, a.body);
    // the gateway-specific field is the gateway's, never the client's
    assert.equal(b.h.get('cruder-cache-control'), null);
    assert.equal(b.h.get('cache-control'), 'public, no-cache');

    const l1 = await via('/api/collections/posts/records?sort=title');
    assert.equal(l1.body.totalItems, 2);
    const l2 = await via('/api/collections/posts/records?sort=title');
    assert.ok(isHit(l2), l2.cs);
  });

  test('a PATCH through the gateway makes the next view and list misses with fresh data', async () => {
    const view = `/api/collections/posts/records/${ids.p2}`;
    const list = '/api/collections/posts/records?sort=title';
    await via(view);
    await via(list);
    assert.ok(isHit(await via(view)));
    assert.ok(isHit(await via(list)));
    const p = await via(view, { method: 'PATCH', body: { title: 'two v2' } });
    assert.equal(p.status, 200);
    const v = await via(view);
    assert.ok(!isHit(v), v.cs);
    assert.equal(v.body.title, 'two v2');
    const l = await via(list);
    assert.ok(!isHit(l), l.cs);
    assert.deepEqual(l.body.items.map((x) => x.title), ['one', 'two v2']);
    // the other record's view was not made stale by this write
    const other = `/api/collections/posts/records/${ids.p1}`;
    await via(other);
    await via(view, { method: 'PATCH', body: { title: 'two v3' } });
    assert.ok(isHit(await via(other)));
  });

  test('a POST and a DELETE through the gateway refresh the lists and the view', async () => {
    const list = '/api/collections/posts/records?sort=title&fields=title';
    await via(list);
    assert.ok(isHit(await via(list)));
    const c = await via('/api/collections/posts/records', { method: 'POST', body: { title: 'three' } });
    assert.equal(c.status, 200);
    const l = await via(list);
    assert.ok(!isHit(l), l.cs);
    assert.deepEqual(l.body.items.map((x) => x.title), ['one', 'three', 'two v3']);
    const view = `/api/collections/posts/records/${c.body.id}`;
    await via(view);
    assert.ok(isHit(await via(view)));
    const d = await via(view, { method: 'DELETE' });
    assert.equal(d.status, 204);
    assert.equal((await via(view)).status, 404);
    const l2 = await via(list);
    assert.deepEqual(l2.body.items.map((x) => x.title), ['one', 'two v3']);
  });

  test('a write to an expanded collection refreshes the answers that expanded it', async () => {
    const path = `/api/collections/posts/records/${ids.p1}?expand=tag`;
    await via(path);
    assert.ok(isHit(await via(path)));
    const t = await via(`/api/collections/tags/records/${ids.tag1}`, {
      method: 'PATCH', body: { name: 'blue' }, token: suToken,
    });
    assert.equal(t.status, 200);
    const r = await via(path);
    assert.ok(!isHit(r), r.cs);
    assert.equal(r.body.expand.tag.name, 'blue');
  });

  test("a collection's rule tightened through the gateway drops its stored answers at once", async () => {
    const made = await su.post('/api/collections', {
      name: 'notes', listRule: '', viewRule: '', fields: [{ name: 'text', type: 'text' }],
    });
    assert.equal(made.status, 200);
    const id = (await su.post('/api/collections/notes/records', { text: 'open' })).body.id;
    const view = `/api/collections/notes/records/${id}`;
    const list = '/api/collections/notes/records';
    for (const path of [view, list]) {
      await via(path);
      assert.ok(isHit(await via(path)), path);
    }
    const closed = await via('/api/collections/notes', {
      method: 'PATCH', body: { listRule: null, viewRule: null }, token: suToken,
    });
    assert.equal(closed.status, 200, JSON.stringify(closed.body));
    for (const path of [view, list]) {
      const r = await via(path);
      assert.ok(!isHit(r), `${path}: ${r.cs}`);
      assert.equal(r.status, 403, path);
    }
    assert.equal((await su.del('/api/collections/notes')).status, 204);
  });

  test("a delete through the gateway drops the stored answers of the records its cascade removed", async () => {
    const parents = (await su.post('/api/collections', { name: 'folders', listRule: '', viewRule: '' })).body.id;
    await su.post('/api/collections', {
      name: 'docs', listRule: '', viewRule: '', deleteRule: '',
      fields: [{ name: 'folder', type: 'relation', collectionId: parents, maxSelect: 1, cascadeDelete: true }],
    });
    const folder = (await su.post('/api/collections/folders/records', {})).body.id;
    const doc = (await su.post('/api/collections/docs/records', { folder })).body.id;
    const view = `/api/collections/docs/records/${doc}`;
    const list = '/api/collections/docs/records';
    for (const path of [view, list]) {
      await via(path);
      assert.ok(isHit(await via(path)), path);
    }
    const d = await via(`/api/collections/folders/records/${folder}`, { method: 'DELETE', token: suToken });
    assert.equal(d.status, 204);
    assert.equal((await via(view)).status, 404);
    const l = await via(list);
    assert.ok(!isHit(l), l.cs);
    assert.equal(l.body.totalItems, 0);
    for (const name of ['docs', 'folders']) assert.equal((await su.del(`/api/collections/${name}`)).status, 204);
  });

  test('ruled and auth collections are never stored', async () => {
    for (const path of [
      `/api/collections/ruled/records/${ids.r1}`,
      '/api/collections/ruled/records',
      `/api/collections/users/records/${ids.user1}`,
      '/api/collections/users/records',
      `/api/collections/posts/records/${ids.p1}?expand=secret`,
    ]) {
      const a = await via(path);
      assert.equal(a.status, 200, path);
      const b = await via(path);
      assert.ok(!isHit(b), `${path}: ${b.cs}`);
      assert.doesNotMatch(b.cs, /stored/, path);
    }
  });

  test("a superuser's answer is never stored, nor served the stored anonymous one", async () => {
    const path = `/api/collections/posts/records/${ids.p1}`;
    await via(path);
    assert.ok(isHit(await via(path)));
    for (let i = 0; i < 2; i++) {
      const s = await via(path, { token: suToken });
      assert.equal(s.status, 200);
      assert.ok(!isHit(s), s.cs);
      assert.doesNotMatch(s.cs, /stored/);
      assert.equal(s.h.get('cache-control'), 'private, no-cache');
    }
    // a signed-in user is not served the stored anonymous answer either
    const login = await via('/api/collections/users/auth-with-password', {
      method: 'POST', body: { identity: 'u@example.com', password: 'secret-pass-1' },
    });
    assert.equal(login.status, 200);
    const u = await via(path, { token: login.body.token });
    assert.ok(!isHit(u), u.cs);
    // and the anonymous answer is still stored
    assert.ok(isHit(await via(path)));
  });
});

describe('with records_shared_max_age 0', () => {
  let plain;
  let t;
  before(async () => {
    plain = await startServer({ args: ['--records-shared-max-age', '0'] });
    t = await superuserToken(plain, 'root@example.com', 'password123');
    const c = await client(plain, t).post('/api/collections', { name: 'open', type: 'base', listRule: '', viewRule: '' });
    assert.equal(c.status, 200, JSON.stringify(c.body));
  });
  after(async () => {
    assert.equal(await plain.stop(), 0);
  });
  test('every answer is private and carries no tags', async () => {
    const r = await fetch(`${plain.url}/api/collections/open/records`);
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('cache-control'), 'private, no-cache');
    assert.equal(r.headers.get('cache-tag'), null);
    const w = await fetch(`${plain.url}/api/collections/open/records`, {
      method: 'POST', headers: { 'content-type': 'application/json', authorization: t }, body: '{}',
    });
    assert.equal(w.status, 200);
    assert.equal(w.headers.get('cache-tag'), null);
  });
});
