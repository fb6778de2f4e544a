// The harness itself: start, health, raw bytes, stop codes, restart on the same
// directory, and a start failure that surfaces the server's stderr.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { startServer, rawRequest } from './server.mjs';

test('startServer answers /api/health and stops with exit code 0', async () => {
  const srv = await startServer();
  assert.match(srv.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.ok(fs.statSync(srv.dir).isDirectory());
  const res = await fetch(`${srv.url}/api/health`);
  assert.equal(res.status, 200);
  assert.equal((await res.json()).code, 200);
  assert.equal(typeof srv.stderr(), 'string');
  assert.equal(await srv.stop(), 0);
  assert.equal(await srv.stop(), 0, 'stop after exit returns the same code');
});

test('rawRequest collects the answer until the server closes', async () => {
  const srv = await startServer();
  try {
    const r = await rawRequest(
      srv.port,
      'GET /api/health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n',
    );
    assert.equal(r.closed, true);
    assert.match(r.data.toString('latin1'), /^HTTP\/1\.1 200 /);
    const open = await rawRequest(srv.port, 'GET /api/health HTTP/1.1\r\nHost: t\r\n\r\n', {
      timeoutMs: 300,
    });
    assert.equal(open.closed, false, 'a keep-alive connection stays open');
    assert.match(open.data.toString('latin1'), /^HTTP\/1\.1 200 /);
  } finally {
    await srv.stop();
  }
});

test('kill9 ends the server and a new one starts on the same directory', async () => {
  const first = await startServer();
  await first.kill9();
  assert.equal(first.proc.signalCode, 'SIGKILL');
  const second = await startServer({ dir: first.dir });
  assert.equal(second.dir, first.dir);
  assert.equal((await fetch(`${second.url}/api/health`)).status, 200);
  assert.equal(await second.stop(), 0);
});

test('startServer rejects with the reason when the server cannot start', async () => {
  await assert.rejects(startServer({ args: ['--no-such-setting=1'] }), (e) => {
    assert.match(e.message, /exited with [1-9]\d* before \/api\/health answered/);
    assert.match(e.message, /no-such-setting|no_such_setting/);
    return true;
  });
});
