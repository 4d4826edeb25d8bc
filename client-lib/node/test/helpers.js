'use strict';
// Test helpers: real processes, real sockets (the Node form of
// tests/harness.c).
//
// - the dev VOLT server (contrib/volt-dev-server, a real socket.io 4.8
//   server) on an ephemeral port, driven through its /_dev/ HTTP API;
// - volt-broker in a child process with a generated config in a private
//   temp dir: the binary named by $VOLT_BROKER_BIN (ctest sets it), under
//   valgrind when VOLT_TEST_VALGRIND=1 with the harness's options, so its
//   exit status also reports leaks and memory errors;
// - waits on conditions with deadlines (longer with valgrind), never
//   fixed sleeps.
//
// Every process started here is killed when the test process exits, even
// when a test fails half-way.

const assert = require('assert');
const childProcess = require('child_process');
const fs = require('fs');
const http = require('http');
const net = require('net');
const os = require('os');
const path = require('path');

const TOP = path.resolve(__dirname, '../../..');
const SERVER_JS = path.join(TOP, 'contrib/volt-dev-server/server.js');

const children = new Set();
process.on('exit', () => {
  for (const c of children) {
    try {
      c.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
});

function underValgrind() {
  return process.env.VOLT_TEST_VALGRIND === '1';
}

/** A time limit for something the broker does, with room for valgrind. */
function slack(ms) {
  return underValgrind() ? ms * 4 + 10000 : ms;
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Polls cond() (sync or async) every 20 ms until it returns a truthy value,
 * which is returned; throws naming `what` after timeoutMs.
 */
async function waitFor(cond, timeoutMs, what) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() >= end) throw new Error(`waited ${timeoutMs} ms for ${what}`);
    await sleep(20);
  }
}

/** Settles with the promise, or rejects naming `what` after timeoutMs. */
function within(promise, timeoutMs, what) {
  let timer;
  const limit = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not settled within ${timeoutMs} ms`)), timeoutMs);
  });
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
}

/** The rejection of a promise that must reject (fails if it resolves). */
async function rejection(promise, timeoutMs, what) {
  try {
    const v = await within(promise, timeoutMs, what);
    assert.fail(`${what}: expected a rejection, got ${JSON.stringify(v)}`);
  } catch (e) {
    if (e instanceof assert.AssertionError) throw e;
    return e;
  }
  return undefined;
}

function tempDir(what) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `volt-node-${what}-`));
  fs.chmodSync(dir, 0o755); // tests connect as other users too
  return dir;
}

// ------------------------------------------------------------- dev server

class DevServer {
  constructor(args) {
    this.args = args || [];
    this.proc = null;
    this.port = 0;
  }

  async start(port = 0) {
    this.dir = tempDir('server');
    const log = fs.openSync(path.join(this.dir, 'server.log'), 'a');
    const proc = childProcess.spawn(process.execPath, [SERVER_JS, '--port', String(port), ...this.args], {
      stdio: ['ignore', 'pipe', log],
    });
    fs.closeSync(log);
    children.add(proc);
    proc.on('exit', () => children.delete(proc));
    this.proc = proc;
    let text = '';
    this.port = await within(
      new Promise((resolve, reject) => {
        proc.stdout.on('data', (d) => {
          text += d;
          const m = /"port":(\d+)/.exec(text);
          if (m) resolve(Number(m[1]));
        });
        proc.on('exit', (code) => reject(new Error(`the dev server exited (${code}): ${text}`)));
      }),
      15000,
      'dev server start',
    );
    // Keep reading its stdout: it must never block on a full pipe.
    proc.stdout.on('data', () => {});
    return this;
  }

  get url() {
    return `ws://127.0.0.1:${this.port}/control`;
  }

  /** HTTP to the control API: {status, body (parsed JSON or text)}. */
  request(method, route, body) {
    return new Promise((resolve, reject) => {
      const data = body === undefined ? '' : JSON.stringify(body);
      const req = http.request(
        {
          host: '127.0.0.1', port: this.port, path: route, method,
          headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) },
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (d) => { text += d; });
          res.on('end', () => {
            let parsed = text;
            try {
              parsed = JSON.parse(text);
            } catch {
              // not JSON: keep the text
            }
            resolve({ status: res.statusCode, body: parsed });
          });
        },
      );
      req.setTimeout(130000, () => req.destroy(new Error(`${method} ${route}: no answer`)));
      req.on('error', reject);
      req.end(data);
    });
  }

  async post(route, body) {
    return this.request('POST', route, body);
  }

  async state() {
    return (await this.request('GET', '/_dev/state')).body;
  }

  async counter(name) {
    return (await this.state()).counters[name];
  }

  /** Events of `kinds` (comma-separated) after seq `since`. */
  async events(kinds, since = 0) {
    const r = await this.request('GET', `/_dev/events?since=${since}&kind=${kinds}`);
    return r.body.events;
  }

  /** Waits for an event of `kind` matching pred; returns it. */
  async waitEvent(kind, pred, timeoutMs, since = 0) {
    return waitFor(async () => (await this.events(kind, since)).find((e) => !pred || pred(e)), timeoutMs, `a dev server "${kind}" event`);
  }

  async lastSeq() {
    return (await this.request('GET', '/_dev/events?since=0&kind=none')).body.lastSeq;
  }

  /** Sends a server:request to the daemon: the control API's answer body. */
  async serverRequest(command, payload, timeoutMs = 10000) {
    const body = { command, timeoutMs };
    if (payload !== undefined) body.payload = payload;
    const r = await this.post('/_dev/server-request', body);
    if (r.status !== 200) throw new Error(`server-request ${command}: HTTP ${r.status} ${JSON.stringify(r.body)}`);
    return r.body.response;
  }

  async stop() {
    await this.end('SIGTERM');
  }

  async end(signal) {
    const proc = this.proc;
    if (!proc) return;
    this.proc = null;
    if (proc.exitCode === null && proc.signalCode === null) {
      const gone = new Promise((r) => proc.once('exit', r));
      proc.kill(signal);
      await within(gone, 10000, 'dev server exit').catch(() => proc.kill('SIGKILL'));
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  /** SIGKILL, and a fresh server on the same port. */
  async killAndRestart() {
    const port = this.port;
    await this.end('SIGKILL');
    await this.start(port);
  }
}

async function startDevServer(args) {
  return new DevServer(args).start();
}

// ----------------------------------------------------------------- broker

function brokerBin() {
  const bin = process.env.VOLT_BROKER_BIN;
  if (!bin) {
    throw new Error('VOLT_BROKER_BIN is not set: point it at a built volt-broker (ctest sets it)');
  }
  return bin;
}

function canConnect(sock) {
  return new Promise((resolve) => {
    const s = net.createConnection({ path: sock });
    s.on('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

class Broker {
  /**
   * @param {DevServer|null} server
   * @param {object} config broker config; listen and stateDir are filled in,
   *   and controlSocketUrl/credentials default to the dev server's
   */
  constructor(server, config) {
    this.server = server;
    this.dir = tempDir('broker');
    this.sock = path.join(this.dir, 'broker.sock');
    this.configPath = path.join(this.dir, 'broker.json');
    this.logPath = path.join(this.dir, 'broker.log');
    this.proc = null;
    this.writeConfig(config);
  }

  writeConfig(config) {
    const c = JSON.parse(JSON.stringify(config || {}));
    if (this.server && c.controlSocketUrl === undefined) c.controlSocketUrl = this.server.url;
    if (this.server && c.credentials === undefined) {
      c.credentials = { teamClusterId: 'cluster-dev', daemonPassword: 'dev-password' };
    }
    c.socket = { reconnectionDelay: 100, reconnectionDelayMax: 300, ...(c.socket || {}) };
    c.broker = { listen: this.sock, stateDir: path.join(this.dir, 'state'), logLevel: 'debug', ...(c.broker || {}) };
    fs.writeFileSync(this.configPath, JSON.stringify(c, null, 2));
  }

  async start() {
    const bin = brokerBin();
    const log = fs.openSync(this.logPath, 'a');
    let cmd = bin;
    let args = ['--config', this.configPath];
    if (underValgrind()) {
      cmd = 'valgrind';
      args = [
        '--quiet', '--leak-check=full', '--show-leak-kinds=definite,indirect,possible',
        '--errors-for-leak-kinds=definite,indirect,possible', '--error-exitcode=99',
        `--suppressions=${path.join(TOP, 'tests/valgrind.supp')}`, bin, ...args,
      ];
    }
    const env = { ...process.env };
    delete env.NOTIFY_SOCKET;
    const proc = childProcess.spawn(cmd, args, { stdio: ['ignore', log, log], env });
    fs.closeSync(log);
    children.add(proc);
    this.proc = proc;
    this.exit = new Promise((resolve) => {
      proc.on('exit', (code, signal) => {
        children.delete(proc);
        resolve({ code, signal });
      });
    });
    await waitFor(
      async () => {
        if (proc.exitCode !== null) throw new Error(`volt-broker exited (${proc.exitCode}):\n${this.log()}`);
        return canConnect(this.sock);
      },
      underValgrind() ? 60000 : 10000,
      `the broker socket ${this.sock}`,
    );
    return this;
  }

  log() {
    try {
      return fs.readFileSync(this.logPath, 'utf8');
    } catch {
      return '(no log)';
    }
  }

  async waitLog(needle, timeoutMs) {
    return waitFor(() => this.log().includes(needle), slack(timeoutMs), `the broker to log "${needle}"`);
  }

  /**
   * SIGTERM and wait: the exit code (0: clean, and under valgrind no leak
   * and no error), or -1 when it had to be killed.
   */
  async stop(timeoutMs = 10000) {
    const proc = this.proc;
    if (!proc) return -1;
    this.proc = null;
    proc.kill('SIGTERM');
    try {
      const { code, signal } = await within(this.exit, underValgrind() ? timeoutMs * 4 + 20000 : timeoutMs, 'broker exit');
      if (code !== 0) process.stderr.write(`---- broker log ----\n${this.log()}---- end ----\n`);
      return code === null ? -1 : (signal ? -1 : code);
    } catch {
      proc.kill('SIGKILL');
      process.stderr.write(`---- broker log ----\n${this.log()}---- end ----\n`);
      return -1;
    }
  }

  /** SIGKILL (a crash), no checks. */
  async kill() {
    const proc = this.proc;
    if (!proc) return;
    this.proc = null;
    proc.kill('SIGKILL');
    await this.exit;
  }

  cleanup() {
    if (process.env.VOLT_TEST_KEEP) {
      process.stderr.write(`keeping ${this.dir}\n`);
      return;
    }
    if (this.proc) this.proc.kill('SIGKILL');
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  /** The broker's status map, over a connection of its own. */
  async status() {
    const { BrokerConnection } = require('../lib/connection');
    return new Promise((resolve, reject) => {
      const conn = new BrokerConnection({
        path: this.sock,
        name: 'test-status',
        onFrame: () => {},
        onClose: (e) => reject(e),
      });
      conn.start(slack(5000), () => {
        conn.request({ op: 'status' }, slack(5000), (err, res) => {
          conn.close();
          if (err) reject(err);
          else resolve(res.data);
        });
      });
    });
  }

  async waitState(state, timeoutMs) {
    let last = '?';
    return waitFor(
      async () => {
        const st = await this.status().catch(() => null);
        if (st) last = st.upstream.state;
        return st && st.upstream.state === state;
      },
      slack(timeoutMs),
      `upstream state "${state}" (last seen "${last}")`,
    );
  }
}

async function startBroker(server, config) {
  return new Broker(server, config).start();
}

/** Records unhandled rejections and uncaught exceptions of the test process. */
function trackUnhandled() {
  const seen = [];
  process.on('unhandledRejection', (e) => seen.push(e));
  return {
    assertNone() {
      assert.deepStrictEqual(seen.map((e) => String(e && e.stack ? e.stack : e)), [], 'unhandled rejections');
    },
  };
}

module.exports = {
  TOP, DevServer, Broker, startDevServer, startBroker, slack, sleep, waitFor, within, rejection,
  tempDir, underValgrind, trackUnhandled,
};
