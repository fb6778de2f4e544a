// Starts the real cruder binary for integration tests, the way H2O's t/*.t and
// memcached's t/lib/MemcachedTest.pm do: a free port, a fresh data directory,
// wait until /api/health answers, and never leave a server behind.
//
//   const srv = await startServer();
//   const res = await fetch(`${srv.url}/api/health`);
//   assert.equal(await srv.stop(), 0);
//
// CRUDER_BIN picks the binary (make asan sets build-asan/cruder); relative paths
// are taken from the repository root, so tests may run from any directory.

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const HEALTH_POLL_MS = 20;
const HEALTH_TIMEOUT_MS = 10_000;
// Longer than the server's default shutdown_timeout_ms (10 s), so a slow but
// correct drain is not reported as a hang.
const STOP_TIMEOUT_MS = 20_000;

export function cruderBin() {
  return path.resolve(ROOT, process.env.CRUDER_BIN || 'build/cruder');
}

const running = new Set();
const ownedDirs = new Set();
// Under `make asan` a sanitizer report fails the test file even when the test
// never looks at the exit code (kill9, a server left running, a test that fails).
const SANITIZER_REPORT = /==\d+==ERROR: \w+Sanitizer|runtime error: /;
const sanitizerReports = [];

// Servers and their data directories die with the test process, whatever way it ends.
process.on('exit', () => {
  if (sanitizerReports.length) {
    process.stderr.write(`\ncruder sanitizer reports:\n${sanitizerReports.join('\n')}\n`);
    process.exitCode = 1;
  }
  for (const proc of running) {
    try {
      proc.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  if (!process.env.CRUDER_KEEP_DATA) {
    for (const dir of ownedDirs) fs.rmSync(dir, { recursive: true, force: true });
  }
});
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(sig, () => process.exit(128 + os.constants.signals[sig]));
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function exitCode(code, signal) {
  return code ?? 128 + (os.constants.signals[signal] ?? 0);
}

/**
 * Starts `cruder serve` on 127.0.0.1 and a free port, with `dir` (default: a new
 * temporary directory, removed when the test process exits unless
 * CRUDER_KEEP_DATA is set) as its data directory. Resolves once GET /api/health
 * answers 200; rejects with the server's stderr if it exits first, or after 10 s
 * (the server is then killed).
 *
 * Resolves to {url, port, dir, proc, stderr(), stdout(), stop(signal), kill9()}:
 * stop sends `signal` (SIGTERM) and resolves to the exit code (128+n for death
 * by signal n), rejecting if the server outlives STOP_TIMEOUT_MS; kill9 sends
 * SIGKILL and resolves when the process is gone.
 */
export async function startServer({ args = [], env = {}, dir } = {}) {
  if (!dir) {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cruder-test-'));
    ownedDirs.add(dir);
  }
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const proc = spawn(
    cruderBin(),
    ['serve', '--http', `127.0.0.1:${port}`, '--dir', dir, '--access-log=false', ...args],
    { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  running.add(proc);
  let errText = '';
  let outText = '';
  proc.stderr.setEncoding('utf8').on('data', (d) => (errText += d));
  proc.stdout.setEncoding('utf8').on('data', (d) => (outText += d));

  let exited = null;
  const exitPromise = new Promise((resolve) => {
    // 'close' rather than 'exit': by then stderr has been read to its end.
    proc.on('close', (code, signal) => {
      running.delete(proc);
      exited = exitCode(code, signal);
      if (SANITIZER_REPORT.test(errText)) sanitizerReports.push(errText);
      resolve(exited);
    });
  });
  let spawnError = null;
  proc.on('error', (e) => (spawnError = e));

  // Between calls a server must not keep the test process alive: a test that
  // fails before stop() would otherwise hang the runner. stop/kill9 re-ref it.
  const hold = (on) => {
    for (const h of [proc, proc.stdout, proc.stderr]) on ? h.ref() : h.unref();
  };

  const deadline = Date.now() + HEALTH_TIMEOUT_MS;
  for (;;) {
    if (spawnError) throw new Error(`cannot start ${cruderBin()}: ${spawnError.message}`);
    if (exited !== null) {
      throw new Error(`cruder exited with ${exited} before /api/health answered:\n${errText}`);
    }
    try {
      const res = await fetch(`${url}/api/health`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      await exitPromise;
      throw new Error(`cruder did not answer /api/health within ${HEALTH_TIMEOUT_MS} ms:\n${errText}`);
    }
    await sleep(HEALTH_POLL_MS);
  }
  hold(false);

  const stop = async (signal = 'SIGTERM') => {
    if (exited !== null) return exited;
    hold(true);
    proc.kill(signal);
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => {
        proc.kill('SIGKILL');
        reject(new Error(`cruder still running ${STOP_TIMEOUT_MS} ms after ${signal}:\n${errText}`));
      }, STOP_TIMEOUT_MS);
    });
    try {
      return await Promise.race([exitPromise, timeout]);
    } finally {
      clearTimeout(timer);
    }
  };
  const kill9 = async () => {
    if (exited !== null) return;
    hold(true);
    proc.kill('SIGKILL');
    await exitPromise;
  };

  return { url, port, dir, proc, stderr: () => errText, stdout: () => outText, stop, kill9 };
}

/**
 * Creates or updates the superuser with `cruder superuser upsert` on the
 * server's data directory, then signs in through the API. Resolves to the
 * token; throws with the command's stderr or the API's answer on failure.
 */
export async function superuserToken(srv, email, password) {
  const r = spawnSync(cruderBin(), ['superuser', 'upsert', email, password, '--dir', srv.dir], {
    encoding: 'utf8',
    timeout: 30_000,
  });
  if (r.status !== 0) {
    throw new Error(`superuser upsert exited with ${r.status ?? r.signal}:\n${r.stderr}`);
  }
  const res = await fetch(`${srv.url}/api/collections/_superusers/auth-with-password`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ identity: email, password }),
  });
  const body = await res.text();
  if (res.status !== 200) throw new Error(`superuser auth answered ${res.status}: ${body}`);
  return JSON.parse(body).token;
}

/**
 * Writes `bytes` (Buffer or string) to 127.0.0.1:port as they are and collects
 * everything the server sends back until it closes the connection (closed:
 * true) or timeoutMs passes (closed: false; the socket is then destroyed).
 * A reset by the server counts as closed. Rejects only if it cannot connect.
 */
export function rawRequest(port, bytes, { timeoutMs = 2000 } = {}) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let connected = false;
    let done = false;
    const finish = (closed) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ data: Buffer.concat(chunks), closed });
    };
    const sock = net.connect({ port, host: '127.0.0.1' }, () => {
      connected = true;
      // The server may answer and close before the whole request is written.
      sock.write(bytes, () => {});
    });
    const timer = setTimeout(() => finish(false), timeoutMs);
    sock.on('data', (d) => chunks.push(d));
    sock.on('end', () => finish(true));
    sock.on('close', () => finish(true));
    sock.on('error', (e) => {
      if (!connected) {
        done = true;
        clearTimeout(timer);
        reject(e);
      } else {
        finish(true);
      }
    });
  });
}
