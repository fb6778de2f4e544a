// scripts/cluster.sh as the README tells a newcomer to use it: a gateway in
// front of three `cruder serve` sharing one data directory, started and
// stopped by the script, on ports of the test's choosing.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { client } from './lib/api.mjs';
import { cruderBin, freePort, superuserToken } from './lib/server.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function portFree(port) {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

// Three consecutive free ports for the upstreams.
async function freeBase() {
  for (;;) {
    const base = 20000 + Math.floor(Math.random() * 40000);
    if ((await portFree(base)) && (await portFree(base + 1)) && (await portFree(base + 2))) return base;
  }
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cruder-cluster-'));
const logs = () =>
  fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.log'))
    .map((f) => `${f}: ${fs.readFileSync(path.join(dir, f), 'utf8').slice(-800)}`)
    .join('\n');
let env;
const script = (cmd) =>
  spawnSync(path.join(root, 'scripts/cluster.sh'), [cmd, dir], { env, encoding: 'utf8', timeout: 30_000 });

after(() => {
  if (env) script('stop');
  fs.rmSync(dir, { recursive: true, force: true });
});

test('cluster.sh starts a caching gateway before three serve processes sharing data, and stops them', async () => {
  const gwPort = await freePort();
  const base = await freeBase();
  env = { ...process.env, CRUDER: cruderBin(), GATEWAY_PORT: String(gwPort), UPSTREAM_BASE_PORT: String(base) };
  const started = script('start');
  assert.equal(started.status, 0, started.stderr);
  const url = `http://127.0.0.1:${gwPort}`;
  const ups = [0, 1, 2].map((i) => `http://127.0.0.1:${base + i}`);
  for (const u of [url, ...ups]) {
    let ok = false;
    for (let i = 0; i < 100 && !ok; i++) {
      ok = await fetch(`${u}/api/health`).then((r) => r.status === 200, () => false);
      if (!ok) await sleep(100);
    }
    assert.ok(ok, `${u} answers /api/health; logs:\n${logs()}`);
  }

  const token = await superuserToken({ dir: path.join(dir, 'data'), url }, 'ops@example.com', 'cluster-pass-123');
  const api = client({ url }, token);
  const made = await api.post('/api/collections', {
    name: 'notes',
    listRule: '',
    viewRule: '',
    fields: [{ name: 'text', type: 'text' }],
  });
  assert.equal(made.status, 200, JSON.stringify(made.body));
  // Every process knows the new collection at once: one that has not seen
  // it yet looks at the store before answering 404 (and each also watches
  // the stored collections' version every 200 ms).
  for (const u of ups) {
    const r = await client({ url: u }, token).get('/api/collections/notes');
    assert.equal(r.status, 200, `${u} knows the new collection`);
  }
  const instant = await client({ url: ups[0] }, token).post('/api/collections', {
    name: 'instant', createRule: '', viewRule: '', fields: [{ name: 'n', type: 'number' }],
  });
  assert.equal(instant.status, 200, JSON.stringify(instant.body));
  for (const u of ups.slice(1)) {
    const r = await client({ url: u }).post('/api/collections/instant/records', { n: 1 });
    assert.equal(r.status, 200, `${u} writes to a collection another process just made: ${JSON.stringify(r.body)}`);
  }
  const rec = await api.post('/api/collections/notes/records', { text: 'shared' });
  assert.equal(rec.status, 200, JSON.stringify(rec.body));
  // Every process reads the same data directory.
  for (const u of ups) {
    const r = await client({ url: u }).get(`/api/collections/notes/records/${rec.body.id}`);
    assert.equal(r.status, 200, `${u}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.text, 'shared');
  }
  // The gateway caches serve's public answers: the second read is a hit.
  const view = `/api/collections/notes/records/${rec.body.id}`;
  await fetch(`${url}${view}`).then((r) => r.arrayBuffer());
  const second = await fetch(`${url}${view}`);
  await second.arrayBuffer();
  assert.match(second.headers.get('cache-status') ?? '', /hit/);
  // A rule tightened through one process binds the others as soon as they
  // have seen it: nobody reads the record anonymously any more.
  const closed = await api.patch('/api/collections/notes', { viewRule: null });
  assert.equal(closed.status, 200, JSON.stringify(closed.body));
  for (const u of ups) {
    let r;
    for (let i = 0; i < 50; i++) {
      r = await client({ url: u }).get(`/api/collections/notes/records/${rec.body.id}`);
      if (r.status === 403) break;
      await sleep(100);
    }
    assert.equal(r.status, 403, `${u} applies the new view rule`);
  }
  // The change went through the gateway, whose answer named the collection's
  // tags: the stored public view went with it.
  const through = await fetch(`${url}${view}`);
  await through.arrayBuffer();
  assert.equal(through.status, 403, through.headers.get('cache-status'));

  const stopped = script('stop');
  assert.equal(stopped.status, 0, stopped.stderr);
  env = undefined;
  for (const port of [gwPort, base, base + 1, base + 2]) {
    let free = false;
    for (let i = 0; i < 100 && !free; i++) {
      free = await portFree(port);
      if (!free) await sleep(100);
    }
    assert.ok(free, `port ${port} is released`);
  }
  assert.deepEqual(fs.readdirSync(dir).filter((f) => f.endsWith('.pid')), []);
});
