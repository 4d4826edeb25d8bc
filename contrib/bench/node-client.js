#!/usr/bin/env node
'use strict';
// A Node service on @volt/broker-client (client-lib/node) against the same
// service on socket.io-client straight to the server (peer.js), in the same
// run, against the same real server (the socket.io 4.8 dev server): what
// each costs the Node processes, per request and per process.
//
//   node contrib/bench/node-client.js [--broker PATH] [-n N] [-k K] [-c "1 4"] [-r RUNS] [-b BYTES]
//
// It needs a built volt-broker (--broker, else $VOLT_BROKER_BIN, else
// build-bench/broker/volt-broker as contrib/bench/run.sh builds it) and the
// npm packages of contrib/bench (socket.io-client, for peer.js), of the dev
// server and of client-lib/node; `npm ci` runs where node_modules is missing.
// About a minute with the defaults on 2 cores.
//
// For each number of services C and each run, in alternating order:
//   ours: a fresh volt-broker (log level warn), C worker processes of this
//         script, each a ClusterDaemonClient: connect(), 500 warm-up
//         requests, then, released together, its share of N `echo`
//         sendCommand()s with K in flight, every answer checked (the payload
//         {"i":n,"s":...} back intact);
//   peer: peer.js with the same N, K, C and payload: C Node processes, each
//         with its own socket.io-client session, checked the same way.
// Measured over the timed phase only: the workers' own CPU
// (process.cpuUsage), the broker's and the dev server's (/proc/PID/stat);
// memory is each worker's peak RSS (resourceUsage().maxRSS). The table
// gives medians over the runs; the ratios are ours/peer (below 1: ours
// costs less). The broker's CPU is shown beside the Node processes' so the
// whole daemon side can be read too.

const childProcess = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const TOP = path.resolve(__dirname, '../..');
const BENCH = __dirname;
const SERVER_JS = path.join(TOP, 'contrib/volt-dev-server/server.js');
const PKG = path.join(TOP, 'client-lib/node');

const USAGE = `usage: node contrib/bench/node-client.js [options]
  --broker PATH   volt-broker binary (default $VOLT_BROKER_BIN, else build-bench/broker/volt-broker)
  -n N            echo requests per run, split over the services (default 20000)
  -k K            requests in flight per service (default 100)
  -c "C ..."      numbers of services to run (default "1 4")
  -r RUNS         runs of each side per number of services (default 3)
  -b BYTES        length of the string in each payload (default 16)
`;

function die(msg) {
  process.stderr.write(`node-client.js: ${msg}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const o = { broker: null, n: 20000, k: 100, configs: [1, 4], runs: 3, bytes: 16, worker: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-h' || a === '--help') {
      process.stdout.write(USAGE);
      process.exit(0);
    }
    const v = argv[++i];
    if (v === undefined) die(`${a} needs a value\n${USAGE}`);
    const int = () => {
      if (!/^\d+$/.test(v) || Number(v) < 1) die(`${a}: not a positive number: ${v}`);
      return Number(v);
    };
    if (a === '--broker') o.broker = v;
    else if (a === '-n') o.n = int();
    else if (a === '-k') o.k = int();
    else if (a === '-r') o.runs = int();
    else if (a === '-b') o.bytes = int();
    else if (a === '-c') {
      o.configs = v.trim().split(/\s+/).map(Number);
      if (o.configs.some((c) => !Number.isInteger(c) || c < 1 || c > 64)) die(`-c: services must be 1..64: ${v}`);
    } else if (a === '--worker') o.worker = JSON.parse(v);
    else die(`unknown option ${a}\n${USAGE}`);
  }
  return o;
}

function payloadString(bytes) {
  let s = '';
  for (let j = 0; j < bytes; j++) s += '0123456789abcdef'[j % 16];
  return s;
}

// ------------------------------------------------------------------ worker

// One service on @volt/broker-client. Talks to the coordinator over IPC:
// 'ready' after connect and warm-up, 'go' to start, 'done' with figures.
function runWorker(w) {
  const { ClusterDaemonClient } = require(PKG);
  const client = new ClusterDaemonClient({
    serverUrl: 'http://127.0.0.1',
    controlSocketUrl: 'ws://127.0.0.1/control',
    credentials: { teamClusterId: 'cluster-dev', daemonPassword: '' },
    brokerSocket: w.sock,
  });
  const str = payloadString(w.bytes);
  const fail = (msg) => process.send({ type: 'error', message: msg }, () => process.exit(1));

  // `total` echo requests, at most w.k in flight; done() after the last.
  function batch(total, done) {
    let sent = 0;
    let answered = 0;
    const next = () => {
      const i = sent++;
      client.sendCommand('echo', { i, s: str }).then(
        (data) => {
          if (!data || data.i !== i || data.s !== str) return fail(`request ${i}: wrong echo ${JSON.stringify(data).slice(0, 200)}`);
          answered++;
          if (sent < total) next();
          else if (answered === total) done();
          return undefined;
        },
        (e) => fail(`request ${i}: ${e.code}: ${e.message}`),
      );
    };
    while (sent < total && sent < w.k) next();
  }

  client.connect().then(
    () => batch(500, () => process.send({ type: 'ready' })),
    (e) => fail(`connect: ${e.code}: ${e.message}`),
  );
  process.on('message', (m) => {
    if (m.type !== 'go') return;
    const cpu0 = process.cpuUsage();
    batch(w.share, () => {
      const cpu = process.cpuUsage(cpu0);
      process.send({
        type: 'done', requests: w.share, cpuUs: cpu.user + cpu.system,
        rss: process.memoryUsage().rss, maxRss: process.resourceUsage().maxRSS * 1024,
      });
      client.disconnect();
    });
  });
  process.on('disconnect', () => process.exit(0));
}

// ------------------------------------------------------------- coordinator

const CLK_TCK = Number(childProcess.execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

function procCpuUs(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1e6) / CLK_TCK;
  } catch {
    return NaN;
  }
}

function waitFor(cond, ms, what) {
  const end = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const tick = () => {
      if (cond()) return resolve();
      if (Date.now() > end) return reject(new Error(`waited ${ms} ms for ${what}`));
      return setTimeout(tick, 50);
    };
    tick();
  });
}

function npmCi(dir, probe) {
  if (fs.existsSync(path.join(dir, 'node_modules', probe))) return;
  process.stderr.write(`npm ci in ${dir}\n`);
  childProcess.execFileSync('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: dir, stdio: 'inherit' });
}

async function startServer(tmp) {
  const proc = childProcess.spawn(process.execPath, [SERVER_JS, '--port', '0', '--quiet'], {
    stdio: ['ignore', 'pipe', fs.openSync(path.join(tmp, 'server.err'), 'w')],
  });
  let out = '';
  proc.stdout.on('data', (d) => { out += d; });
  await waitFor(() => /"port":\d+/.test(out), 15000, 'the dev server');
  return { proc, port: Number(/"port":(\d+)/.exec(out)[1]) };
}

async function startBroker(bin, tmp, port, tag) {
  const dir = path.join(tmp, `broker-${tag}`);
  fs.mkdirSync(dir);
  const sock = path.join(dir, 'broker.sock');
  fs.writeFileSync(path.join(dir, 'broker.json'), JSON.stringify({
    controlSocketUrl: `ws://127.0.0.1:${port}/control`,
    credentials: { teamClusterId: 'cluster-dev', daemonPassword: 'dev-password' },
    broker: { listen: sock, stateDir: path.join(dir, 'state'), logLevel: 'warn' },
  }));
  const log = fs.openSync(path.join(dir, 'broker.log'), 'w');
  const proc = childProcess.spawn(bin, ['--config', path.join(dir, 'broker.json')], { stdio: ['ignore', log, log] });
  await waitFor(() => fs.existsSync(sock), 15000, 'the broker socket');
  return { proc, sock };
}

async function stopProc(proc) {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const gone = new Promise((r) => proc.once('exit', r));
  proc.kill('SIGTERM');
  const t = setTimeout(() => proc.kill('SIGKILL'), 10000);
  await gone;
  clearTimeout(t);
}

function share(n, c, w) {
  return Math.floor(n / c) + (w < n % c ? 1 : 0);
}

// One run of ours with c services: figures of the timed phase.
async function runOurs(o, bin, tmp, server, c, tag) {
  const broker = await startBroker(bin, tmp, server.port, tag);
  const workers = [];
  try {
    let ready = 0;
    const results = [];
    let t0 = 0n;
    let sampled = null;
    const finished = new Promise((resolve, reject) => {
      for (let w = 0; w < c; w++) {
        const spec = { sock: broker.sock, k: o.k, bytes: o.bytes, share: share(o.n, c, w) };
        const child = childProcess.fork(__filename, ['--worker', JSON.stringify(spec)], { stdio: 'inherit' });
        workers.push(child);
        child.on('exit', (code) => {
          if (results.length < c && code !== 0) reject(new Error(`worker ${w} exited with ${code}`));
        });
        child.on('message', (m) => {
          if (m.type === 'error') reject(new Error(`worker ${w}: ${m.message}`));
          else if (m.type === 'ready' && ++ready === c) {
            sampled = { broker: procCpuUs(broker.proc.pid), server: procCpuUs(server.proc.pid) };
            t0 = process.hrtime.bigint();
            for (const x of workers) x.send({ type: 'go' });
          } else if (m.type === 'done') {
            results.push(m);
            if (results.length === c) resolve();
          }
        });
      }
    });
    const deadline = new Promise((_, reject) => setTimeout(() => reject(new Error('ours: not done within 120 s')), 120000).unref());
    await Promise.race([finished, deadline]);
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const brokerUs = procCpuUs(broker.proc.pid) - sampled.broker;
    const serverUs = procCpuUs(server.proc.pid) - sampled.server;
    return {
      tool: 'ours', c, rps: o.n / seconds,
      nodeUsPerReq: results.reduce((a, r) => a + r.cpuUs, 0) / o.n,
      brokerUsPerReq: brokerUs / o.n,
      serverUsPerReq: serverUs / o.n,
      maxRssPerProcMiB: results.reduce((a, r) => a + r.maxRss, 0) / c / 1048576,
    };
  } finally {
    for (const w of workers) if (w.connected) w.disconnect();
    await stopProc(broker.proc);
  }
}

// One run of peer.js with c services.
function runPeer(o, server, c) {
  const out = childProcess.execFileSync(process.execPath, [
    path.join(BENCH, 'peer.js'), '--url', `http://127.0.0.1:${server.port}`, '-n', String(o.n), '-k', String(o.k),
    '-c', String(c), '--payload-bytes', String(o.bytes), '--clk-tck', String(CLK_TCK), '--sample', `server=${server.proc.pid}`,
    '--deadline-ms', '120000',
  ], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  const line = out.split('\n').find((l) => l.startsWith('RESULT '));
  if (!line) throw new Error(`peer.js printed no RESULT line:\n${out}`);
  const f = Object.fromEntries(line.slice(7).trim().split(' ').map((kv) => kv.split('=')));
  const n = Number(f.n);
  return {
    tool: 'peer', c, rps: Number(f.rps),
    nodeUsPerReq: Number(f.clients_cpu_us) / n,
    brokerUsPerReq: 0,
    serverUsPerReq: Number(f.server_cpu_us) / n,
    maxRssPerProcMiB: (Number(f.clients_maxrss_kb) * 1024) / c / 1048576,
  };
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function report(o, rows, loadBefore, loadAfter) {
  const lines = [];
  const say = (s = '') => lines.push(s);
  const socketIoVersion = require(path.join(BENCH, 'node_modules/socket.io-client/package.json')).version;
  say(`@volt/broker-client over volt-broker  vs  socket.io-client ${socketIoVersion} per service (peer.js)`);
  say(`${o.n} echo requests per run, split over the services; ${o.k} in flight per service; payload {"i":n,"s":<${o.bytes} chars>};`);
  say(`figures are medians over ${o.runs} run(s) of each side; Node CPU is the service processes' own, per request.`);
  say(`machine: ${os.cpus().length} CPUs (${os.cpus()[0].model.trim()}), Linux ${os.release()}, node ${process.version};`);
  say(`load average (1/5/15 min) before: ${loadBefore}, after: ${loadAfter}.`);
  for (const c of o.configs) {
    const pick = (tool, key) => median(rows.filter((r) => r.tool === tool && r.c === c).map((r) => r[key]));
    const ours = {};
    const peer = {};
    for (const k of ['rps', 'nodeUsPerReq', 'brokerUsPerReq', 'serverUsPerReq', 'maxRssPerProcMiB']) {
      ours[k] = pick('ours', k);
      peer[k] = pick('peer', k);
    }
    say();
    say(`== ${c} service${c > 1 ? 's' : ''}`);
    say('                                        req/s   Node CPU/req   RSS/process   broker CPU/req   dev server CPU/req');
    const row = (name, r) => say(`  ${name.padEnd(34)}${r.rps.toFixed(0).padStart(8)}${`${r.nodeUsPerReq.toFixed(1)} us`.padStart(15)}${`${r.maxRssPerProcMiB.toFixed(1)} MiB`.padStart(14)}${(r.brokerUsPerReq ? `${r.brokerUsPerReq.toFixed(1)} us` : '-').padStart(17)}${`${r.serverUsPerReq.toFixed(1)} us`.padStart(21)}`);
    row('@volt/broker-client + broker', ours);
    row(`socket.io-client (peer.js)`, peer);
    say(`  ${'ratio ours/peer'.padEnd(34)}${`${(ours.rps / peer.rps).toFixed(2)}x`.padStart(8)}${`${(ours.nodeUsPerReq / peer.nodeUsPerReq).toFixed(2)}x`.padStart(15)}${`${(ours.maxRssPerProcMiB / peer.maxRssPerProcMiB).toFixed(2)}x`.padStart(14)}`);
    say(`  daemon side in all (Node + broker): ${(ours.nodeUsPerReq + ours.brokerUsPerReq).toFixed(1)} us/req against ${peer.nodeUsPerReq.toFixed(1)} us/req (${((ours.nodeUsPerReq + ours.brokerUsPerReq) / peer.nodeUsPerReq).toFixed(2)}x)`);
  }
  say();
  say('Per run (side, services, req/s, Node CPU us/req, RSS MiB/process, broker CPU us/req):');
  for (const r of rows) {
    say(`  ${r.tool.padEnd(5)} ${String(r.c).padStart(3)} ${r.rps.toFixed(0).padStart(8)} ${r.nodeUsPerReq.toFixed(1).padStart(7)} ${r.maxRssPerProcMiB.toFixed(1).padStart(7)} ${r.brokerUsPerReq.toFixed(1).padStart(7)}`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

async function main(o) {
  const bin = o.broker || process.env.VOLT_BROKER_BIN || path.join(TOP, 'build-bench/broker/volt-broker');
  if (!fs.existsSync(bin)) die(`no volt-broker at ${bin}: build it (contrib/bench/run.sh does) or pass --broker`);
  npmCi(BENCH, 'socket.io-client');
  npmCi(path.dirname(SERVER_JS), 'socket.io');
  npmCi(PKG, '@msgpack/msgpack');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'volt-node-bench-'));
  let server = null;
  const cleanup = () => {
    if (server) server.proc.kill('SIGKILL');
    fs.rmSync(tmp, { recursive: true, force: true });
  };
  process.on('SIGINT', () => {
    cleanup();
    process.exit(130);
  });
  try {
    server = await startServer(tmp);
    const loadBefore = os.loadavg().map((x) => x.toFixed(2)).join(' ');
    process.stderr.write('warming up the dev server\n');
    await runOurs({ ...o, n: 6000 }, bin, tmp, server, 1, 'warmup');
    runPeer({ ...o, n: 6000 }, server, 1);
    const rows = [];
    for (let r = 1; r <= o.runs; r++) {
      for (const c of o.configs) {
        process.stderr.write(`run ${r}/${o.runs}, ${c} service(s)\n`);
        const oursFirst = r % 2 === 1;
        if (oursFirst) rows.push(await runOurs(o, bin, tmp, server, c, `${r}-${c}`));
        rows.push(runPeer(o, server, c));
        if (!oursFirst) rows.push(await runOurs(o, bin, tmp, server, c, `${r}-${c}`));
      }
    }
    const loadAfter = os.loadavg().map((x) => x.toFixed(2)).join(' ');
    report(o, rows, loadBefore, loadAfter);
  } finally {
    if (server) await stopProc(server.proc);
    server = null;
    cleanup();
  }
}

const opts = parseArgs(process.argv.slice(2));
if (opts.worker) runWorker(opts.worker);
else main(opts).catch((e) => die(e.stack || String(e)));
