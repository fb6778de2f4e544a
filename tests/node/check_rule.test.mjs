// POST /api/cruder/check-rule: the console's syntax check of an API rule
// before saving, with the server's own rule compiler. 204 when the rule
// compiles; 400 with data.rule {code, message, position} (a byte offset)
// when it does not; superusers only.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { client } from './lib/api.mjs';
import { startServer, superuserToken } from './lib/server.mjs';

let srv;
let su;

before(async () => {
  srv = await startServer();
  su = client(srv, await superuserToken(srv, 'su@example.com', 'password123'));
  const r = await su.post('/api/collections', {
    name: 'posts',
    type: 'base',
    fields: [
      { name: 'title', type: 'text' },
      { name: 'views', type: 'number' },
    ],
  });
  assert.equal(r.status, 200, JSON.stringify(r.body));
});

after(async () => {
  if (srv) assert.equal(await srv.stop(), 0);
});

const check = (body, c = su) => c.post('/api/cruder/check-rule', body);

test('a rule that compiles answers 204', async () => {
  for (const rule of ['', "title = 'a'", "views > 3 && @request.auth.id != ''", '@request.body.title:isset = true']) {
    const r = await check({ collection: 'posts', rule, kind: 'update' });
    assert.equal(r.status, 204, `${rule}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body, null);
  }
  // by id too, and without a kind
  const list = await su.get('/api/collections/posts');
  assert.equal((await check({ collection: list.body.id, rule: 'views >= 1' })).status, 204);
});

test('an unknown field: 400 with its byte position', async () => {
  const r = await check({ collection: 'posts', rule: "title = 'x' && titel = 'y'", kind: 'list' });
  assert.equal(r.status, 400);
  assert.equal(r.body.status, 400);
  assert.equal(r.body.message, 'Invalid rule.');
  assert.equal(r.body.data.rule.code, 'validation_invalid_rule');
  assert.match(r.body.data.rule.message, /titel/);
  assert.equal(r.body.data.rule.position, 15);
});

test('a syntax error: the position is in bytes, past multi-byte text', async () => {
  // "é" is two bytes: the stray '=' is character 12, byte 13
  const r = await check({ collection: 'posts', rule: "title = 'é' = =", kind: 'view' });
  assert.equal(r.status, 400, JSON.stringify(r.body));
  assert.deepEqual(r.body.data.rule, {
    code: 'validation_invalid_rule',
    message: 'expected && or ||, got "="',
    position: 13,
  });
  const end = await check({ collection: 'posts', rule: "title = 'é' && (", kind: 'view' });
  assert.equal(end.body.data.rule.position, 17);
});

test('a collection not saved yet: its fields are given', async () => {
  const fields = [{ name: 'body', type: 'text' }];
  assert.equal((await check({ collection: 'drafts', fields, rule: "body != ''" })).status, 204);
  const bad = await check({ collection: 'drafts', fields, rule: "title != ''" });
  assert.equal(bad.status, 400);
  assert.equal(bad.body.data.rule.position, 0);
  // a saved collection checked against its edited fields
  const edited = await check({ collection: 'posts', fields: [{ name: 'summary', type: 'text' }], rule: "summary = ''" });
  assert.equal(edited.status, 204);
  // invalid draft fields with nothing saved to fall back on
  const invalid = await check({ collection: 'nothing', fields: [{ name: '', type: 'text' }], rule: '' });
  assert.equal(invalid.status, 400);
});

test('bad requests', async () => {
  assert.equal((await check({ collection: 'nope', rule: '' })).status, 404);
  const noRule = await check({ collection: 'posts' });
  assert.equal(noRule.status, 400);
  assert.equal(noRule.body.data.rule.code, 'validation_invalid_value');
  const kind = await check({ collection: 'posts', rule: '', kind: 'frobnicate' });
  assert.equal(kind.status, 400);
  assert.equal(kind.body.data.kind.code, 'validation_invalid_value');
  assert.equal((await check({ rule: '' })).status, 400);
  assert.equal((await su.call('POST', '/api/cruder/check-rule', { raw: '{', headers: { 'content-type': 'application/json' } })).status, 400);
});

test('superusers only', async () => {
  assert.equal((await check({ collection: 'posts', rule: '' }, client(srv))).status, 401);
  const coll = await su.post('/api/collections', { name: 'users', type: 'auth', fields: [] });
  assert.equal(coll.status, 200, JSON.stringify(coll.body));
  // an auth collection as the console edits it: every field, system ones too
  const edit = { collection: 'users', type: 'auth', fields: coll.body.fields, kind: 'manage' };
  assert.equal((await check({ ...edit, rule: "email != '' && verified = true" })).status, 204);
  assert.equal((await check({ ...edit, rule: 'emial = 1' })).body.data.rule.position, 0);
  // _superusers: a system name, checked against its saved fields
  const sus = await su.get('/api/collections/_superusers');
  assert.equal((await check({ collection: '_superusers', type: 'auth', fields: sus.body.fields, rule: "email != ''" })).status, 204);
  const users = await su.post('/api/collections/users/records', {
    email: 'u@example.com', password: 'password123', passwordConfirm: 'password123',
  });
  assert.equal(users.status, 200, JSON.stringify(users.body));
  const login = await client(srv).post('/api/collections/users/auth-with-password', {
    identity: 'u@example.com', password: 'password123',
  });
  assert.equal((await check({ collection: 'posts', rule: '' }, client(srv, login.body.token))).status, 403);
});
