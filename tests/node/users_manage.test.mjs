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

test('manageRule on create: a manager creates a verified user, others cannot set verified', async () => {
  const byBoss = await users.boss.post('/api/collections/users/records', {
    email: 'made-by-boss@example.com', password: 'secret-pass-1', passwordConfirm: 'secret-pass-1', verified: true,
  });
  assert.equal(byBoss.status, 200, JSON.stringify(byBoss.body));
  assert.equal(byBoss.body.verified, true);
  // a manager sees the email of the record it created
  assert.equal(byBoss.body.email, 'made-by-boss@example.com');
  const stored = await su.get(`/api/collections/users/records/${byBoss.body.id}`);
  assert.equal(stored.body.verified, true);

  const byStaff = await users.henry.post('/api/collections/users/records', {
    email: 'made-by-henry@example.com', password: 'secret-pass-1', passwordConfirm: 'secret-pass-1', verified: true,
  });
  assert.equal(byStaff.status, 400, JSON.stringify(byStaff.body));
  assert.equal(byStaff.body.message, 'Failed to create record.');
  assert.deepEqual(Object.keys(byStaff.body.data), ['verified']);
  assert.equal(byStaff.body.data.verified.code, 'validation_values_mismatch');
  // nothing was stored by the refused create
  const none = await su.get(`/api/collections/users/records?filter=${encodeURIComponent('email = "made-by-henry@example.com"')}`);
  assert.equal(none.body.totalItems, 0);

  // without verified, a non-manager creates an unverified user and does not see its hidden email
  const plain = await users.henry.post('/api/collections/users/records', {
    email: 'plain@example.com', password: 'secret-pass-1', passwordConfirm: 'secret-pass-1', verified: false,
  });
  assert.equal(plain.status, 200, JSON.stringify(plain.body));
  assert.equal(plain.body.verified, false);
  assert.equal(plain.body.email, undefined);
  // the boss creating without verified still sees the email: its manageRule admits the new record
  const bossPlain = await users.boss.post('/api/collections/users/records', {
    email: 'boss-plain@example.com', password: 'secret-pass-1', passwordConfirm: 'secret-pass-1',
  });
  assert.equal(bossPlain.status, 200, JSON.stringify(bossPlain.body));
  assert.equal(bossPlain.body.verified, false);
  assert.equal(bossPlain.body.email, 'boss-plain@example.com');
});

test('manageRule on create reads the new record with verified false, as PocketBase does', async () => {
  // a rule that a self-set verified would satisfy must not grant manage access
  const c = await su.post('/api/collections', {
    name: 'members', type: 'auth', createRule: '', viewRule: '',
    manageRule: 'verified = true && @request.auth.id != ""',
    fields: [{ name: 'team', type: 'text' }],
  });
  assert.equal(c.status, 200, JSON.stringify(c.body));
  const r = await users.henry.post('/api/collections/members/records', {
    email: 'm1@example.com', password: 'secret-pass-1', passwordConfirm: 'secret-pass-1', verified: true,
  });
  assert.equal(r.status, 400, JSON.stringify(r.body));
  assert.equal(r.body.data.verified.code, 'validation_values_mismatch');
  // and a rule over the new record's other fields and the body does apply
  const m = await su.patch('/api/collections/members', {
    manageRule: 'team = "red" && @request.body.team:isset = true && @request.auth.role = "boss"',
  });
  assert.equal(m.status, 200, JSON.stringify(m.body));
  const ok = await users.boss.post('/api/collections/members/records', {
    email: 'm2@example.com', password: 'secret-pass-1', passwordConfirm: 'secret-pass-1', verified: true, team: 'red',
  });
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  assert.equal(ok.body.verified, true);
  const other = await users.boss.post('/api/collections/members/records', {
    email: 'm3@example.com', password: 'secret-pass-1', passwordConfirm: 'secret-pass-1', verified: true, team: 'blue',
  });
  assert.equal(other.status, 400);
  const notBoss = await users.henry.post('/api/collections/members/records', {
    email: 'm5@example.com', password: 'secret-pass-1', passwordConfirm: 'secret-pass-1', verified: true, team: 'red',
  });
  assert.equal(notBoss.status, 400);
  // an anonymous caller never manages, whatever the rule says
  await su.patch('/api/collections/members', { manageRule: 'email != ""' });
  const guest = await anon.post('/api/collections/members/records', {
    email: 'm4@example.com', password: 'secret-pass-1', passwordConfirm: 'secret-pass-1', verified: true,
  });
  assert.equal(guest.status, 400);
  assert.equal(guest.body.data.verified.code, 'validation_values_mismatch');
});

test('a create rule refusal stays a plain 400 when verified is asked for', async () => {
  const c = await su.post('/api/collections', {
    name: 'gated', type: 'auth', createRule: '@request.body.code = "open"',
    manageRule: '@request.auth.role = "boss"',
  });
  assert.equal(c.status, 200, JSON.stringify(c.body));
  const body = { email: 'g1@example.com', password: 'secret-pass-1', passwordConfirm: 'secret-pass-1', verified: true };
  const refused = await users.boss.post('/api/collections/gated/records', body);
  assert.equal(refused.status, 400, JSON.stringify(refused.body));
  const ok = await users.boss.post('/api/collections/gated/records', { ...body, code: 'open' });
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  assert.equal(ok.body.verified, true);
});

test('expanded auth records show their email as a direct view would', async () => {
  const usersId = (await su.get('/api/collections/users')).body.id;
  const c = await su.post('/api/collections', {
    name: 'notes', type: 'base', listRule: '', viewRule: '',
    fields: [
      { name: 'text', type: 'text' },
      { name: 'owner', type: 'relation', collectionId: usersId, maxSelect: 1 },
      { name: 'readers', type: 'relation', collectionId: usersId, maxSelect: 5 },
    ],
  });
  assert.equal(c.status, 200, JSON.stringify(c.body));
  const email = async (id) => (await su.get(`/api/collections/users/records/${id}`)).body.email;
  const ivyEmail = await email(ids.ivy);
  const henryEmail = await email(ids.henry);
  const bossEmail = await email(ids.boss);
  const visible = await su.patch(`/api/collections/users/records/${ids.boss}`, { emailVisibility: true });
  assert.equal(visible.status, 200);
  const n = await su.post('/api/collections/notes/records', {
    text: 'hello', owner: ids.ivy, readers: [ids.henry, ids.boss, ids.ivy],
  });
  assert.equal(n.status, 200, JSON.stringify(n.body));
  const path = `/api/collections/notes/records/${n.body.id}?expand=owner,readers`;
  const seen = (r) => ({
    owner: r.body.expand.owner.email ?? null,
    readers: r.body.expand.readers.map((u) => u.email ?? null),
  });

  // the manager (manageRule admits the boss) sees every email, as on a direct view
  const byBoss = await users.boss.get(path);
  assert.equal(byBoss.status, 200);
  assert.deepEqual(seen(byBoss), { owner: ivyEmail, readers: [henryEmail, bossEmail, ivyEmail] });
  // henry sees his own and the visible one only
  const byHenry = await users.henry.get(path);
  assert.deepEqual(seen(byHenry), { owner: null, readers: [henryEmail, bossEmail, null] });
  // superusers see all
  assert.deepEqual(seen(await su.get(path)), { owner: ivyEmail, readers: [henryEmail, bossEmail, ivyEmail] });
  // anonymous: the users view rule needs a signed-in caller, so nothing expands
  const byAnon = await anon.get(path);
  assert.equal(byAnon.status, 200);
  assert.equal(byAnon.body.expand, undefined);
  // a list's items are expanded the same way
  const list = await users.henry.get('/api/collections/notes/records?expand=owner,readers');
  assert.deepEqual(seen({ body: list.body.items[0] }), { owner: null, readers: [henryEmail, bossEmail, null] });
  const bossList = await users.boss.get('/api/collections/notes/records?expand=owner');
  assert.equal(bossList.body.items[0].expand.owner.email, ivyEmail);
  // a back-relation from the user side and a nested path keep the rule
  const back = await users.henry.get(`/api/collections/users/records/${ids.henry}?expand=notes_via_readers.owner`);
  assert.equal(back.status, 200, JSON.stringify(back.body));
  assert.equal(back.body.email, henryEmail);
  assert.equal(back.body.expand.notes_via_readers[0].expand.owner.email, undefined);
  const backBoss = await users.boss.get(`/api/collections/users/records/${ids.henry}?expand=notes_via_readers.owner`);
  assert.equal(backBoss.body.expand.notes_via_readers[0].expand.owner.email, ivyEmail);
  // the password hash and tokenKey never appear in an expand, whoever asks
  const text = JSON.stringify((await su.get(path)).body);
  assert.ok(!text.includes('tokenKey') && !text.includes('"password"'), text);
});
