// The API rules matrix, driven by the PocketBase JS SDK: for each rule kind
// (null = superusers only, "" = everyone, an expression over the caller) and
// each caller (anonymous, the owner, another user, a superuser), the exact
// outcome of list, view, create, update and delete, as PocketBase answers.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import PocketBase from 'pocketbase';

import { startServer, superuserToken } from './lib/server.mjs';

let srv;
let su;
const callers = {};
const ids = {};

const OWNER_RULE = 'owner = @request.auth.id';

function sdk(token) {
  const pb = new PocketBase(srv.url);
  pb.autoCancellation(false);
  if (token) pb.authStore.save(token, null);
  return pb;
}

// Resolves to the HTTP status (and body) a call ends with.
async function outcome(promise) {
  try {
    const body = await promise;
    return { status: body === true ? 204 : 200, body };
  } catch (e) {
    return { status: e.status, body: e.response };
  }
}

before(async () => {
  srv = await startServer();
  su = sdk(await superuserToken(srv, 'root@example.com', 'password123'));
  await su.collections.create({
    name: 'users', type: 'auth', createRule: '', viewRule: '', listRule: '',
  });
  for (const name of ['owner', 'other']) {
    const email = `${name}@example.com`;
    const rec = await su.collection('users').create({
      email, password: 'secret-pass-1', passwordConfirm: 'secret-pass-1',
    });
    ids[name] = rec.id;
    const pb = sdk();
    await pb.collection('users').authWithPassword(email, 'secret-pass-1');
    callers[name] = pb;
  }
  callers.anonymous = sdk();
  callers.superuser = su;
  const rules = { null: null, everyone: '', owner: OWNER_RULE };
  const usersId = (await su.collections.getOne('users')).id;
  for (const [kind, rule] of Object.entries(rules)) {
    await su.collections.create({
      name: `posts_${kind}`,
      type: 'base',
      listRule: rule, viewRule: rule, createRule: rule, updateRule: rule, deleteRule: rule,
      fields: [
        { name: 'title', type: 'text' },
        { name: 'owner', type: 'relation', collectionId: usersId, maxSelect: 1 },
      ],
    });
  }
});
after(async () => {
  assert.equal(await srv.stop(), 0);
});

// A fresh record owned by `owner`, made by a superuser.
async function seed(coll, title = 'seed') {
  return su.collection(coll).create({ title, owner: ids.owner });
}

const CALLERS = ['anonymous', 'owner', 'other', 'superuser'];

// Expected statuses per kind, op and caller, as PocketBase's record_crud.go.
const EXPECT = {
  null: {
    list: [403, 403, 403, 200], view: [403, 403, 403, 200], create: [403, 403, 403, 200],
    update: [403, 403, 403, 200], delete: [403, 403, 403, 204],
  },
  everyone: {
    list: [200, 200, 200, 200], view: [200, 200, 200, 200], create: [200, 200, 200, 200],
    update: [200, 200, 200, 200], delete: [204, 204, 204, 204],
  },
  owner: {
    list: [200, 200, 200, 200], view: [404, 200, 404, 200], create: [400, 200, 400, 200],
    update: [404, 200, 404, 200], delete: [404, 204, 404, 204],
  },
};

for (const kind of Object.keys(EXPECT)) {
  const coll = `posts_${kind}`;
  for (const op of ['list', 'view', 'create', 'update', 'delete']) {
    test(`${kind} rule: ${op}`, async () => {
      const rec = await seed(coll, `${op} target`);
      for (const [i, who] of CALLERS.entries()) {
        const c = callers[who].collection(coll);
        const want = EXPECT[kind][op][i];
        let r;
        if (op === 'list') r = await outcome(c.getList(1, 200, { filter: `id = "${rec.id}"` }));
        else if (op === 'view') r = await outcome(c.getOne(rec.id));
        else if (op === 'create') r = await outcome(c.create({ title: `by ${who}`, owner: ids.owner }));
        else if (op === 'update') r = await outcome(c.update(rec.id, { title: `by ${who}` }));
        else {
          const victim = await seed(coll, `delete by ${who}`);
          r = await outcome(c.delete(victim.id));
          const still = await outcome(su.collection(coll).getOne(victim.id));
          assert.equal(still.status, want === 204 ? 404 : 200, `${who}: deleted only when allowed`);
        }
        assert.equal(r.status, want, `${kind} ${op} as ${who}: ${JSON.stringify(r.body)}`);
        if (r.status === 403) assert.equal(r.body.message, 'Only superusers can perform this action.');
        if (op === 'list' && want === 200) {
          // A list rule filters rows, never refuses: others see an empty page.
          const seen = kind !== 'owner' || who === 'owner' || who === 'superuser';
          assert.deepEqual(r.body.items.map((x) => x.id), seen ? [rec.id] : [], `${kind} list as ${who}`);
        }
        if (op === 'update' && want === 200) assert.equal(r.body.title, `by ${who}`);
        if (op === 'update' && want !== 200) {
          const stored = await su.collection(coll).getOne(rec.id);
          assert.notEqual(stored.title, `by ${who}`, `${who}: refused update changed nothing`);
        }
      }
    });
  }
}

test('owner rule: a user cannot create a record owned by someone else', async () => {
  const r = await outcome(callers.other.collection('posts_owner').create({ title: 'x', owner: ids.owner }));
  assert.equal(r.status, 400);
  const list = await su.collection('posts_owner').getFullList({ filter: 'title = "x"' });
  assert.equal(list.length, 0, 'nothing was stored');
  const own = await outcome(callers.other.collection('posts_owner').create({ title: 'y', owner: ids.other }));
  assert.equal(own.status, 200);
});

test('a list filter cannot widen a list rule', async () => {
  await seed('posts_owner', 'private');
  const r = await callers.other.collection('posts_owner').getList(1, 50, { filter: 'title = "private" || id != ""' });
  assert.ok(r.items.length >= 1, 'other still sees their own records');
  assert.equal(r.totalItems, r.items.length);
  for (const x of r.items) assert.equal(x.owner, ids.other);
  const anon = await callers.anonymous.collection('posts_owner').getList(1, 50, { filter: 'id != ""' });
  assert.equal(anon.totalItems, 0);
  assert.deepEqual(anon.items, []);
});

test('null rules refuse even a valid user token; an invalid token is anonymous', async () => {
  const r = await outcome(callers.owner.collection('posts_null').getList(1, 1));
  assert.equal(r.status, 403);
  const bad = sdk('not.a.token');
  const e = await outcome(bad.collection('posts_everyone').getList(1, 1));
  assert.equal(e.status, 200, 'PocketBase treats a bad token as anonymous here');
});

test('relation +/- modifiers on update reach validation unchanged', async () => {
  const usersId = (await su.collections.getOne('users')).id;
  await su.collections.create({
    name: 'teams', type: 'base', updateRule: '', viewRule: '',
    fields: [{ name: 'members', type: 'relation', collectionId: usersId, maxSelect: 5 }],
  });
  const team = await su.collection('teams').create({ members: [ids.owner] });
  const added = await callers.anonymous.collection('teams').update(team.id, { 'members+': ids.other });
  assert.deepEqual(added.members, [ids.owner, ids.other]);
  const removed = await callers.anonymous.collection('teams').update(team.id, { 'members-': ids.owner });
  assert.deepEqual(removed.members, [ids.other]);
});

test('a rule that does not compile against the schema is refused on save, on its key', async () => {
  const bad = await outcome(su.collections.create({
    name: 'bad_rules', type: 'base', listRule: 'nope = 1', viewRule: 'title.x = 1',
    fields: [{ name: 'title', type: 'text' }],
  }));
  assert.equal(bad.status, 400);
  assert.equal(bad.body.data.listRule.code, 'validation_invalid_rule');
  assert.match(bad.body.data.listRule.message, /unknown field "nope"/);
  const created = await su.collections.create({
    name: 'good_rules', type: 'base', listRule: 'title != "" && @collection.users.id ?= @request.auth.id',
    fields: [{ name: 'title', type: 'text' }],
  });
  const patch = await outcome(su.collections.update(created.id, { viewRule: 'posts_owner_via_owner.title = 1' }));
  assert.equal(patch.status, 400);
  assert.equal(patch.body.data.viewRule.code, 'validation_invalid_rule');
  // the collection kept its old rules
  assert.equal((await su.collections.getOne('good_rules')).viewRule, null);
});

test('multi-valued paths: any-of needs one editor, a plain operator needs them all', async () => {
  const usersId = (await su.collections.getOne('users')).id;
  await su.collections.create({
    name: 'docs', type: 'base',
    listRule: 'editors.id ?= @request.auth.id', viewRule: 'editors.email = "owner@example.com"',
    fields: [
      { name: 'title', type: 'text' },
      { name: 'editors', type: 'relation', collectionId: usersId, maxSelect: 5 },
    ],
  });
  const both = await su.collection('docs').create({ title: 'both', editors: [ids.owner, ids.other] });
  const mine = await su.collection('docs').create({ title: 'mine', editors: [ids.owner] });
  const listed = await callers.other.collection('docs').getFullList();
  assert.deepEqual(listed.map((r) => r.title), ['both']);
  assert.equal((await outcome(callers.other.collection('docs').getOne(mine.id))).status, 200);
  assert.equal((await outcome(callers.other.collection('docs').getOne(both.id))).status, 404);
});
