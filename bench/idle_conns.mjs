// Holds many idle keep-alive connections open on a server and reports what they
// cost: the server's RSS growth per connection (from /proc/PID/status) and the
// latency of a fresh /api/health request while they are held.
//
//   node bench/idle_conns.mjs PORT PID [COUNT=10000]
//
// Each connection sends one GET /api/health and reads its answer before going
// idle, so it is a served keep-alive connection, not just an accepted socket.
import fs from 'node:fs';
import net from 'node:net';

const [port, pid, count = '10000'] = process.argv.slice(2).map(Number);
if (!port || !pid) {
  console.error('usage: node bench/idle_conns.mjs PORT PID [COUNT]');
  process.exit(2);
}
const OPEN_AT_ONCE = 200; // below the listen backlog, so no SYN is dropped and retried
const REQUEST = 'GET /api/health HTTP/1.1\r\nHost: bench\r\n\r\n';

const rssKiB = () => Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function served(sock) {
  return new Promise((resolve, reject) => {
    let got = '';
    const onData = (d) => {
      got += d.toString('latin1');
      if (got.includes('\r\n\r\n')) {
        sock.off('data', onData);
        resolve();
      }
    };
    sock.on('data', onData);
    sock.once('error', reject);
    sock.once('close', () => reject(new Error('closed before answering')));
  });
}

function openOne() {
  const sock = net.connect({ port, host: '127.0.0.1' });
  sock.setNoDelay(true);
  const ready = served(sock);
  sock.write(REQUEST);
  return ready.then(() => sock);
}

async function timedRequest() {
  const t0 = process.hrtime.bigint();
  const sock = await openOne();
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  sock.destroy();
  return ms;
}

const before = rssKiB();
const held = [];
let closedEarly = 0;
for (let i = 0; i < count; i += OPEN_AT_ONCE) {
  const batch = [];
  for (let j = i; j < Math.min(count, i + OPEN_AT_ONCE); j++) batch.push(openOne());
  for (const r of await Promise.allSettled(batch)) {
    if (r.status === 'fulfilled') {
      r.value.on('close', () => closedEarly++);
      r.value.on('error', () => {});
      held.push(r.value);
    }
  }
}
await sleep(500);
const after = rssKiB();

const lat = [];
for (let i = 0; i < 50; i++) lat.push(await timedRequest());
lat.sort((a, b) => a - b);
const stillOpen = held.length - closedEarly;

const perConn = held.length ? ((after - before) * 1024) / held.length : 0;
console.log(
  `idle keep-alive connections: ${stillOpen}/${count} held, RSS ${before} -> ${after} KiB ` +
    `(${perConn.toFixed(0)} bytes/connection)`,
);
console.log(
  `/api/health latency while held: p50 ${lat[24].toFixed(2)} ms, ` +
    `p98 ${lat[48].toFixed(2)} ms, max ${lat[49].toFixed(2)} ms (50 requests, new connection each)`,
);
for (const s of held) s.destroy();
process.exitCode = stillOpen === count ? 0 : 1;
