// The first superuser: a fresh `cruder serve` prints a one-time install link
// to stderr; its token creates exactly one superuser, once, and only while
// there is none. Without the token there is no setup path at all.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { client } from './lib/api.mjs';
import { startServer, superuserToken } from './lib/server.mjs';

const LINK = /http:\/\/([^/\s]+)\/_\/#\/install\?token=([A-Za-z0-9_-]+)/;

async function installLink(srv) {
  for (let i = 0; i < 100 && !LINK.test(srv.stderr()); i++) await new Promise((r) => setTimeout(r, 20));
  const m = srv.stderr().match(LINK);
  assert.ok(m, `no install link in stderr:\n${srv.stderr()}`);
  return { host: m[1], token: m[2] };
}

const first = { email: 'first@example.com', password: 'first-pass-123', passwordConfirm: 'first-pass-123' };

test('the install token creates the first superuser once', async () => {
  const srv = await startServer();
  const { host, token } = await installLink(srv);
  assert.equal(host, `127.0.0.1:${srv.port}`);
  assert.equal(token.length, 43);
  const anon = client(srv);
  const withToken = client(srv, token);
  // no token, a wrong token: no setup
  assert.equal((await anon.post('/api/collections/_superusers/records', first)).status, 403);
  const wrong = client(srv, token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A'));
  assert.equal((await wrong.post('/api/collections/_superusers/records', first)).status, 403);
  // the token grants nothing but this one create
  assert.equal((await withToken.get('/api/collections/_superusers/records')).status, 403);
  assert.equal((await withToken.get('/api/collections')).status, 401);
  // a failed attempt hands the token back
  const short = await withToken.post('/api/collections/_superusers/records', { ...first, passwordConfirm: 'nope' });
  assert.equal(short.status, 400);
  const ok = await withToken.post('/api/collections/_superusers/records', first);
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  assert.equal(ok.body.email, first.email);
  assert.equal(ok.body.password, undefined);
  // spent
  const again = await withToken.post('/api/collections/_superusers/records', { ...first, email: 'second@example.com' });
  assert.equal(again.status, 403);
  const login = await anon.post('/api/collections/_superusers/auth-with-password', {
    identity: first.email, password: first.password,
  });
  assert.equal(login.status, 200);
  assert.equal(await srv.stop(), 0);
  // with a superuser stored, no link is printed
  const again2 = await startServer({ dir: srv.dir });
  await new Promise((r) => setTimeout(r, 200));
  assert.doesNotMatch(again2.stderr(), LINK);
  assert.equal(await again2.stop(), 0);
});

test('the token is refused once a superuser exists some other way', async () => {
  const srv = await startServer();
  const { token } = await installLink(srv);
  await superuserToken(srv, 'cli@example.com', 'password123');
  const r = await client(srv, token).post('/api/collections/_superusers/records', first);
  assert.equal(r.status, 400);
  const list = await client(srv, await superuserToken(srv, 'cli@example.com', 'password123'))
    .get('/api/collections/_superusers/records');
  assert.deepEqual(list.body.items.map((u) => u.email), ['cli@example.com']);
  assert.equal(await srv.stop(), 0);
});
