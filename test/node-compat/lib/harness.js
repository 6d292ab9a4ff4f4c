'use strict';
// Starts a throwaway `meridian dev` server for one test file and stops it again.
//
// The binary is never built here: CI builds it first and points MERIDIAN_BIN at it
// (default: ../../bin/meridian relative to this package, i.e. <repo>/bin/meridian).

const { spawn, spawnSync } = require('node:child_process');
const dgram = require('node:dgram');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const PKG_DIR = path.resolve(__dirname, '..');
const DEFAULT_BIN = path.resolve(PKG_DIR, '../../bin/meridian');

// Fixed credentials in the upstream formats: a UUID API key and a 64-hex secret.
const API_KEY = '3f9d2c1a-7b4e-4c8d-9a61-5e2f0b7c4d13';
const API_SECRET = '8c4f1e9a2b7d6c3e5f0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6a';

const START_TIMEOUT_MS = Number(process.env.MERIDIAN_START_TIMEOUT_MS || 20000);
const STOP_TIMEOUT_MS = 10000;
const LOG_TAIL_BYTES = 16 * 1024;

function meridianBin() {
  const configured = process.env.MERIDIAN_BIN;
  return configured ? path.resolve(PKG_DIR, configured) : DEFAULT_BIN;
}

function assertBinary(bin) {
  let st;
  try {
    st = fs.statSync(bin);
  } catch {
    throw new Error(
      `Meridian binary not found at ${bin}.\n` +
        `Build it first (cd <repo> && go build -o bin/meridian ./cmd/meridian) ` +
        `or set MERIDIAN_BIN to its path.`,
    );
  }
  if (!st.isFile()) throw new Error(`MERIDIAN_BIN ${bin} is not a file`);
  try {
    fs.accessSync(bin, fs.constants.X_OK);
  } catch {
    throw new Error(`Meridian binary at ${bin} is not executable (chmod +x it)`);
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function freeUdpPort() {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket('udp4');
    sock.unref();
    sock.on('error', reject);
    sock.bind(0, '127.0.0.1', () => {
      const { port } = sock.address();
      sock.close(() => resolve(port));
    });
  });
}

// Flags of `meridian dev` in this binary (read from `dev -h`), so the harness
// only passes flags the binary knows.
let devFlagsCache;
function devFlags(bin) {
  if (!devFlagsCache) {
    const r = spawnSync(bin, ['dev', '-h'], { encoding: 'utf8', env: childEnv(), timeout: 10000 });
    const text = `${r.stdout || ''}\n${r.stderr || ''}`;
    devFlagsCache = new Set([...text.matchAll(/^\s+-{1,2}([a-z0-9][a-z0-9-]*)/gm)].map((x) => x[1]));
  }
  return devFlagsCache;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Children still alive when this process goes away are killed hard and their
// temporary data directories removed (also on Ctrl-C / SIGTERM of the test run).
const live = new Set();
const tempDirs = new Set();
function removeTempDirs() {
  if (process.env.MERIDIAN_KEEP_DATA) return;
  for (const dir of tempDirs) {
    try {
      fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
    } catch {
      /* best effort */
    }
  }
}
function killAll() {
  for (const child of live) {
    try {
      child.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
}
process.on('exit', () => {
  killAll();
  removeTempDirs();
});
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, async () => {
    const gone = [...live].map((c) => new Promise((resolve) => c.once('exit', resolve)));
    killAll();
    await Promise.race([Promise.all(gone), sleep(3000)]);
    removeTempDirs();
    process.kill(process.pid, sig);
  });
}

function childEnv() {
  // MERIDIAN_<FLAG> variables would change the server's flags: pass none through.
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('MERIDIAN_')) env[k] = v;
  }
  return env;
}

class Tail {
  constructor() {
    this.buf = '';
  }
  push(chunk) {
    this.buf += chunk.toString('utf8');
    if (this.buf.length > LOG_TAIL_BYTES) this.buf = this.buf.slice(-LOG_TAIL_BYTES);
  }
  toString() {
    return this.buf;
  }
}

async function startOnce(bin, port, dataDir) {
  const args = ['dev', '--http', `127.0.0.1:${port}`, '--data', dataDir, '--api-key', API_KEY, '--api-secret', API_SECRET];
  // The embedded TURN server defaults to the fixed port 3478: give it free ports so
  // test files (and a developer's own `meridian dev`) can run side by side.
  const flags = devFlags(bin);
  if (flags.has('turn-udp')) args.push('--turn-udp', `127.0.0.1:${await freeUdpPort()}`);
  if (flags.has('turn-tcp')) args.push('--turn-tcp', `127.0.0.1:${await freePort()}`);
  const child = spawn(bin, args, { cwd: dataDir, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  const stdout = new Tail();
  const stderr = new Tail();
  child.stdout.on('data', (d) => stdout.push(d));
  child.stderr.on('data', (d) => stderr.push(d));
  const exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    });
  });
  let spawnError;
  child.once('error', (err) => {
    spawnError = err;
  });
  let exitInfo;
  exited.then((info) => {
    exitInfo = info;
  });

  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + START_TIMEOUT_MS;
  let lastProblem = 'no answer yet';
  for (;;) {
    if (spawnError) throw new Error(`cannot start ${bin}: ${spawnError.message}`);
    if (exitInfo) {
      const err = new Error(
        `meridian dev exited before it was ready (code ${exitInfo.code}, signal ${exitInfo.signal}).\n` +
          `--- stderr (tail) ---\n${stderr}\n--- stdout (tail) ---\n${stdout}`,
      );
      err.stderr = stderr.toString();
      throw err;
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      await exited;
      throw new Error(
        `meridian dev did not answer GET /healthz with 200 within ${START_TIMEOUT_MS} ms (last: ${lastProblem}).\n` +
          `--- stderr (tail) ---\n${stderr}`,
      );
    }
    try {
      const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.status === 200) break;
      lastProblem = `HTTP ${res.status}`;
    } catch (e) {
      lastProblem = e.cause?.code || e.message;
    }
    await sleep(50);
  }
  return { child, exited, stdout, stderr, url };
}

function newDataDir() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meridian-node-compat-'));
  tempDirs.add(dir);
  return dir;
}

function removeDataDir(dir) {
  if (!process.env.MERIDIAN_KEEP_DATA) fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  tempDirs.delete(dir);
}

/**
 * Start `meridian dev` on a free port with a fresh data directory.
 * Returns { url, pid, apiKey, secret, bin, dataDir, stdout(), stderr(), stop() }.
 */
async function startMeridian() {
  const bin = meridianBin();
  assertBinary(bin);
  let started;
  let dataDir;
  let lastErr;
  // A free port can be taken between probing and binding: retry a few times.
  for (let attempt = 0; attempt < 3 && !started; attempt++) {
    dataDir = newDataDir();
    try {
      started = await startOnce(bin, await freePort(), dataDir);
    } catch (e) {
      lastErr = e;
      removeDataDir(dataDir);
      if (!/address already in use/i.test(e.stderr || '')) break;
    }
  }
  if (!started) throw lastErr;
  const { child, exited, stdout, stderr, url } = started;
  let stopping;
  let exitedEarly;
  exited.then((info) => {
    if (!stopping) exitedEarly = info;
  });
  return {
    url,
    pid: child.pid,
    apiKey: API_KEY,
    secret: API_SECRET,
    bin,
    dataDir,
    stdout: () => stdout.toString(),
    stderr: () => stderr.toString(),
    /**
     * SIGTERM, wait for exit (SIGKILL after a timeout), remove the data dir.
     * Rejects if the server died during the tests, ignored SIGTERM or exited non-zero.
     */
    stop() {
      if (!stopping) {
        stopping = (async () => {
          const early = exitedEarly;
          if (!early) child.kill('SIGTERM');
          let timer;
          const timeout = new Promise((resolve) => {
            timer = setTimeout(() => resolve('timeout'), STOP_TIMEOUT_MS);
          });
          const result = await Promise.race([exited, timeout]);
          clearTimeout(timer);
          if (result === 'timeout') {
            child.kill('SIGKILL');
            await exited;
          }
          removeDataDir(dataDir);
          const tail = `\n--- stderr (tail) ---\n${stderr}`;
          if (early) {
            throw new Error(`meridian dev died during the tests (code ${early.code}, signal ${early.signal})${tail}`);
          }
          if (result === 'timeout') {
            throw new Error(`meridian dev ignored SIGTERM for ${STOP_TIMEOUT_MS} ms and was killed${tail}`);
          }
          if (result.code !== 0) {
            throw new Error(`meridian dev exited with code ${result.code} (signal ${result.signal}) on SIGTERM${tail}`);
          }
          return result;
        })();
      }
      return stopping;
    },
  };
}

module.exports = { startMeridian, API_KEY, API_SECRET, meridianBin, assertBinary };
