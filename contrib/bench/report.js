#!/usr/bin/env node
'use strict';
// Turns the `RESULT key=value ...` lines of bench-broker, peer.js and
// bench-floor (one per run, several runs per scenario; run.sh adds
// `scenario=NAME` in front) into the one table of run.sh: per scenario, the
// median of every figure over the runs, the ratio ours/peer, and the floor.
//
//   node report.js RESULTS_FILE [CONTEXT_LINE...]
//
// Conventions of the lines (run.sh passes the samples so): the broker runs
// sample `broker` and `server`, the peer runs sample `server`.

const fs = require('fs');

function parse(file) {
  const runs = [];
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (!line.startsWith('RESULT ')) continue;
    const r = {};
    for (const kv of line.slice(7).trim().split(/\s+/)) {
      const eq = kv.indexOf('=');
      const v = kv.slice(eq + 1);
      r[kv.slice(0, eq)] = /^-?\d+(\.\d+)?$/.test(v) ? Number(v) : v;
    }
    runs.push(r);
  }
  return runs;
}

function median(xs) {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!s.length) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

// The figures of one run. "daemon" is what a node pays to give its
// services the session: broker + C clients for ours, the Node processes
// for the peer, relay + its client for the floor.
function figures(r) {
  const per = (us) => (Number.isFinite(us) && us >= 0 ? us / r.n : NaN);
  const f = { rps: r.rps, p50: r.p50_us, p99: r.p99_us, fairness: r.fairness };
  if (r.tool === 'broker') {
    // The task clock (exact, main thread) where the kernel gave it, else
    // /proc's 10 ms ticks.
    const broker = r.broker_task_us >= 0 ? r.broker_task_us : r.broker_cpu_us;
    f.brokerCpu = per(broker);
    f.daemonCpu = per(r.clients_cpu_us + broker);
    f.syscalls = r.broker_syscalls >= 0 ? r.broker_syscalls / r.n : NaN;
    f.serverCpu = per(r.server_cpu_us);
  } else if (r.tool === 'peer') {
    f.daemonCpu = per(r.clients_cpu_us);
    f.serverCpu = per(r.server_cpu_us);
  } else if (r.tool === 'floor') {
    f.brokerCpu = per(r.floor_cpu_us);
    f.daemonCpu = per(r.floor_cpu_us + r.clients_cpu_us);
    f.syscalls = r.floor_syscalls >= 0 ? r.floor_syscalls / r.n : NaN;
  }
  for (const k of ['idle_rss_kb', 'per_client_b', 'per_pending_b', 'start_to_ready_us']) {
    if (r[k] !== undefined) f[k] = r[k];
  }
  return f;
}

function medians(runs) {
  if (!runs.length) return null;
  const fs_ = runs.map(figures);
  const out = { runs: runs.length };
  const keys = new Set(fs_.flatMap((f) => Object.keys(f)));
  for (const k of keys) out[k] = median(fs_.map((f) => f[k]));
  return out;
}

const pad = (s, n) => String(s).padEnd(n);
const lpad = (s, n) => String(s).padStart(n);
const fmt = (x, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '');
const ratio = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(2)}x` : '');

function row(label, ours, peer, rat, floor) {
  return `  ${pad(label, 34)}${lpad(ours, 12)}${lpad(peer, 12)}${lpad(rat, 9)}${lpad(floor, 10)}`.trimEnd();
}

// Scenarios in the order run.sh runs them, with what to print for each.
const SCENARIOS = [
  { name: 'b16-k100-c1', title: '16 B, K=100, 1 service', load: true },
  { name: 'b16-k100-c4', title: '16 B, K=100, 4 services', load: true, fairness: true },
  { name: 'b16k-k100-c1', title: '16 KiB, K=100, 1 service', load: true },
  { name: 'b16-k1-c1', title: '16 B, sequential (K=1), unpinned', load: true, latency: true },
  { name: 'b16-k1-c1-pinned', title: '16 B, sequential (K=1), all on CPU 0', load: true, latency: true },
  { name: 'inbound-k100', title: 'inbound dispatch (server -> handler -> answer), K=100, 16 B', load: true },
];

function main() {
  const [file, ...context] = process.argv.slice(2);
  if (!file) {
    process.stderr.write('usage: node report.js RESULTS_FILE [CONTEXT_LINE...]\n');
    process.exit(2);
  }
  const runs = parse(file);
  if (!runs.length) {
    process.stderr.write(`report.js: no RESULT lines in ${file}\n`);
    process.exit(1);
  }
  const out = [];
  const pick = (scenario, tool) => medians(runs.filter((r) => r.scenario === scenario && r.tool === tool));
  out.push('volt-broker + libvoltclient  vs  one socket.io-client 4.8 per service  vs  the floor relay');
  out.push('Medians over the runs; ratio = ours/peer (below 1 is better, but for req/s); floor =');
  out.push('bench-floor, a minimal relay (same server, same frames, same batching) in place of the broker.');
  for (const line of context) out.push(line);
  out.push('');
  out.push(row('', 'ours', 'peer', 'ratio', 'floor'));
  for (const sc of SCENARIOS) {
    const o = pick(sc.name, 'broker');
    const p = pick(sc.name, 'peer');
    const fl = pick(sc.name, 'floor');
    if (!o && !p) continue;
    const any = runs.find((r) => r.scenario === sc.name);
    out.push(`${sc.title} (n=${any.n}; ${o ? o.runs : 0}+${p ? p.runs : 0}${fl ? `+${fl.runs}` : ''} runs)`);
    const g = (m, k) => (m ? m[k] : NaN);
    out.push(row('req/s', fmt(g(o, 'rps'), 0), fmt(g(p, 'rps'), 0), ratio(g(o, 'rps'), g(p, 'rps')), fmt(g(fl, 'rps'), 0)));
    out.push(row('daemon CPU us/req', fmt(g(o, 'daemonCpu')), fmt(g(p, 'daemonCpu')),
      ratio(g(o, 'daemonCpu'), g(p, 'daemonCpu')), fmt(g(fl, 'daemonCpu'))));
    out.push(row('  broker CPU us/req (floor: relay)', fmt(g(o, 'brokerCpu')), '', '', fmt(g(fl, 'brokerCpu'))));
    out.push(row('  broker syscalls/req', fmt(g(o, 'syscalls'), 2), '', '', fmt(g(fl, 'syscalls'), 2)));
    if (sc.latency) {
      out.push(row('latency p50 us', fmt(g(o, 'p50')), fmt(g(p, 'p50')), ratio(g(o, 'p50'), g(p, 'p50')), fmt(g(fl, 'p50'))));
      out.push(row('latency p99 us', fmt(g(o, 'p99')), fmt(g(p, 'p99')), ratio(g(o, 'p99'), g(p, 'p99')), fmt(g(fl, 'p99'))));
    }
    if (sc.fairness) {
      out.push(row('fairness (last/first service done)', fmt(g(o, 'fairness'), 2), fmt(g(p, 'fairness'), 2), '', ''));
    }
    out.push(row('dev server CPU us/req (context)', fmt(g(o, 'serverCpu')), fmt(g(p, 'serverCpu')),
      ratio(g(o, 'serverCpu'), g(p, 'serverCpu')), ''));
  }
  // The same figures as ratios to the floor: how far the broker is from a
  // relay that does only what cannot be avoided (1.00x = at the floor).
  const against = [];
  for (const sc of SCENARIOS) {
    const o = pick(sc.name, 'broker');
    const fl = pick(sc.name, 'floor');
    const p = pick(sc.name, 'peer');
    if (!o || !fl) continue;
    const g = (m, k) => (m ? m[k] : NaN);
    let line = `  ${pad(sc.title, 40)} broker CPU ${lpad(ratio(g(o, 'brokerCpu'), g(fl, 'brokerCpu')), 6)}` +
      `  syscalls ${lpad(ratio(g(o, 'syscalls'), g(fl, 'syscalls')), 6)}`;
    if (p) {
      line += `  daemon/peer: ours ${lpad(ratio(g(o, 'daemonCpu'), g(p, 'daemonCpu')), 6)},` +
        ` floor ${lpad(ratio(g(fl, 'daemonCpu'), g(p, 'daemonCpu')), 6)}`;
    }
    if (sc.latency) line += `  p50 ${ratio(g(o, 'p50'), g(fl, 'p50'))}`;
    against.push(line.trimEnd());
  }
  if (against.length) {
    out.push('ours against the floor (medians of the same run; 1.00x = as cheap as the relay)');
    out.push(...against);
  }
  const om = pick('memory', 'broker');
  const pm = pick('memory', 'peer');
  const os_ = pick('startup', 'broker');
  const ps = pick('startup', 'peer');
  if (om || pm || os_ || ps) {
    const g = (m, k) => (m ? m[k] : NaN);
    out.push('memory and start-up (ours: the broker; peer: one Node service)');
    out.push(row('idle RSS MiB', fmt(g(om, 'idle_rss_kb') / 1024), fmt(g(pm, 'idle_rss_kb') / 1024),
      ratio(g(om, 'idle_rss_kb'), g(pm, 'idle_rss_kb')), ''));
    out.push(row('per client KiB (peer: a process)', fmt(g(om, 'per_client_b') / 1024),
      fmt(g(pm, 'idle_rss_kb'), 0), '', ''));
    out.push(row('per pending request B', fmt(g(om, 'per_pending_b'), 0), fmt(g(pm, 'per_pending_b'), 0),
      ratio(g(om, 'per_pending_b'), g(pm, 'per_pending_b')), ''));
    out.push(row('start to ready ms', fmt(g(os_, 'start_to_ready_us') / 1000), fmt(g(ps, 'start_to_ready_us') / 1000),
      ratio(g(os_, 'start_to_ready_us'), g(ps, 'start_to_ready_us')), ''));
  }
  out.push('');
  out.push('Per run (scenario, tool, req/s, daemon CPU us/req, broker or relay CPU us/req, syscalls/req, p50 us):');
  for (const r of runs) {
    if (r.mode === 'memory' || r.mode === 'startup') continue;
    const f = figures(r);
    out.push(`  ${pad(r.scenario, 17)}${pad(r.tool, 7)}${lpad(r.rps, 7)}${lpad(fmt(f.daemonCpu), 8)}` +
      `${lpad(fmt(f.brokerCpu), 8)}${lpad(fmt(f.syscalls, 2), 7)}${lpad(fmt(f.p50), 10)}`);
  }
  process.stdout.write(out.join('\n') + '\n');
}

main();
