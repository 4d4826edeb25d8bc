#!/usr/bin/env node
'use strict';
// Turns the `RESULT key=value ...` lines of bench-broker and peer.js (one
// per run, several runs per configuration) into the comparison table of
// run.sh: per number of services, the median of every figure over the
// runs, and the ratios ours/peer.
//
//   node report.js RESULTS_FILE [CONTEXT_LINE...]
//
// Conventions of the lines (run.sh passes the samples so): the broker run
// samples `broker` and `server`, the peer run samples `server`.

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
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

// The figures of one run, on the daemon side (what a node has to pay to
// give its services the session) and on the server side (for context).
function figures(r) {
  const f = {
    rps: r.rps,
    cpu: r.clients_cpu_us / r.n,
    clientsCpu: r.clients_cpu_us / r.n,
    rssKb: r.clients_maxrss_kb,
    clientsRssKb: r.clients_maxrss_kb,
    serverCpu: r.server_cpu_us >= 0 ? r.server_cpu_us / r.n : NaN,
  };
  if (r.tool === 'broker') {
    f.brokerCpu = r.broker_cpu_us / r.n;
    f.brokerRssKb = r.broker_hwm_kb;
    f.cpu += f.brokerCpu;
    f.rssKb += f.brokerRssKb;
  }
  return f;
}

function medians(runs) {
  const fs_ = runs.map(figures);
  const out = {};
  for (const k of Object.keys(fs_[0])) out[k] = median(fs_.map((f) => f[k]));
  return out;
}

const mib = (kb) => (kb / 1024).toFixed(1);
const pad = (s, n) => String(s).padEnd(n);
const lpad = (s, n) => String(s).padStart(n);

function row(label, rps, cpu, rss, server) {
  return `  ${pad(label, 30)}${lpad(rps, 12)}${lpad(cpu, 16)}${lpad(rss, 14)}${lpad(server, 16)}`.trimEnd();
}

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
  const configs = [...new Set(runs.map((r) => r.clients))].sort((a, b) => a - b);
  const first = runs[0];
  const out = [];
  out.push('volt-broker + libvoltclient  vs  one socket.io-client 4.8 per service');
  out.push(`${first.n} echo requests per run, split over the services; ${first.k} in flight per service;`);
  out.push(`payload {"i":n,"s":<${first.payload_bytes} chars>}; figures are medians over the runs.`);
  for (const line of context) out.push(line);
  for (const c of configs) {
    const ours = runs.filter((r) => r.clients === c && r.tool === 'broker');
    const peer = runs.filter((r) => r.clients === c && r.tool === 'peer');
    if (!ours.length || !peer.length) continue;
    const o = medians(ours);
    const p = medians(peer);
    out.push('');
    out.push(`== ${c} service${c > 1 ? 's' : ''} (${ours.length}+${peer.length} runs)`);
    out.push(row('', 'req/s', 'daemon CPU', 'daemon RSS', 'dev server CPU'));
    out.push(row('volt-broker + libvoltclient', Math.round(o.rps), `${o.cpu.toFixed(1)} us/req`,
      `${mib(o.rssKb)} MiB`, `${o.serverCpu.toFixed(1)} us/req`));
    out.push(row('  of which the broker', '', `${o.brokerCpu.toFixed(1)} us/req`, `${mib(o.brokerRssKb)} MiB`, ''));
    out.push(row(`  of which ${c} C client${c > 1 ? 's' : ''}`, '', `${o.clientsCpu.toFixed(1)} us/req`,
      `${mib(o.clientsRssKb)} MiB`, ''));
    out.push(row(`${c} node process${c > 1 ? 'es' : ''} (socket.io)`, Math.round(p.rps), `${p.cpu.toFixed(1)} us/req`,
      `${mib(p.rssKb)} MiB`, `${p.serverCpu.toFixed(1)} us/req`));
    out.push(row('ratio ours/peer', `${(o.rps / p.rps).toFixed(2)}x`, `${(o.cpu / p.cpu).toFixed(2)}x`,
      `${(o.rssKb / p.rssKb).toFixed(2)}x`, `${(o.serverCpu / p.serverCpu).toFixed(2)}x`));
  }
  out.push('');
  out.push('Per run (tool, services, req/s, daemon CPU us/req, daemon RSS MiB, dev server CPU us/req):');
  for (const r of runs) {
    const f = figures(r);
    out.push(`  ${pad(r.tool, 7)}${lpad(r.clients, 3)}${lpad(r.rps, 8)}${lpad(f.cpu.toFixed(1), 8)}` +
      `${lpad(mib(f.rssKb), 8)}${lpad(f.serverCpu.toFixed(1), 8)}`);
  }
  process.stdout.write(out.join('\n') + '\n');
}

main();
