// Seeds the records benchmarks: a superuser, a public collection of ~200-byte
// records with an index on `score`, and 10,000 records. Prints shell exports
// for the wrk scripts: BENCH_TOKEN and BENCH_RECORD_ID.
//
//   node bench/seed.mjs BASE_URL BIN DATA_DIR [COUNT]
import { spawnSync } from 'node:child_process';

const [base, bin, dir, countArg] = process.argv.slice(2);
const count = Number(countArg || 10000);

const su = spawnSync(bin, ['superuser', 'upsert', 'bench@example.com', 'bench-password', '--dir', dir]);
if (su.status !== 0) throw new Error(`superuser upsert: ${su.stderr}`);

async function call(method, path, body, token) {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { 'content-type': 'application/json', ...(token ? { authorization: token } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const json = await res.json();
  if (res.status !== 200) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

const { token } = await call('POST', '/api/collections/_superusers/auth-with-password', {
  identity: 'bench@example.com', password: 'bench-password',
});
await call('POST', '/api/collections', {
  name: 'bench',
  type: 'base',
  listRule: '',
  viewRule: '',
  fields: [
    { name: 'title', type: 'text' },
    { name: 'body', type: 'text' },
    { name: 'score', type: 'number' },
    { name: 'active', type: 'bool' },
  ],
  indexes: ['CREATE INDEX idx_bench_score ON bench (score)'],
}, token);

let next = 0;
let firstId = '';
async function writer() {
  while (next < count) {
    const i = next++;
    const r = await call('POST', '/api/collections/bench/records', {
      title: `record number ${i}`,
      body: 'lorem ipsum dolor sit amet '.repeat(4),
      score: i,
      active: i % 2 === 0,
    }, token);
    if (i === 0) firstId = r.id;
  }
}
await Promise.all(Array.from({ length: 32 }, writer));

// A signed-in user reading their own post through a view rule that names
// @request.auth.id and walks one relation.
await call('POST', '/api/collections', {
  name: 'users', type: 'auth', listRule: '', viewRule: '', createRule: '',
  fields: [{ name: 'name', type: 'text' }],
}, token);
const users = (await call('GET', '/api/collections/users', null, token));
const user = await call('POST', '/api/collections/users/records', {
  email: 'reader@example.com', password: 'reader-password', passwordConfirm: 'reader-password', name: 'reader',
}, token);
await call('POST', '/api/collections', {
  name: 'posts', type: 'base',
  viewRule: 'author.id = @request.auth.id',
  fields: [
    { name: 'title', type: 'text' },
    { name: 'author', type: 'relation', collectionId: users.id, maxSelect: 1 },
  ],
}, token);
const post = await call('POST', '/api/collections/posts/records', {
  title: 'a post of about two hundred bytes '.repeat(5), author: user.id,
}, token);
const { token: userToken } = await call('POST', '/api/collections/users/auth-with-password', {
  identity: 'reader@example.com', password: 'reader-password',
});
console.log(`export BENCH_TOKEN='${token}' BENCH_RECORD_ID='${firstId}' ` +
  `BENCH_USER_TOKEN='${userToken}' BENCH_POST_ID='${post.id}'`);
