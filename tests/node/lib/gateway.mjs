// Starts `cruder gateway` for integration tests, the way server.mjs starts
// `cruder serve`: a generated config file on a free port, ready once the port
// accepts connections, never left behind.
//
//   const gw = await startGateway({ upstreams: { api: [`127.0.0.1:${p}`] },
//                                   routes: [['/', 'api']] });
//   await fetch(`${gw.url}/api/health`);
//   await gw.stop();

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { cruderBin, freePort } from './server.mjs';

const running = new Set();
const dirs = new Set();
process.on('exit', () => {
  for (const p of running) {
    try {
      p.kill('SIGKILL');
    } catch {
      // gone
    }
  }
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function canConnect(port) {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' }, () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

/**
 * upstreams: {name: ['ADDR:PORT', ...]}; routes: [['[host]/prefix', name], ...];
 * settings: extra 'name = value' lines (loops defaults to 1); alsoListen:
 * more 'ADDR:PORT' listen addresses after the generated one.
 * Resolves to {url, port, proc, pid, file, stderr(), stop(), kill9(), reload(opts)}.
 */
function configText(port, { upstreams, routes, settings = {}, alsoListen = [] }) {
  const lines = [`http = ${[`127.0.0.1:${port}`, ...alsoListen].join(', ')}`, 'access_log = false'];
  const all = { loops: 1, ...settings };
  for (const [k, v] of Object.entries(all)) lines.push(`${k} = ${v}`);
  for (const [name, targets] of Object.entries(upstreams)) {
    lines.push(`upstream ${name} ${targets.join(' ')}`);
  }
  for (const [spec, name] of routes) lines.push(`route ${spec} ${name}`);
  return `${lines.join('\n')}\n`;
}

export async function startGateway(opts) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cruder-gw-'));
  dirs.add(dir);
  const port = await freePort();
  const file = path.join(dir, 'gateway.conf');
  fs.writeFileSync(file, configText(port, opts));
  const proc = spawn(cruderBin(), ['gateway', '--config', file], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(proc);
  let errText = '';
  proc.stderr.setEncoding('utf8').on('data', (d) => (errText += d));
  proc.stdout.resume();
  let exited = null;
  const exitPromise = new Promise((resolve) => {
    proc.on('close', (code, signal) => {
      running.delete(proc);
      exited = code ?? 128 + (os.constants.signals[signal] ?? 0);
      resolve(exited);
    });
  });
  const deadline = Date.now() + 10_000;
  while (!(await canConnect(port))) {
    if (exited !== null) throw new Error(`cruder gateway exited with ${exited}:\n${errText}`);
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`cruder gateway did not listen within 10 s:\n${errText}`);
    }
    await sleep(20);
  }
  for (const h of [proc, proc.stdout, proc.stderr]) h.unref();
  const stop = async (signal = 'SIGTERM') => {
    if (exited !== null) return exited;
    proc.ref();
    proc.kill(signal);
    return exitPromise;
  };
  const kill9 = async () => {
    if (exited !== null) return;
    proc.kill('SIGKILL');
    await exitPromise;
  };
  // Rewrites the file with new options and sends SIGHUP (upstream names and
  // targets may change; the listening address may not).
  const reload = (next) => {
    fs.writeFileSync(file, configText(port, next));
    proc.kill('SIGHUP');
  };
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    proc,
    pid: proc.pid,
    file,
    stderr: () => errText,
    stop,
    kill9,
    reload,
  };
}

/** Resident memory of a process in KiB, from /proc. */
export function rssKiB(pid) {
  const m = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}
