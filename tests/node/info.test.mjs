// What the server says about itself: /api/cruder/info for superusers, and the
// build and start-time gauges on /metrics.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { client } from './lib/api.mjs';
import { startServer, superuserToken } from './lib/server.mjs';

let srv;

before(async () => {
  srv = await startServer({ args: ['--partitions', '64'] });
});
after(async () => {
  assert.equal(await srv.stop(), 0);
});

test('info needs a superuser and reports the running server', async () => {
  assert.equal((await client(srv).get('/api/cruder/info')).status, 401);
  const su = client(srv, await superuserToken(srv, 'info@example.com', 'password123'));
  const r = await su.get('/api/cruder/info');
  assert.equal(r.status, 200);
  assert.match(r.body.version, /^\d+\.\d+\.\d+$/);
  assert.equal(r.body.dataDir, srv.dir);
  assert.equal(r.body.partitions, 64);
  assert.equal(r.body.durability, 'full');
  assert.ok(r.body.uptimeSeconds >= 0 && r.body.uptimeSeconds < 60);
  assert.match(r.body.startedAt, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}Z$/);
});

test('metrics carry the version and the start time', async () => {
  const text = await (await fetch(`${srv.url}/metrics`)).text();
  assert.match(text, /^cruder_build_info\{version="\d+\.\d+\.\d+"\} 1$/m);
  const start = Number(text.match(/^process_start_time_seconds (\S+)$/m)[1]);
  assert.ok(Math.abs(start - Date.now() / 1000) < 60);
});
