// Faults under load (issue 6, "Faults and bad input"): a gateway in front of
// three `cruder serve` processes, each on its own data directory, while wrk
// (tests/node/lib/wrk_mixed.lua) mixes GETs of a record with POSTs creating
// records, and one upstream is killed (-9) and restarted on its port and
// directory, then another is stopped (SIGSTOP, a gray failure) and continued.
// Active health checks are off: every ejection is the passive checks' doing.
//
// What is provable about the POSTs: each carries its own record id, so the
// upstreams' records tell afterwards where each one landed. A POST that failed
// must have been on the wire while its upstream died or stood still (started
// before its sockets closed or it was continued, ended after the signal), must
// not exist on any other upstream, and there can be no more of them than
// requests that can be in flight on it; each acknowledged one exists on
// exactly one upstream. A GET never fails: it is retried elsewhere.
//
// "Gets traffic again" is read as: answers at least a tenth of the requests
// of a one-second round (a fair share is a third) within five rounds.
//
// Bounds are counts and generous windows, so that they hold under ASan on a
// loaded 2-core box; wrk runs for fixed seconds, the whole file in 25 to 40.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startGateway } from './lib/gateway.mjs';
import { cruderBin, startServer, superuserToken } from './lib/server.mjs';

const WRK = process.env.WRK || 'wrk';
const WRK_SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), 'lib', 'wrk_mixed.lua');
// wrk runs a thread per connection (see wrk_mixed.lua), each with one request
// at a time: no more than CONNS requests can be in flight at any instant.
const CONNS = 4;
const POST_EVERY = 3;
const FIRST_BYTE_MS = 1500;
const EJECT_MS = 500;
const EJECT_MAX_MS = 2000;
const SEED = 'seedrecord00001';
const RECORDS = '/api/collections/notes/records';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// wrk runs and the restarted upstream: killed with the test process, whatever
// way it ends (startServer and startGateway see to their own).
const children = new Set();
process.on('exit', () => {
  for (const proc of children) {
    try {
      proc.kill('SIGKILL');
    } catch {
      // gone
    }
  }
});

let tmp;

/**
 * Runs wrk against url for `seconds` with ids starting with `prefix` and
 * resolves to its log: [{method, id, start, end (ms, wall clock), status}],
 * status 0 for a socket error. Rejects if wrk fails.
 */
function runWrk(url, seconds, prefix) {
  const out = path.join(tmp, `wrk-${prefix}.log`);
  const proc = spawn(
    WRK,
    ['-t', `${CONNS}`, '-c', `${CONNS}`, '-d', `${seconds}s`, '--timeout', '30s', '-s', WRK_SCRIPT, url],
    {
      env: {
        ...process.env,
        WRK_GET_PATH: `${RECORDS}/${SEED}`,
        WRK_POST_PATH: RECORDS,
        WRK_POST_EVERY: `${POST_EVERY}`,
        WRK_ID_PREFIX: prefix,
        WRK_OUT: out,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  children.add(proc);
  let text = '';
  proc.stdout.setEncoding('utf8').on('data', (d) => (text += d));
  proc.stderr.setEncoding('utf8').on('data', (d) => (text += d));
  return new Promise((resolve, reject) => {
    proc.on('error', (e) => reject(new Error(`cannot run ${WRK}: ${e.message}`)));
    proc.on('close', (code) => {
      children.delete(proc);
      if (code !== 0 || !fs.existsSync(out)) {
        reject(new Error(`wrk exited with ${code}:\n${text}`));
        return;
      }
      const log = fs
        .readFileSync(out, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((line) => {
          const [method, id, start, end, status] = line.split(' ');
          return { method, id, start: Number(start) / 1000, end: Number(end) / 1000, status: Number(status) };
        });
      resolve(log);
    });
  });
}

/** `cruder serve` on a given port and data directory (a restart). */
async function serveOn(port, dir) {
  const proc = spawn(
    cruderBin(),
    ['serve', '--http', `127.0.0.1:${port}`, '--dir', dir, '--access-log=false'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  children.add(proc);
  let errText = '';
  proc.stderr.setEncoding('utf8').on('data', (d) => (errText += d));
  let exited = null;
  const closed = new Promise((resolve) => {
    proc.on('close', (code, signal) => {
      children.delete(proc);
      exited = code ?? 128 + os.constants.signals[signal];
      resolve(exited);
    });
  });
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (exited !== null) throw new Error(`restarted cruder exited with ${exited}:\n${errText}`);
    try {
      const r = await fetch(`http://127.0.0.1:${port}/api/health`, { signal: AbortSignal.timeout(1000) });
      await r.arrayBuffer();
      if (r.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`restarted cruder did not answer within 10 s:\n${errText}`);
    await sleep(20);
  }
  const stop = async () => {
    if (exited === null) proc.kill('SIGTERM');
    return closed;
  };
  return { proc, stderr: () => errText, stop };
}

/**
 * Resolves to the time (ms) by which port refused a connection: probed
 * back to back, so this is within about a millisecond of the listener's
 * closing; a killed process's sockets all close together as it exits.
 */
async function refusedAt(port) {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const refused = await new Promise((resolve) => {
      const s = net.connect({ port, host: '127.0.0.1' }, () => {
        s.destroy();
        resolve(false);
      });
      s.on('error', (e) => resolve(e.code === 'ECONNREFUSED'));
    });
    if (refused) return Date.now() + 1;
    assert.ok(Date.now() < deadline, `port ${port} still accepts connections`);
  }
}

async function api(url, method, p, body, token) {
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = token;
  const r = await fetch(`${url}${p}`, { method, headers, body: body && JSON.stringify(body) });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}

/** Every record id on the upstream at url. */
async function recordIds(url) {
  const ids = new Set();
  for (let page = 1; ; page++) {
    const r = await api(url, 'GET', `${RECORDS}?perPage=500&page=${page}&sort=id&fields=id&skipTotal=1`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    for (const it of r.body.items) ids.add(it.id);
    if (r.body.items.length < 500) return ids;
  }
}

const escapeRe = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** A per-target counter from a /metrics text (labels after target=, e.g. ',class="2xx"'). */
function metric(text, name, target, labels = '') {
  const series = `cruder_gateway_upstream_${name}{upstream="api",target="${target}"${labels}}`;
  const re = new RegExp(`^${escapeRe(series)} (\\d+)$`, 'm');
  const m = re.exec(text);
  assert.ok(m, `no ${name}${labels} for ${target} in /metrics`);
  return Number(m[1]);
}

const p99 = (reqs) => {
  const s = reqs.map((r) => r.end - r.start).sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor(s.length * 0.99))] : NaN;
};

const show = (reqs) => JSON.stringify(reqs.slice(0, 8));

describe('gateway faults under wrk load with three cruder serve upstreams', { timeout: 120_000 }, () => {
  let ups;
  let gw;
  let restarted;
  let stopped = null;
  const targetOf = (srv) => `127.0.0.1:${srv.port}`;
  const metrics = async () => (await fetch(`${gw.url}/metrics`)).text();
  // Sum of 2xx over all targets: the load is running once it moves.
  const ok2xx = (text, target) => metric(text, 'requests_total', target, ',class="2xx"');
  const answered = (text) => ups.reduce((n, u) => n + ok2xx(text, targetOf(u)), 0);
  // Loads in rounds of a second until target answers a tenth of a round's
  // requests (a fair share is a third), for at most 5 rounds: a target back
  // in health takes its share at its next trial, within EJECT_MAX_MS.
  // Resolves to {ok, log, shares: ['answered/total' per round]}.
  const untilServing = async (target, prefix) => {
    const log = [];
    const shares = [];
    for (let round = 0; round < 5; round++) {
      const m0 = await metrics();
      log.push(...(await runWrk(gw.url, 1, `${prefix}${round}`)));
      const m1 = await metrics();
      const mine = ok2xx(m1, target) - ok2xx(m0, target);
      const all = answered(m1) - answered(m0);
      shares.push(`${mine}/${all}`);
      if (all > 0 && mine * 10 >= all) return { ok: true, log, shares };
    }
    return { ok: false, log, shares };
  };
  const waitForLoad = async (since) => {
    for (let i = 0; i < 100 && answered(await metrics()) < since + 100; i++) await sleep(50);
  };

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cruder-gwf-'));
    ups = [];
    for (let i = 0; i < 3; i++) {
      const srv = await startServer();
      const token = await superuserToken(srv, 'root@example.com', 'password123');
      const notes = {
        name: 'notes',
        type: 'base',
        listRule: '',
        viewRule: '',
        createRule: '',
        fields: [{ name: 'body', type: 'text' }],
      };
      const c = await api(srv.url, 'POST', '/api/collections', notes, token);
      assert.equal(c.status, 200, JSON.stringify(c.body));
      const seed = await api(srv.url, 'POST', RECORDS, { id: SEED, body: 'every upstream has it' });
      assert.equal(seed.status, 200, JSON.stringify(seed.body));
      ups.push(srv);
    }
    gw = await startGateway({
      upstreams: { api: ups.map(targetOf) },
      routes: [['/', 'api']],
      settings: {
        health_interval_ms: 0,
        connect_timeout_ms: 1000,
        first_byte_timeout_ms: FIRST_BYTE_MS,
        eject_ms: EJECT_MS,
        eject_max_ms: EJECT_MAX_MS,
        // One usable target of three must not mean panic, should the killed
        // one still be out when another is stopped.
        panic_percent: 30,
      },
    });
  });

  after(async () => {
    if (stopped) stopped.proc.kill('SIGCONT');
    const codes = { gateway: await gw?.stop() };
    // ups[2] died by SIGKILL; `restarted` took its place.
    for (const [i, u] of (ups ?? []).entries()) if (i !== 2) codes[`upstream ${i}`] = await u.stop();
    if (restarted) codes.restarted = await restarted.stop();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    for (const [who, code] of Object.entries(codes)) assert.equal(code, 0, `${who} exited with ${code}`);
    assert.doesNotMatch(restarted?.stderr() ?? '', /==\d+==ERROR: \w+Sanitizer|runtime error: /);
  });

  let killRun; // the kill test's log, reconciled once the killed upstream is back

  test('kill -9 of one upstream: no GET fails, a POST fails only if it was in flight on it', async (t) => {
    const victim = ups[2];
    const target = targetOf(victim);
    const m0 = await metrics();
    const run = runWrk(gw.url, 6, 'ka');
    await waitForLoad(answered(m0));
    const k0 = Date.now();
    victim.proc.kill('SIGKILL');
    const k1 = await refusedAt(victim.port); // its sockets are closed by then
    await victim.kill9();
    const log = await run;
    killRun = log;
    const m1 = await metrics();

    const gets = log.filter((r) => r.method === 'GET');
    const posts = log.filter((r) => r.method === 'POST');
    assert.ok(gets.length > 100 && posts.length > 50, `${gets.length} GETs, ${posts.length} POSTs`);
    const afterKill = log.filter((r) => r.start > k1 && r.status === 200);
    const afterPosts = afterKill.filter((r) => r.method === 'POST').length;
    assert.ok(
      afterKill.length - afterPosts >= 20 && afterPosts >= 10,
      `too little load after the kill: ${afterKill.length} answered`,
    );

    const failedGets = gets.filter((r) => r.status !== 200);
    assert.deepEqual(failedGets, [], `GETs failed (status 0: socket error): ${show(failedGets)}`);

    const failed = posts.filter((r) => r.status !== 200);
    t.diagnostic(
      `${gets.length} GETs, ${posts.length} POSTs, ${failed.length} failed: ${show(failed)}; ` +
        `killed at ${k0}, sockets closed by ${k1}`,
    );
    // A killed process's sockets stay open while the kernel tears it down
    // (tens of ms for an ASan build): a POST the gateway hands them then is
    // as lost as one it was processing, and the gateway cannot tell the two
    // apart. So: every failed POST began before the sockets closed and ended
    // after the kill, answered 502 (or cut, if its answer had begun).
    const notInFlight = failed.filter((r) => !(r.start < k1 && r.end > k0) || ![0, 502].includes(r.status));
    assert.deepEqual(
      notInFlight,
      [],
      `POSTs failed that were not on the wire while the upstream died (killed at ${k0}, sockets closed by ${k1})`,
    );
    const survivors = new Set([...(await recordIds(ups[0].url)), ...(await recordIds(ups[1].url))]);
    const elsewhere = failed.filter((r) => survivors.has(r.id));
    assert.deepEqual(elsewhere, [], 'failed POSTs whose record a surviving upstream created');

    // New connections to it were refused: the passive checks ejected it.
    assert.ok(metric(m1, 'ejections_total', target) > metric(m0, 'ejections_total', target));
  });

  test('the killed upstream restarted on its port and data gets traffic again', async (t) => {
    const victim = ups[2];
    const target = targetOf(victim);
    restarted = await serveOn(victim.port, victim.dir);
    const back = await untilServing(target, 'r');
    t.diagnostic(`its answers of the total, per round: ${back.shares.join(' ')}`);
    assert.ok(back.ok, `the restarted upstream took no share of the load: ${back.shares.join(' ')}`);
    const failed = back.log.filter((r) => r.status !== 200);
    assert.deepEqual(failed, [], `requests failed with every upstream up: ${show(failed)}`);
    const onIt = await recordIds(victim.url);
    assert.ok(
      back.log.some((r) => r.method === 'POST' && onIt.has(r.id)),
      'no POST of these rounds created its record on the restarted upstream',
    );

    // The kill test's POSTs, now that every upstream can be asked: each one
    // acknowledged exists on exactly one upstream, none that failed on a
    // survivor (checked above) nor twice.
    if (!killRun) return;
    const sets = [await recordIds(ups[0].url), await recordIds(ups[1].url), onIt];
    const where = (id) => sets.filter((s) => s.has(id)).length;
    const acked = killRun.filter((r) => r.method === 'POST' && r.status === 200);
    const lost = acked.filter((r) => where(r.id) !== 1);
    assert.deepEqual(lost, [], 'acknowledged POSTs not on exactly one upstream');
    const failed2 = killRun.filter((r) => r.method === 'POST' && r.status !== 200);
    t.diagnostic(
      `${acked.length} acknowledged POSTs of the kill test found; of the failed ones ${
        failed2.filter((r) => onIt.has(r.id)).length
      } of ${failed2.length} were created by the killed upstream before it died`,
    );
    const twice = failed2.filter((r) => where(r.id) > 1);
    assert.deepEqual(twice, [], 'failed POSTs created on more than one upstream');
  });

  test('SIGSTOP of one: the passive checks eject it and p99 recovers', async (t) => {
    const victim = ups[0];
    const target = targetOf(victim);
    const m0 = await metrics();
    const run = runWrk(gw.url, 13, 'st');
    await waitForLoad(answered(m0));
    const s0 = Date.now();
    victim.proc.kill('SIGSTOP');
    stopped = victim;
    await sleep(7000);
    // A gray failure ends with the requests it held answered late: continue
    // it once a trial request (the only request it can have by now) has
    // waited on it for two thirds of the first-byte timeout. The trial comes
    // within a back-off.
    let m1 = await metrics();
    for (let i = 0; i < 250 && metric(m1, 'in_flight', target) === 0; i++) {
      await sleep(20);
      m1 = await metrics();
    }
    await sleep((FIRST_BYTE_MS * 2) / 3);
    const c0 = Date.now();
    victim.proc.kill('SIGCONT');
    stopped = null;
    const log = await run;
    const m2 = await metrics();

    assert.ok(
      metric(m1, 'ejections_total', target) > metric(m0, 'ejections_total', target),
      'the stopped upstream was not ejected while stopped',
    );
    const ejections = metric(m2, 'ejections_total', target) - metric(m0, 'ejections_total', target);

    // Requests that hit it wait FIRST_BYTE_MS; once it is ejected only the
    // trial requests after each back-off do, one at a time. From 3 s on the
    // ejection holds (the requests sent to it before have timed out by then).
    const baseline = log.filter((r) => r.start < s0);
    const late = log.filter((r) => r.start >= s0 + 3000 && r.start < c0);
    const perSecond = [];
    for (let at = s0; at < c0; at += 1000) {
      perSecond.push(p99(log.filter((r) => r.start >= at && r.start < at + 1000)));
    }
    const detail = `p99 baseline ${p99(baseline).toFixed(1)} ms; per second after SIGSTOP ${perSecond
      .map((x) => x.toFixed(0))
      .join(' ')} ms; ${late.length} requests from 3 s on`;
    const failed = log.filter((r) => r.method === 'POST' && r.status !== 200);
    t.diagnostic(`${detail}; ${ejections} ejections; ${failed.length} POSTs failed: ${show(failed)}`);
    assert.ok(late.length >= 200, `too little load to measure a p99: ${detail}`);
    assert.ok(p99(late) < FIRST_BYTE_MS / 2, detail);

    // GETs that timed out on it were retried elsewhere.
    const failedGets = log.filter((r) => r.method === 'GET' && r.status !== 200);
    assert.deepEqual(failedGets, [], `GETs failed: ${show(failedGets)}`);
    // A POST may fail only by timing out on it: a 504 after waiting the
    // first-byte timeout, while it was stopped. One per connection stuck on
    // it before the ejection, then one per failed trial (each re-ejects).
    const odd = failed.filter(
      (r) => r.status !== 504 || r.end - r.start < FIRST_BYTE_MS * 0.9 || r.start >= c0 || r.end <= s0,
    );
    assert.deepEqual(odd, [], 'POSTs failed otherwise than by waiting on the stopped upstream');
    assert.ok(failed.length <= CONNS + ejections, `${failed.length} POSTs failed, ${ejections} ejections`);
    const others = new Set([...(await recordIds(ups[1].url)), ...(await recordIds(ups[2].url))]);
    assert.deepEqual(
      failed.filter((r) => others.has(r.id)),
      [],
      'failed POSTs whose record another upstream created',
    );
  });

  test('the stopped upstream, continued, gets traffic again', async (t) => {
    // It was continued with a trial request waiting on it, which it then
    // answered about a second late: that says nothing of it since.
    assert.equal(stopped, null, 'the SIGSTOP test did not continue it');
    const back = await untilServing(targetOf(ups[0]), 'c');
    t.diagnostic(`its answers of the total after SIGCONT, per round: ${back.shares.join(' ')}`);
    const failedAfter = back.log.filter((r) => r.status !== 200);
    assert.deepEqual(failedAfter, [], `requests failed after SIGCONT: ${show(failedAfter)}`);
    assert.ok(back.ok, `after SIGCONT it took no share of the load: ${back.shares.join(' ')}`);
  });
});
