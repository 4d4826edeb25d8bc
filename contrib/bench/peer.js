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
// Each request is timed (emit to response) for the latency percentiles of
// the sequential (K=1) runs. Other modes (--mode), as in bench-broker.c:
//  - inbound: one worker answers server:request with the payload; the
//    coordinator makes the dev server send them, K at a time, through its
//    control API (the --url server).
//  - memory: one connection in this process: its RSS once registered
//    (idle), and what P pending requests add (the server never answers
//    `never`), both after a full GC.
//  - startup: one connection in this process; the time from --since-ns
//    (wall clock, taken by run.sh just before it started node) to
//    registered.
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
  --mode MODE          load (default), inbound, memory or startup
  --pending P          memory: requests kept pending (default 20000)
  --since-ns T         startup: CLOCK_REALTIME ns when node was started
`;

function die(msg) {
  process.stderr.write(`peer.js: ${msg}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const o = {
    url: null, namespace: '/control', n: 20000, k: 100, c: 1, payloadBytes: 16,
    warmup: 500, team: 'cluster-dev', passwordEnv: null, samples: [], clkTck: 100,
    deadlineMs: 90000, worker: -1, command: 'echo', mode: 'load', pending: 20000, sinceNs: 0n,
  };
  const ints = {
    '-n': 'n', '-k': 'k', '-c': 'c', '--payload-bytes': 'payloadBytes', '--warmup': 'warmup',
    '--clk-tck': 'clkTck', '--deadline-ms': 'deadlineMs', '--worker': 'worker',
    '--pending': 'pending',
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
    else if (a === '--mode') {
      if (!['load', 'inbound', 'memory', 'startup'].includes(v)) die(`--mode: unknown mode ${v}`);
      o.mode = v;
    } else if (a === '--since-ns') {
      if (!/^\d+$/.test(v)) die(`--since-ns: not a number: ${v}`);
      o.sinceNs = BigInt(v);
    }
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
  if (o.mode === 'inbound') {
    if (o.k > 10000) die('-k must be <= 10000 with --mode inbound');
    o.c = 1;
    o.n = Math.max(o.k, Math.floor(o.n / o.k) * o.k);
    o.warmup = Math.floor(o.warmup / o.k) * o.k;
  }
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

function connect(o) {
  const { io } = require('socket.io-client');
  const password = o.passwordEnv ? process.env[o.passwordEnv] : 'dev-password';
  if (password === undefined) die(`${o.passwordEnv} is not set`);
  return io(o.url + o.namespace, {
    transports: ['websocket'], // what the broker does too: no long-polling
    auth: { teamClusterId: o.team, daemonPassword: password },
    reconnection: false,
    forceNew: true,
  });
}

// daemon:register with ack; then `then()`.
function register(o, socket, fatal, then) {
  const reg = { teamClusterId: o.team, hostname: os.hostname(), version: '0.1.0', handlers: [] };
  socket.timeout(10000).emit('daemon:register', reg, (err, ack) => {
    if (err) return fatal('daemon:register was not acknowledged');
    if (!ack || ack.success !== true) return fatal(`registration refused: ${JSON.stringify(ack)}`);
    then();
  });
}

function cpuNow() {
  const c = process.cpuUsage();
  return c.user + c.system;
}

function runWorker(o) {
  const str = payloadString(o.payloadBytes);
  const socket = connect(o);
  const fatal = (msg) => {
    process.send({ type: 'error', message: msg }, () => process.exit(1));
  };
  if (o.mode === 'inbound') return runInboundWorker(o, socket, fatal);

  // One batch of `total` requests with at most o.k in flight; `done` runs
  // after the last verified answer.
  let batch = null;
  function startBatch(total, done) {
    batch = {
      total, sent: 0, answered: 0, pending: new Map(), seen: new Uint8Array(total), done,
      sentAt: new Float64Array(total), latency: new Float64Array(total),
    };
    while (batch.sent < total && batch.pending.size < o.k) sendNext();
  }
  function sendNext() {
    const i = batch.sent++;
    const requestId = crypto.randomUUID();
    batch.pending.set(requestId, i);
    batch.sentAt[i] = performance.now();
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
    batch.latency[i] = performance.now() - batch.sentAt[i];
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
  socket.on('connect', () => register(o, socket, fatal, () => {
    const warm = () => process.send({ type: 'ready' });
    if (o.warmup > 0) startBatch(o.warmup, warm);
    else warm();
  }));
  process.on('message', (m) => {
    if (m.type !== 'go') return;
    cpuStart = process.cpuUsage();
    startBatch(shareOf(o.n, o.c, o.worker), () => {
      const cpu = process.cpuUsage(cpuStart);
      finished = true;
      const rss = process.memoryUsage().rss;
      const maxRss = process.resourceUsage().maxRSS * 1024; // KiB -> bytes
      const lat = Array.from(batch.latency).sort((a, b) => a - b);
      process.send({
        type: 'done', requests: batch.total, cpuUs: cpu.user + cpu.system, rss, maxRss,
        p50Us: percentile(lat, 50) * 1000, p99Us: percentile(lat, 99) * 1000,
      });
      socket.close();
    });
  });
  process.on('disconnect', () => process.exit(0)); // the coordinator is gone
}

// The p-th percentile of sorted values (nearest rank, as bench-util.c).
function percentile(sorted, p) {
  if (!sorted.length) return 0;
  return sorted[Math.min(sorted.length - 1, Math.round((p / 100) * (sorted.length - 1)))];
}

// Answers every server:request with its payload; reports once warm and
// when the last call of the run is answered.
function runInboundWorker(o, socket, fatal) {
  const warm = o.warmup;
  const goal = o.warmup + o.n;
  let calls = 0;
  let cpu0 = warm === 0 ? cpuNow() : 0;
  socket.on('server:request', (req) => {
    if (!req || typeof req.requestId !== 'string') return fatal(`bad server:request ${JSON.stringify(req)}`);
    socket.emit('server:response', { requestId: req.requestId, success: true, data: req.payload });
    if (++calls === warm) cpu0 = cpuNow();
    if (calls === goal) {
      const maxRss = process.resourceUsage().maxRSS * 1024;
      process.send({ type: 'done', requests: o.n, cpuUs: cpuNow() - cpu0, rss: process.memoryUsage().rss, maxRss });
    }
  });
  socket.on('connect_error', (e) => fatal(`connect_error: ${e.message}`));
  socket.on('connect', () => register(o, socket, fatal, () => process.send({ type: 'ready' })));
  process.on('disconnect', () => process.exit(0));
}

// ------------------------------------------------------------- control API

// A call to the dev server's /_dev API: resolves to [status, parsed body].
function devCall(o, path, body) {
  const http = require('http');
  return new Promise((resolve, reject) => {
    const req = http.request(o.url + path, {
      method: body === undefined ? 'GET' : 'POST',
      headers: { 'Content-Type': 'application/json' },
    }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { data += d; });
      res.on('end', () => {
        try {
          resolve([res.statusCode, JSON.parse(data)]);
        } catch (e) {
          reject(new Error(`bad JSON from ${path}: ${data.slice(0, 200)}`));
        }
      });
    });
    req.on('error', reject);
    if (body !== undefined) req.write(JSON.stringify(body));
    req.end();
  });
}

async function postBatch(o, payload) {
  const [status, r] = await devCall(o, '/_dev/server-request',
    { command: 'bench-echo', payload, count: o.k, timeoutMs: 20000 });
  const ok = status === 200 && r.answered === o.k &&
    r.results.every((x) => x.response && x.response.success === true && x.response.data.s === payload.s);
  if (!ok) throw new Error(`server-request batch failed (HTTP ${status}): ${JSON.stringify(r).slice(0, 300)}`);
}

// ------------------------------------------------------ in-process modes

function gcNow() {
  if (global.gc) {
    global.gc();
    global.gc();
  }
}

function runInProcess(o) {
  const socket = connect(o);
  const fail = (msg) => {
    process.stderr.write(`peer.js: ${msg}\n`);
    process.exit(1);
  };
  const deadline = setTimeout(() => fail(`not done within ${o.deadlineMs} ms`), o.deadlineMs);
  socket.on('connect_error', (e) => fail(`connect_error: ${e.message}`));
  socket.on('connect', () => register(o, socket, fail, async () => {
    try {
      if (o.mode === 'startup') {
        const us = Number(process.hrtime.bigint() - hrAtStart + (wallAtStartNs - o.sinceNs)) / 1000;
        process.stdout.write(`peer (startup): registered ${(us / 1000).toFixed(1)} ms after the start\n` +
          `RESULT tool=peer mode=startup start_to_ready_us=${Math.round(us)}\n`);
      } else {
        await new Promise((r) => setTimeout(r, 200));
        gcNow();
        const idle = process.memoryUsage().rss;
        const [, before] = await devCall(o, '/_dev/state');
        for (let i = 0; i < o.pending; i++) {
          socket.emit('daemon:request', { requestId: crypto.randomUUID(), command: 'never', payload: null });
        }
        for (;;) {
          const [, st] = await devCall(o, '/_dev/state');
          if (st.counters.requests >= before.counters.requests + o.pending) break;
          await new Promise((r) => setTimeout(r, 50));
        }
        gcNow();
        const after = process.memoryUsage().rss;
        const perPending = (after - idle) / o.pending;
        process.stdout.write(`peer (memory): idle RSS ${Math.round(idle / 1024)} KiB, ` +
          `${perPending.toFixed(0)} B per pending request (${o.pending})\n` +
          `RESULT tool=peer mode=memory idle_rss_kb=${Math.round(idle / 1024)} ` +
          `per_pending_b=${perPending.toFixed(0)} mem_pending=${o.pending}\n`);
      }
      clearTimeout(deadline);
      socket.close();
      process.exit(0);
    } catch (e) {
      fail(e.message);
    }
  }));
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
        if (o.mode === 'inbound') driveInbound().catch((e) => fail(e.message));
        else {
          sampleStart = o.samples.map((s) => procCpuUs(s.pid, o.clkTck));
          t0 = process.hrtime.bigint();
          for (const x of workers) x.send({ type: 'go' });
        }
      } else if (m.type === 'done') {
        results.push({ w, at: process.hrtime.bigint(), ...m });
        if (results.length === o.c) report();
      }
    });
  }

  async function driveInbound() {
    const payload = { i: 1, s: payloadString(o.payloadBytes) };
    for (let i = 0; i < o.warmup / o.k; i++) await postBatch(o, payload);
    sampleStart = o.samples.map((s) => procCpuUs(s.pid, o.clkTck));
    t0 = process.hrtime.bigint();
    for (let i = 0; i < o.n / o.k; i++) await postBatch(o, payload);
  }

  function report() {
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const ends = results.map((r) => Number(r.at - t0));
    const fairness = Math.min(...ends) > 0 ? Math.max(...ends) / Math.min(...ends) : 0;
    const p50 = Math.max(...results.map((r) => r.p50Us || 0));
    const p99 = Math.max(...results.map((r) => r.p99Us || 0));
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
      tool: 'peer', mode: o.mode, node: process.version, clients: o.c, n: requests, k: o.k,
      payload_bytes: o.payloadBytes, p50_us: p50.toFixed(1), p99_us: p99.toFixed(1),
      fairness: fairness.toFixed(3),
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
        `${o.mode}, ${o.c} client(s), ${requests} requests, ${o.k} in flight each: ` +
        `${fields.rps} req/s, clients CPU ${(cpuUs / requests).toFixed(1)} us/req, ` +
        `p50 ${fields.p50_us} us, p99 ${fields.p99_us} us, ` +
        `peak RSS ${fields.clients_maxrss_kb} KiB in all\n` +
        `RESULT ${Object.entries(fields).map(([k, v]) => `${k}=${v}`).join(' ')}\n`,
    );
    for (const w of workers) w.disconnect();
  }
}

const hrAtStart = process.hrtime.bigint();
const wallAtStartNs = BigInt(Date.now()) * 1000000n;
const opts = parseArgs(process.argv.slice(2));
if (opts.worker >= 0) runWorker(opts);
else if (opts.mode === 'memory' || opts.mode === 'startup') runInProcess(opts);
else runCoordinator(opts);
