#!/usr/bin/env node
'use strict';
// The peer of the volt-broker benchmark: what a service does without the
// broker, i.e. keep its own socket.io-client 4.8 session to the VOLT server.
//
// The process started from the command line is only a coordinator. It
// forks C worker processes (C services, each a Node process with its own
// socket.io connection to /control), lets each one connect, register
// (daemon:register with ack) and warm up, then releases them together and
// times them until the last one is done. Each worker sends its share of
// the N `echo` requests (daemon:request with a UUID requestId) keeping K in
// flight, checks every daemon:response (right requestId, exactly once, the
// payload echoed back intact) and reports the CPU it spent in the timed
// phase (process.cpuUsage) and its memory (RSS now and peak).
//
// bench-broker.c is the same program for the broker path; both print one
// `RESULT key=value ...` line that run.sh turns into a table. The
// coordinator can also sample other processes (--sample LABEL=PID, e.g. the
// dev server) over exactly the timed phase, from /proc/PID/stat.

const { fork } = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const os = require('os');

const USAGE = `Usage: node peer.js --url http://127.0.0.1:PORT [OPTIONS]
  --url URL            socket.io server (the namespace is appended)
  --namespace NSP      default /control
  -n N                 requests in the timed phase, split over the clients (default 20000)
  -k K                 requests in flight per client (default 100)
  -c C                 client processes, one socket.io connection each (default 1)
  --payload-bytes B    length of the string in each payload (default 16)
  --warmup W           requests per client before the timed phase (default 500)
  --team ID            teamClusterId (default cluster-dev)
  --password-env VAR   environment variable holding daemonPassword
                       (default: the dev server's dev-password)
  --sample LABEL=PID   also report the CPU of PID over the timed phase and its
                       peak RSS as LABEL_cpu_us, LABEL_hwm_kb (repeatable)
  --clk-tck HZ         clock ticks per second of /proc/PID/stat (default 100)
  --deadline-ms MS     give up after MS (default 90000)
  --command NAME       send NAME instead of echo (to see the checks fail)
`;

function die(msg) {
  process.stderr.write(`peer.js: ${msg}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const o = {
    url: null, namespace: '/control', n: 20000, k: 100, c: 1, payloadBytes: 16,
    warmup: 500, team: 'cluster-dev', passwordEnv: null, samples: [], clkTck: 100,
    deadlineMs: 90000, worker: -1, command: 'echo',
  };
  const ints = {
    '-n': 'n', '-k': 'k', '-c': 'c', '--payload-bytes': 'payloadBytes', '--warmup': 'warmup',
    '--clk-tck': 'clkTck', '--deadline-ms': 'deadlineMs', '--worker': 'worker',
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-h' || a === '--help') {
      process.stdout.write(USAGE);
      process.exit(0);
    }
    if (i + 1 >= argv.length) die(`${a} needs a value\n${USAGE}`);
    const v = argv[++i];
    if (ints[a]) {
      if (!/^\d+$/.test(v)) die(`${a}: not a number: ${v}`);
      o[ints[a]] = Number(v);
    } else if (a === '--url') o.url = v;
    else if (a === '--namespace') o.namespace = v;
    else if (a === '--team') o.team = v;
    else if (a === '--command') o.command = v;
    else if (a === '--password-env') o.passwordEnv = v;
    else if (a === '--sample') {
      const m = /^([a-z0-9_]+)=(\d+)$/.exec(v);
      if (!m) die(`--sample: not LABEL=PID: ${v}`);
      o.samples.push({ label: m[1], pid: Number(m[2]) });
    } else die(`unknown option ${a}\n${USAGE}`);
  }
  if (!o.url) die(`--url is required\n${USAGE}`);
  if (o.n < 1 || o.k < 1 || o.c < 1 || o.c > 256 || o.clkTck < 1) die('-n, -k, -c must be >= 1, -c <= 256');
  if (o.n < o.c) die('-n must be at least -c');
  return o;
}

// The payload of request i: {"i": i, "s": "0123456789abcdef0123..."}.
function payloadString(bytes) {
  const hex = '0123456789abcdef';
  let s = '';
  for (let j = 0; j < bytes; j++) s += hex[j % 16];
  return s;
}

// Requests of worker w when n are split over c workers as evenly as possible.
function shareOf(n, c, w) {
  return Math.floor(n / c) + (w < n % c ? 1 : 0);
}

// ------------------------------------------------------------------ worker

function runWorker(o) {
  const { io } = require('socket.io-client');
  const password = o.passwordEnv ? process.env[o.passwordEnv] : 'dev-password';
  if (password === undefined) die(`${o.passwordEnv} is not set`);
  const str = payloadString(o.payloadBytes);
  const socket = io(o.url + o.namespace, {
    transports: ['websocket'], // what the broker does too: no long-polling
    auth: { teamClusterId: o.team, daemonPassword: password },
    reconnection: false,
    forceNew: true,
  });
  const fatal = (msg) => {
    process.send({ type: 'error', message: msg }, () => process.exit(1));
  };

  // One batch of `total` requests with at most o.k in flight; `done` runs
  // after the last verified answer.
  let batch = null;
  function startBatch(total, done) {
    batch = { total, sent: 0, answered: 0, pending: new Map(), seen: new Uint8Array(total), done };
    while (batch.sent < total && batch.pending.size < o.k) sendNext();
  }
  function sendNext() {
    const i = batch.sent++;
    const requestId = crypto.randomUUID();
    batch.pending.set(requestId, i);
    socket.emit('daemon:request', { requestId, command: o.command, payload: { i, s: str } });
  }
  socket.on('daemon:response', (r) => {
    const i = batch && r ? batch.pending.get(r.requestId) : undefined;
    if (i === undefined) return fatal(`response with an unknown or repeated requestId: ${JSON.stringify(r)}`);
    batch.pending.delete(r.requestId);
    if (r.success !== true) return fatal(`request ${i} failed: ${JSON.stringify(r.error)}`);
    if (!r.data || r.data.i !== i || r.data.s !== str) {
      return fatal(`request ${i}: wrong echo ${JSON.stringify(r.data).slice(0, 200)}`);
    }
    if (batch.seen[i]) return fatal(`request ${i} answered twice`);
    batch.seen[i] = 1;
    batch.answered++;
    if (batch.sent < batch.total) sendNext();
    else if (batch.answered === batch.total) batch.done();
  });
  socket.on('connect_error', (e) => fatal(`connect_error: ${e.message}`));
  socket.on('disconnect', (why) => {
    if (!finished) fatal(`disconnected: ${why}`);
  });

  let finished = false;
  let cpuStart = null;
  socket.on('connect', () => {
    const reg = { teamClusterId: o.team, hostname: os.hostname(), version: '0.1.0', handlers: [] };
    socket.timeout(10000).emit('daemon:register', reg, (err, ack) => {
      if (err) return fatal('daemon:register was not acknowledged');
      if (!ack || ack.success !== true) return fatal(`registration refused: ${JSON.stringify(ack)}`);
      const warm = () => process.send({ type: 'ready' });
      if (o.warmup > 0) startBatch(o.warmup, warm);
      else warm();
    });
  });
  process.on('message', (m) => {
    if (m.type !== 'go') return;
    cpuStart = process.cpuUsage();
    startBatch(shareOf(o.n, o.c, o.worker), () => {
      const cpu = process.cpuUsage(cpuStart);
      finished = true;
      const rss = process.memoryUsage().rss;
      const maxRss = process.resourceUsage().maxRSS * 1024; // KiB -> bytes
      process.send({ type: 'done', requests: batch.total, cpuUs: cpu.user + cpu.system, rss, maxRss });
      socket.close();
    });
  });
  process.on('disconnect', () => process.exit(0)); // the coordinator is gone
}

// ------------------------------------------------------------- coordinator

// utime + stime of pid in microseconds, or null when it cannot be read.
function procCpuUs(pid, clkTck) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1e6) / clkTck; // fields 14 and 15
  } catch {
    return null;
  }
}

// A VmXXX field of /proc/pid/status in bytes, or null.
function procMem(pid, field) {
  try {
    const m = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

function runCoordinator(o) {
  const workers = [];
  const results = [];
  let ready = 0;
  let t0 = 0n;
  let sampleStart = [];
  const deadline = setTimeout(() => fail(`not done within ${o.deadlineMs} ms`), o.deadlineMs);

  function fail(msg) {
    process.stderr.write(`peer.js: ${msg}\n`);
    for (const w of workers) w.kill('SIGKILL');
    process.exit(1);
  }
  const baseArgs = process.argv.slice(2);
  for (let w = 0; w < o.c; w++) {
    const child = fork(__filename, [...baseArgs, '--worker', String(w)], { stdio: 'inherit' });
    workers.push(child);
    child.on('exit', (code, sig) => {
      if (results.length < o.c && !results.some((r) => r.w === w)) fail(`worker ${w} exited (${code ?? sig}) before it was done`);
    });
    child.on('message', (m) => {
      if (m.type === 'error') fail(`worker ${w}: ${m.message}`);
      else if (m.type === 'ready' && ++ready === o.c) {
        sampleStart = o.samples.map((s) => procCpuUs(s.pid, o.clkTck));
        t0 = process.hrtime.bigint();
        for (const x of workers) x.send({ type: 'go' });
      } else if (m.type === 'done') {
        results.push({ w, ...m });
        if (results.length === o.c) report();
      }
    });
  }

  function report() {
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const sampled = o.samples.map((s, i) => {
      const now = procCpuUs(s.pid, o.clkTck);
      const cpuUs = now === null || sampleStart[i] === null ? -1 : now - sampleStart[i];
      return { ...s, cpuUs, hwm: procMem(s.pid, 'VmHWM') };
    });
    clearTimeout(deadline);
    const requests = results.reduce((a, r) => a + r.requests, 0);
    const cpuUs = results.reduce((a, r) => a + r.cpuUs, 0);
    const maxRss = results.reduce((a, r) => a + r.maxRss, 0);
    const rss = results.reduce((a, r) => a + r.rss, 0);
    if (requests !== o.n) fail(`${requests} requests answered, expected ${o.n}`);
    const fields = {
      tool: 'peer', node: process.version, clients: o.c, n: requests, k: o.k, payload_bytes: o.payloadBytes,
      seconds: seconds.toFixed(4), rps: Math.round(requests / seconds), clients_cpu_us: Math.round(cpuUs),
      clients_maxrss_kb: Math.round(maxRss / 1024), clients_rss_kb: Math.round(rss / 1024),
    };
    for (const s of sampled) {
      fields[`${s.label}_pid`] = s.pid;
      fields[`${s.label}_cpu_us`] = Math.round(s.cpuUs);
      fields[`${s.label}_hwm_kb`] = s.hwm === null ? -1 : Math.round(s.hwm / 1024);
    }
    process.stdout.write(
      `peer (node ${process.version}, socket.io-client ${require('socket.io-client/package.json').version}): ` +
        `${o.c} client(s), ${requests} echo requests, ${o.k} in flight each: ` +
        `${fields.rps} req/s, clients CPU ${(cpuUs / requests).toFixed(1)} us/req, ` +
        `peak RSS ${fields.clients_maxrss_kb} KiB in all\n` +
        `RESULT ${Object.entries(fields).map(([k, v]) => `${k}=${v}`).join(' ')}\n`,
    );
    for (const w of workers) w.disconnect();
  }
}

const opts = parseArgs(process.argv.slice(2));
if (opts.worker >= 0) runWorker(opts);
else runCoordinator(opts);
