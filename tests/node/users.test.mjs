// End users in an auth collection: sign-up, login, secrets and email
// visibility, oldPassword, impersonation, throttling and token tampering.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { client } from './lib/api.mjs';
import { startServer, superuserToken } from './lib/server.mjs';

let srv;
let su;
const users = '/api/collections/users';

before(async () => {
  srv = await startServer();
  su = client(srv, await superuserToken(srv, 'root@example.com', 'password123'));
  const r = await su.post('/api/collections', {
    name: 'users',
    type: 'auth',
    listRule: '',
    viewRule: '',
    createRule: '',
    updateRule: '',
    deleteRule: null,
    fields: [{ name: 'name', type: 'text' }],
  });
  assert.equal(r.status, 200, JSON.stringify(r.body));
});
after(async () => {
  assert.equal(await srv.stop(), 0);
});

async function signup(email, extra = {}) {
  const r = await client(srv).post(`${users}/records`, {
    email, password: 'secret-pass-1', passwordConfirm: 'secret-pass-1', ...extra,
  });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body;
}

async function login(identity, password) {
  return client(srv).post(`${users}/auth-with-password`, { identity, password });
}

function noSecrets(record) {
  assert.equal(record.password, undefined);
  assert.equal(record.tokenKey, undefined);
}

test('sign-up and login; password and tokenKey never leave the server', async () => {
  const rec = await signup('alice@example.com', { name: 'Alice' });
  noSecrets(rec);
  assert.equal(rec.email, undefined, 'an anonymous creator does not see a hidden email');
  const auth = await login('alice@example.com', 'secret-pass-1');
  assert.equal(auth.status, 200);
  assert.equal(auth.body.record.id, rec.id);
  assert.equal(auth.body.record.email, 'alice@example.com');
  noSecrets(auth.body.record);
  const list = await client(srv).get(`${users}/records`);
  assert.equal(list.status, 200);
  for (const r of list.body.items) noSecrets(r);
  const filtered = await su.get(`${users}/records?fields=*`);
  for (const r of filtered.body.items) noSecrets(r);
});

test('email is shown to its owner and superusers, to others only with emailVisibility', async () => {
  const bob = await signup('bob@example.com');
  const carol = await signup('carol@example.com', { emailVisibility: true });
  const bobToken = (await login('bob@example.com', 'secret-pass-1')).body.token;
  const asBob = client(srv, bobToken);
  assert.equal((await asBob.get(`${users}/records/${bob.id}`)).body.email, 'bob@example.com');
  assert.equal((await client(srv).get(`${users}/records/${bob.id}`)).body.email, undefined);
  assert.equal((await su.get(`${users}/records/${bob.id}`)).body.email, 'bob@example.com');
  assert.equal((await client(srv).get(`${users}/records/${carol.id}`)).body.email, 'carol@example.com');
  const items = (await asBob.get(`${users}/records?perPage=100`)).body.items;
  const byId = Object.fromEntries(items.map((r) => [r.id, r]));
  assert.equal(byId[bob.id].email, 'bob@example.com');
  assert.equal(byId[carol.id].email, 'carol@example.com');
  const alice = items.find((r) => r.name === 'Alice');
  assert.equal(alice.email, undefined);
  assert.equal(alice.emailVisibility, false);
});

test('wrong password and unknown email fail alike', async () => {
  const a = await login('alice@example.com', 'wrong-password');
  const b = await login('nobody@example.com', 'secret-pass-1');
  assert.equal(a.status, 400);
  assert.equal(b.status, 400);
  assert.deepEqual(a.body, b.body);
});

test('a user changing their password must give the old one', async () => {
  const dave = await signup('dave@example.com');
  const { token } = (await login('dave@example.com', 'secret-pass-1')).body;
  const me = client(srv, token);
  const path = `${users}/records/${dave.id}`;
  const change = { password: 'secret-pass-2', passwordConfirm: 'secret-pass-2' };
  const missing = await me.patch(path, change);
  assert.equal(missing.status, 400);
  assert.equal(missing.body.data.oldPassword.code, 'validation_invalid_old_password');
  const wrong = await me.patch(path, { ...change, oldPassword: 'not-it-at-all' });
  assert.equal(wrong.status, 400);
  assert.equal(wrong.body.data.oldPassword.code, 'validation_invalid_old_password');
  assert.equal((await login('dave@example.com', 'secret-pass-1')).status, 200, 'unchanged');
  const ok = await me.patch(path, { ...change, oldPassword: 'secret-pass-1' });
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  noSecrets(ok.body);
  assert.equal((await me.post(`${users}/auth-refresh`, {})).status, 401, 'old token revoked');
  assert.equal((await login('dave@example.com', 'secret-pass-2')).status, 200);
  const bySu = await su.patch(path, { password: 'secret-pass-3', passwordConfirm: 'secret-pass-3' });
  assert.equal(bySu.status, 200, 'superusers need no oldPassword');
  assert.equal((await login('dave@example.com', 'secret-pass-3')).status, 200);
});

test('impersonate: superusers only, a non-refreshable token of the given duration', async () => {
  const erin = await signup('erin@example.com');
  const path = `${users}/impersonate/${erin.id}`;
  assert.equal((await client(srv).post(path, {})).status, 401);
  const userToken = (await login('erin@example.com', 'secret-pass-1')).body.token;
  assert.equal((await client(srv, userToken).post(path, {})).status, 403);
  const r = await su.post(path, { duration: 3600 });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.record.id, erin.id);
  noSecrets(r.body.record);
  const claims = JSON.parse(Buffer.from(r.body.token.split('.')[1], 'base64url'));
  assert.equal(claims.refreshable, false);
  assert.ok(Math.abs(claims.exp - (Date.now() / 1000 + 3600)) < 30);
  const as = client(srv, r.body.token);
  assert.equal((await as.get(`${users}/records/${erin.id}`)).body.email, 'erin@example.com');
  assert.equal((await as.post(`${users}/auth-refresh`, {})).status, 403);
  assert.equal((await su.post(`${users}/impersonate/missing123456789`, {})).status, 404);
  assert.equal((await su.post(path, { duration: -1 })).status, 400);
});

test('token tampering: the caller is anonymous', async () => {
  const frank = await signup('frank@example.com');
  const { token } = (await login('frank@example.com', 'secret-pass-1')).body;
  const [h, p, sig] = token.split('.');
  const claims = JSON.parse(Buffer.from(p, 'base64url'));
  const enc = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const forged = `${h}.${enc({ ...claims, exp: claims.exp + 1000 })}.${sig}`;
  const none = `${enc({ alg: 'none', typ: 'JWT' })}.${p}.`;
  const flipped = `${h}.${p}.${sig.slice(0, -2)}${sig.endsWith('AA') ? 'BB' : 'AA'}`;
  const superusers = (await su.get('/api/collections/_superusers')).body.id;
  const otherCollection = `${h}.${enc({ ...claims, collectionId: superusers })}.${sig}`;
  const short = await su.post(`${users}/impersonate/${frank.id}`, { duration: 1 });
  await new Promise((res) => setTimeout(res, 2100));
  for (const t of [forged, none, flipped, otherCollection, short.body.token]) {
    const me = client(srv, t);
    assert.equal((await me.get(`${users}/records/${frank.id}`)).body.email, undefined, t);
    assert.equal((await me.post(`${users}/auth-refresh`, {})).status, 401, t);
  }
  assert.equal((await client(srv, token).get(`${users}/records/${frank.id}`)).body.email, 'frank@example.com');
});

test('disabled password auth is refused; auth-methods says so', async () => {
  const c = await su.post('/api/collections', {
    name: 'members', type: 'auth', createRule: '', passwordAuth: { enabled: false },
  });
  assert.equal(c.status, 200, JSON.stringify(c.body));
  const m = await client(srv).get('/api/collections/members/auth-methods');
  assert.equal(m.body.password.enabled, false);
  const r = await client(srv).post('/api/collections/members/auth-with-password', {
    identity: 'x@example.com', password: 'whatever-123',
  });
  assert.equal(r.status, 403);
});

test('failed logins per identity are throttled with 429 and Retry-After', async () => {
  await signup('grace@example.com');
  for (let i = 0; i < 10; i++) assert.equal((await login('grace@example.com', 'bad-password')).status, 400);
  const r = await login('grace@example.com', 'secret-pass-1');
  assert.equal(r.status, 429);
  const wait = Number(r.headers.get('retry-after'));
  assert.ok(wait >= 1 && wait <= 60, String(wait));
  const other = await login('GRACE@example.com', 'bad-password');
  assert.equal(other.status, 429, 'the identity is case-insensitive');
  assert.equal((await login('alice@example.com', 'secret-pass-1')).status, 200, 'others unaffected');
});

test('manageRule: a manager changes a password without oldPassword', async () => {
  const r = await su.patch('/api/collections/users', { manageRule: '@request.auth.name = "boss"' });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const boss = await signup('boss@example.com', { name: 'boss' });
  const henry = await signup('henry@example.com');
  const bossToken = (await login('boss@example.com', 'secret-pass-1')).body.token;
  const henryToken = (await login('henry@example.com', 'secret-pass-1')).body.token;
  const change = { password: 'secret-pass-9', passwordConfirm: 'secret-pass-9' };
  const byHenry = await client(srv, henryToken).patch(`${users}/records/${boss.id}`, change);
  assert.equal(byHenry.status, 400, 'a non-manager still needs oldPassword');
  assert.equal(byHenry.body.data.oldPassword.code, 'validation_invalid_old_password');
  const byBoss = await client(srv, bossToken).patch(`${users}/records/${henry.id}`, change);
  assert.equal(byBoss.status, 200, JSON.stringify(byBoss.body));
  assert.equal((await login('henry@example.com', 'secret-pass-9')).status, 200);
  await su.patch('/api/collections/users', { manageRule: null });
});
