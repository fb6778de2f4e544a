// Superuser auth: login, refresh, auth-methods, token revocation on password
// change (through the API at once; from another process within the cache TTL),
// and secrets that never leave the server.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, test } from 'node:test';

import { client } from './lib/api.mjs';
import { cruderBin, startServer, superuserToken } from './lib/server.mjs';

let srv;

before(async () => {
  srv = await startServer();
});
after(async () => {
  assert.equal(await srv.stop(), 0);
});

async function login(email, password) {
  return client(srv).post('/api/collections/_superusers/auth-with-password', { identity: email, password });
}

test('login answers token and record without secrets', async () => {
  await superuserToken(srv, 'root@example.com', 'password123');
  const r = await login('root@example.com', 'password123');
  assert.equal(r.status, 200);
  assert.equal(r.body.record.email, 'root@example.com');
  for (const secret of ['password', 'tokenKey']) assert.equal(r.body.record[secret], undefined);
  const parts = r.body.token.split('.');
  assert.equal(parts.length, 3);
  const claims = JSON.parse(Buffer.from(parts[1], 'base64url'));
  assert.equal(claims.type, 'auth');
  assert.equal(claims.id, r.body.record.id);
  assert.equal(claims.collectionId, r.body.record.collectionId);
  assert.ok(claims.exp > Date.now() / 1000);
});

test('wrong password and unknown email fail alike', async () => {
  const a = await login('root@example.com', 'wrong-password');
  const b = await login('ghost@example.com', 'password123');
  assert.equal(a.status, 400);
  assert.deepEqual(a.body, b.body);
  const blank = await login('', '');
  assert.equal(blank.status, 400);
  assert.equal(blank.body.data.identity.code, 'validation_required');
  assert.equal(blank.body.data.password.code, 'validation_required');
});

test('auth-refresh needs a valid token of that collection', async () => {
  const { token } = (await login('root@example.com', 'password123')).body;
  const ok = await client(srv, token).post('/api/collections/_superusers/auth-refresh', {});
  assert.equal(ok.status, 200);
  assert.ok(ok.body.token);
  const anon = await client(srv).post('/api/collections/_superusers/auth-refresh', {});
  assert.equal(anon.status, 401);
  const bearer = await client(srv, `Bearer ${token}`).get('/api/collections');
  assert.equal(bearer.status, 200, 'the Bearer prefix is accepted');
});

test('auth-methods lists password auth', async () => {
  const r = await client(srv).get('/api/collections/_superusers/auth-methods');
  assert.equal(r.status, 200);
  assert.equal(r.body.password.enabled, true);
  assert.deepEqual(r.body.password.identityFields, ['email']);
  assert.equal((await client(srv).get('/api/collections/nope/auth-methods')).status, 404);
});

test('a tampered or foreign token is anonymous', async () => {
  const { token } = (await login('root@example.com', 'password123')).body;
  const [h, p, sig] = token.split('.');
  const claims = JSON.parse(Buffer.from(p, 'base64url'));
  const forged = `${h}.${Buffer.from(JSON.stringify({ ...claims, exp: claims.exp + 1000 })).toString('base64url')}.${sig}`;
  const none = `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${p}.`;
  const flipped = `${h}.${p}.${sig.slice(0, -2)}${sig.endsWith('AA') ? 'BB' : 'AA'}`;
  for (const t of [forged, none, flipped, 'garbage', `${token}x`]) {
    assert.equal((await client(srv, t).get('/api/collections')).status, 401, t);
  }
});

test('changing the password through the API revokes tokens at once', async () => {
  const first = (await login('root@example.com', 'password123')).body;
  const su = client(srv, first.token);
  assert.equal((await su.get('/api/collections')).status, 200);
  const r = await su.patch(`/api/collections/_superusers/records/${first.record.id}`, {
    password: 'another-password', passwordConfirm: 'another-password',
  });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.password, undefined);
  assert.equal((await su.get('/api/collections')).status, 401);
  assert.equal((await login('root@example.com', 'password123')).status, 400);
  assert.equal((await login('root@example.com', 'another-password')).status, 200);
});

test('password rules: confirmation and minimum length', async () => {
  const { token, record } = (await login('root@example.com', 'another-password')).body;
  const su = client(srv, token);
  const mismatch = await su.patch(`/api/collections/_superusers/records/${record.id}`, {
    password: 'abcdefghijk', passwordConfirm: 'abcdefghijx',
  });
  assert.equal(mismatch.status, 400);
  assert.equal(mismatch.body.data.passwordConfirm.code, 'validation_values_mismatch');
  const short = await su.patch(`/api/collections/_superusers/records/${record.id}`, {
    password: 'abc', passwordConfirm: 'abc',
  });
  assert.equal(short.status, 400);
  assert.ok(short.body.data.password);
});

test('a password changed by another process revokes tokens within a second', async () => {
  const { token } = (await login('root@example.com', 'another-password')).body;
  const su = client(srv, token);
  assert.equal((await su.get('/api/collections')).status, 200);
  const r = spawnSync(cruderBin(), ['superuser', 'upsert', 'root@example.com', 'third-password', '--dir', srv.dir]);
  assert.equal(r.status, 0, String(r.stderr));
  await new Promise((res) => setTimeout(res, 1100));
  assert.equal((await su.get('/api/collections')).status, 401);
});

test('superuser delete removes the account', async () => {
  const r = spawnSync(cruderBin(), ['superuser', 'delete', 'root@example.com', '--dir', srv.dir]);
  assert.equal(r.status, 0, String(r.stderr));
  assert.equal((await login('root@example.com', 'third-password')).status, 400);
  const again = spawnSync(cruderBin(), ['superuser', 'delete', 'root@example.com', '--dir', srv.dir]);
  assert.equal(again.status, 1);
});

test('the collection list never shows token secrets', async () => {
  const token = await superuserToken(srv, 'other@example.com', 'password123');
  const r = await client(srv, token).get('/api/collections/_superusers');
  assert.equal(r.status, 200);
  assert.ok(!JSON.stringify(r.body).includes('"secret"'));
});
