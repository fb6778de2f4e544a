// The official PocketBase JavaScript SDK drives Cruder exactly as it would
// drive PocketBase.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { spawnSync } from 'node:child_process';

import PocketBase, { ClientResponseError } from 'pocketbase';

import { cruderBin, startServer } from './lib/server.mjs';

let srv;
let pb;

before(async () => {
  srv = await startServer();
  const r = spawnSync(cruderBin(), ['superuser', 'upsert', 'sdk@example.com', 'password123', '--dir', srv.dir]);
  assert.equal(r.status, 0, String(r.stderr));
  pb = new PocketBase(srv.url);
  pb.autoCancellation(false);
});
after(async () => {
  assert.equal(await srv.stop(), 0);
});

test('superuser login, refresh and a wrong password', async () => {
  const auth = await pb.collection('_superusers').authWithPassword('sdk@example.com', 'password123');
  assert.ok(auth.token);
  assert.equal(auth.record.email, 'sdk@example.com');
  assert.equal(auth.record.password, undefined);
  assert.equal(auth.record.tokenKey, undefined);
  assert.ok(pb.authStore.isValid);
  assert.ok(pb.authStore.isSuperuser);
  const refreshed = await pb.collection('_superusers').authRefresh();
  assert.ok(refreshed.token);

  const other = new PocketBase(srv.url);
  await assert.rejects(
    other.collection('_superusers').authWithPassword('sdk@example.com', 'wrong-password'),
    (e) => e instanceof ClientResponseError && e.status === 400,
  );
  await assert.rejects(
    other.collection('_superusers').authWithPassword('nobody@example.com', 'password123'),
    (e) => e instanceof ClientResponseError && e.status === 400,
  );
});

test('collections: create, update, delete', async () => {
  const c = await pb.collections.create({
    name: 'notes',
    type: 'base',
    listRule: '',
    viewRule: '',
    fields: [
      { name: 'title', type: 'text', required: true },
      { name: 'score', type: 'number' },
      { name: 'done', type: 'bool' },
      { name: 'created', type: 'autodate', onCreate: true },
    ],
    indexes: ['CREATE INDEX idx_notes_score ON notes (score)'],
  });
  assert.equal(c.name, 'notes');
  const updated = await pb.collections.update('notes', {
    fields: [...c.fields, { name: 'body', type: 'text' }],
  });
  assert.ok(updated.fields.some((f) => f.name === 'body'));
  const tmp = await pb.collections.create({ name: 'scratch', type: 'base', fields: [] });
  await pb.collections.delete(tmp.id);
  await assert.rejects(pb.collections.getOne('scratch'), (e) => e.status === 404);
  const all = await pb.collections.getFullList();
  assert.ok(all.some((x) => x.name === 'notes'));
});

test('records: CRUD, getList, getFullList, getFirstListItem', async () => {
  const notes = pb.collection('notes');
  const created = [];
  for (let i = 0; i < 25; i++) {
    created.push(await notes.create({ title: `note ${String(i).padStart(2, '0')}`, score: i, done: i % 2 === 0 }));
  }
  const one = await notes.getOne(created[3].id);
  assert.equal(one.title, 'note 03');
  assert.equal(one.score, 3);

  const page = await notes.getList(2, 10, { filter: 'score >= 5', sort: '-score', fields: 'id,score' });
  assert.equal(page.page, 2);
  assert.equal(page.perPage, 10);
  assert.equal(page.totalItems, 20);
  assert.equal(page.totalPages, 2);
  assert.deepEqual(page.items.map((r) => r.score), [14, 13, 12, 11, 10, 9, 8, 7, 6, 5]);
  assert.deepEqual(Object.keys(page.items[0]).sort(), ['id', 'score']);

  const skip = await notes.getList(1, 5, { skipTotal: true, sort: 'score' });
  assert.equal(skip.totalItems, -1);
  assert.equal(skip.items.length, 5);

  const full = await notes.getFullList({ batch: 7, filter: 'done = true', sort: 'score' });
  assert.equal(full.length, 13);

  const first = await notes.getFirstListItem('title = "note 07"');
  assert.equal(first.score, 7);
  await assert.rejects(notes.getFirstListItem('title = "missing"'), (e) => e.status === 404);

  const upd = await notes.update(created[0].id, { title: 'renamed' });
  assert.equal(upd.title, 'renamed');
  await notes.delete(created[1].id);
  await assert.rejects(notes.getOne(created[1].id), (e) => e.status === 404);
});

test('ClientResponseError carries validation data', async () => {
  try {
    await pb.collection('notes').create({ score: 'not a number' });
    assert.fail('expected a validation error');
  } catch (e) {
    assert.ok(e instanceof ClientResponseError);
    assert.equal(e.status, 400);
    assert.equal(e.response.data.title.code, 'validation_required');
    assert.ok(e.response.data.score);
  }
});
