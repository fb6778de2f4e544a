// manageRule on auth collections, as PocketBase: a manager may change another
// user's email, password (without oldPassword) and verified, and sees their
// hidden email; nobody else may change email or verified.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { client } from './lib/api.mjs';
import { startServer, superuserToken } from './lib/server.mjs';

let srv;
let su;
let anon;
const ids = {};
const users = {};

async function login(email, password) {
  const r = await anon.post('/api/collections/users/auth-with-password', { identity: email, password });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return client(srv, r.body.token);
}

before(async () => {
  srv = await startServer();
  su = client(srv, await superuserToken(srv, 'root@example.com', 'password123'));
  anon = client(srv);
  const c = await su.post('/api/collections', {
    name: 'users', type: 'auth',
    listRule: '@request.auth.id != ""', viewRule: '@request.auth.id != ""',
    updateRule: 'id = @request.auth.id || @request.auth.role = "boss"',
    createRule: '',
    manageRule: '@request.auth.role = "boss"',
    fields: [{ name: 'role', type: 'text' }],
  });
  assert.equal(c.status, 200, JSON.stringify(c.body));
  for (const name of ['boss', 'henry', 'ivy']) {
    const r = await su.post('/api/collections/users/records', {
      email: `${name}@example.com`, password: 'secret-pass-1', passwordConfirm: 'secret-pass-1',
      role: name === 'boss' ? 'boss' : 'staff',
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    ids[name] = r.body.id;
    users[name] = await login(`${name}@example.com`, 'secret-pass-1');
  }
});

after(async () => {
  assert.equal(await srv.stop(), 0);
});

test('a manager sees hidden emails in view and list; others do not', async () => {
  const v = await users.boss.get(`/api/collections/users/records/${ids.ivy}`);
  assert.equal(v.status, 200);
  assert.equal(v.body.email, 'ivy@example.com');
  const l = await users.boss.get('/api/collections/users/records?sort=email');
  assert.deepEqual(l.body.items.map((u) => u.email), ['boss@example.com', 'henry@example.com', 'ivy@example.com']);
  const h = await users.henry.get(`/api/collections/users/records/${ids.ivy}`);
  assert.equal(h.status, 200);
  assert.equal(h.body.email, undefined);
  const hl = await users.henry.get('/api/collections/users/records?sort=email');
  assert.deepEqual(hl.body.items.map((u) => u.email ?? null), [null, 'henry@example.com', null]);
});

test('a non-manager may not change email or verified, even their own', async () => {
  const e = await users.henry.patch(`/api/collections/users/records/${ids.henry}`, { email: 'h2@example.com' });
  assert.equal(e.status, 400);
  assert.equal(e.body.data.email.code, 'validation_values_mismatch');
  const vr = await users.henry.patch(`/api/collections/users/records/${ids.henry}`, { verified: true });
  assert.equal(vr.status, 400);
  assert.equal(vr.body.data.verified.code, 'validation_values_mismatch');
  // the same values are no change
  const same = await users.henry.patch(`/api/collections/users/records/${ids.henry}`, {
    email: 'henry@example.com', verified: false, role: 'staff2',
  });
  assert.equal(same.status, 200, JSON.stringify(same.body));
  assert.equal(same.body.role, 'staff2');
  const got = await su.get(`/api/collections/users/records/${ids.henry}`);
  assert.equal(got.body.email, 'henry@example.com');
  assert.equal(got.body.verified, false);
  // a guest signing up cannot mark itself verified
  const signup = await anon.post('/api/collections/users/records', {
    email: 'new@example.com', password: 'secret-pass-1', passwordConfirm: 'secret-pass-1', verified: true,
  });
  assert.equal(signup.status, 400);
  assert.equal(signup.body.data.verified.code, 'validation_values_mismatch');
});

test('a manager changes email, verified and password of another user without oldPassword', async () => {
  const r = await users.boss.patch(`/api/collections/users/records/${ids.ivy}`, {
    email: 'ivy2@example.com', verified: true, password: 'new-secret-2', passwordConfirm: 'new-secret-2',
  });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.email, 'ivy2@example.com');
  assert.equal(r.body.verified, true);
  assert.equal(r.body.password, undefined);
  await login('ivy2@example.com', 'new-secret-2');
  // ivy's old token was revoked with the password change
  const old = await users.ivy.get(`/api/collections/users/records/${ids.ivy}`);
  assert.equal(old.status, 404);
});

test('superusers change email and verified freely', async () => {
  const r = await su.patch(`/api/collections/users/records/${ids.henry}`, { verified: true, email: 'henry3@example.com' });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.verified, true);
  assert.equal(r.body.email, 'henry3@example.com');
});
