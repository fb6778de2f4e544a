// Acknowledged writes are durable: kill -9 the server in the middle of many
// concurrent creates, restart it on the same directory, and every record whose
// create was answered 200 must be there.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { client } from './lib/api.mjs';
import { startServer, superuserToken } from './lib/server.mjs';

test('kill -9 during concurrent writes loses no acknowledged record', async () => {
  let srv = await startServer();
  const token = await superuserToken(srv, 'admin@example.com', 'password123');
  let su = client(srv, token);
  const col = await su.post('/api/collections', {
    name: 'events', type: 'base', fields: [{ name: 'n', type: 'number' }],
  });
  assert.equal(col.status, 200, JSON.stringify(col.body));

  const acked = [];
  let stop = false;
  async function writer(w) {
    for (let i = 0; !stop; i++) {
      try {
        const r = await su.post('/api/collections/events/records', { n: w * 1e6 + i });
        if (r.status === 200) acked.push(r.body.id);
      } catch {
        return; // the connection died with the server
      }
    }
  }
  const writers = Array.from({ length: 32 }, (_, w) => writer(w));
  while (acked.length < 300) await new Promise((r) => setTimeout(r, 5));
  await srv.kill9();
  stop = true;
  await Promise.all(writers);
  assert.ok(acked.length >= 300);

  srv = await startServer({ dir: srv.dir });
  su = client(srv, await superuserToken(srv, 'admin@example.com', 'password123'));
  const found = new Set();
  for (let page = 1; ; page++) {
    const r = await su.get(`/api/collections/events/records?perPage=500&page=${page}&fields=id`);
    assert.equal(r.status, 200);
    for (const it of r.body.items) found.add(it.id);
    if (page >= r.body.totalPages) break;
  }
  const missing = acked.filter((id) => !found.has(id));
  assert.deepEqual(missing, [], `${missing.length} of ${acked.length} acknowledged records lost`);
  assert.equal(await srv.stop(), 0);
});
