#!/usr/bin/env node
'use strict';
// volt-dev-server: a development/test VOLT server for volt-broker.
// A real socket.io server speaking the contract in volt-upstream-protocol.md,
// plus a /_dev/ HTTP control API so tests can script it and read what it saw.

const fs = require('fs');
const http = require('http');
const https = require('https');
const { Server } = require('socket.io');
const { State, toMarkers } = require('./lib/state');
const { Volt } = require('./lib/volt');
const { createHandler } = require('./lib/http-api');

const USAGE = `usage: node server.js [options]

  --host ADDR            listen address (default 127.0.0.1)
  --port N               listen port (default 8080; 0 = ephemeral)
  --port-file PATH       also write the bound port to PATH (atomically)
  --tls-cert FILE        serve HTTPS/WSS with this PEM certificate ...
  --tls-key FILE         ... and this PEM private key
  --cluster ID           accepted teamClusterId (default cluster-dev)
  --password PW          accepted daemonPassword (default dev-password)
  --token TOK            valid enrollment token, single use; repeatable
                         (default: one token, tok-dev)
  --rotate / --no-rotate return a new random password on enrollment and
                         accept only that one afterwards (default: rotate)
  --namespace NSP        socket.io namespace (default /control)
  --path PATH            Engine.IO path (default /socket.io/)
  --ping-interval MS     Engine.IO ping interval (default 25000)
  --ping-timeout MS      Engine.IO ping timeout (default 20000)
  --max-payload BYTES    socket.io maxHttpBufferSize (default 1e6)
  --recovery MS          connection state recovery: keep a dropped daemon's
                         session for MS and replay what was sent to it
                         (socket.io 4.6+; off by default)
  --log                  print every event (traffic included), one line each
  --quiet                print only the "listening" JSON line
  -h, --help             this text

On listen, one JSON line goes to stdout: {"event":"listening","port":N,"tls":B}.
Control API under /_dev/ (state, events, credentials, server-request, message,
emit, disconnect, behavior, reset): see README.md.
`;

function usageError(msg) {
  process.stderr.write(`volt-dev-server: ${msg}\n\n${USAGE}`);
  process.exit(2);
}

function parseArgs(argv) {
  const cfg = {
    host: '127.0.0.1', port: 8080, portFile: null, tlsCert: null, tlsKey: null,
    cluster: 'cluster-dev', password: 'dev-password', tokens: [], rotate: true,
    namespace: '/control', path: '/socket.io/', pingInterval: 25000,
    pingTimeout: 20000, maxPayload: 1e6, logLevel: 'normal', recovery: 0,
  };
  const valued = {
    '--host': 'host', '--port': 'port', '--port-file': 'portFile',
    '--tls-cert': 'tlsCert', '--tls-key': 'tlsKey', '--cluster': 'cluster',
    '--password': 'password', '--token': 'tokens', '--namespace': 'namespace',
    '--path': 'path', '--ping-interval': 'pingInterval',
    '--ping-timeout': 'pingTimeout', '--max-payload': 'maxPayload', '--recovery': 'recovery',
  };
  const numeric = new Set(['port', 'pingInterval', 'pingTimeout', 'maxPayload', 'recovery']);
  for (let i = 0; i < argv.length; i++) {
    let arg = argv[i];
    let value;
    const eq = arg.indexOf('=');
    if (arg.startsWith('--') && eq > 0) {
      value = arg.slice(eq + 1);
      arg = arg.slice(0, eq);
    }
    if (arg === '-h' || arg === '--help') {
      process.stdout.write(USAGE);
      process.exit(0);
    }
    const flags = { '--rotate': ['rotate', true], '--no-rotate': ['rotate', false],
      '--log': ['logLevel', 'log'], '--quiet': ['logLevel', 'quiet'] };
    if (flags[arg]) {
      if (value !== undefined) usageError(`${arg} takes no value`);
      cfg[flags[arg][0]] = flags[arg][1];
      continue;
    }
    const key = valued[arg];
    if (!key) usageError(`unknown option ${arg}`);
    if (value === undefined) {
      if (i + 1 >= argv.length) usageError(`${arg} needs a value`);
      value = argv[++i];
    }
    if (numeric.has(key)) {
      const n = Number(value); // Number() so that 1e6 works for --max-payload
      if (value.trim() === '' || !Number.isFinite(n) || n < 0) usageError(`${arg}: not a number: ${value}`);
      cfg[key] = n;
    } else if (key === 'tokens') {
      cfg.tokens.push(value);
    } else {
      cfg[key] = value;
    }
  }
  if (cfg.tokens.length === 0) cfg.tokens.push('tok-dev');
  if (!Number.isInteger(cfg.port) || cfg.port > 65535) usageError('--port must be 0..65535');
  if (!cfg.namespace.startsWith('/')) usageError('--namespace must start with /');
  if (!cfg.path.startsWith('/')) usageError('--path must start with /');
  if (Boolean(cfg.tlsCert) !== Boolean(cfg.tlsKey)) usageError('--tls-cert and --tls-key go together');
  cfg.tls = Boolean(cfg.tlsCert);
  return cfg;
}

// Event kinds printed without --log: the session lifecycle, not the traffic.
const LIFECYCLE = new Set(['enroll', 'connect', 'connect_error', 'register',
  'register_refused', 'disconnect']);

// Shortens a value for a log line: binaries become <bin N bytes> and long
// JSON is cut, so a demo's output stays readable.
function brief(v) {
  const s = JSON.stringify(toMarkers(v), (k, x) => (
    x && typeof x === 'object' && typeof x.$bin === 'string' && Object.keys(x).length === 1
      ? `<bin ${Buffer.from(x.$bin, 'base64').length} bytes>` : x));
  if (s === undefined) return 'undefined';
  return s.length > 200 ? `${s.slice(0, 197)}...` : s;
}

class Logger {
  constructor(level) {
    this.level = level;
  }

  line(text) {
    if (this.level !== 'quiet') process.stdout.write(`${text}\n`);
  }

  event(ev) {
    if (this.level === 'quiet' || (this.level === 'normal' && !LIFECYCLE.has(ev.kind))) return;
    const { seq, t, kind, ...rest } = ev;
    const parts = Object.entries(rest)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k}=${typeof v === 'string' ? v : brief(v)}`);
    this.line(`${t.slice(11, 23)} #${seq} ${kind} ${parts.join(' ')}`);
  }
}

function writePortFile(file, port) {
  const tmp = `${file}.tmp.${process.pid}`;
  fs.writeFileSync(tmp, `${port}\n`);
  fs.renameSync(tmp, file);
}

function main() {
  // A test harness may close its end of our stdout after reading the
  // "listening" line; EPIPE must then silence the log, not kill the server.
  process.stdout.on('error', () => {
    process.stdout.write = () => true;
  });
  const cfg = parseArgs(process.argv.slice(2));
  const logger = new Logger(cfg.logLevel);
  const state = new State(cfg, logger);

  let tlsOptions = null;
  if (cfg.tls) {
    try {
      tlsOptions = { cert: fs.readFileSync(cfg.tlsCert), key: fs.readFileSync(cfg.tlsKey) };
    } catch (e) {
      usageError(`cannot read TLS files: ${e.message}`);
    }
  }
  // The HTTP handler must be installed before socket.io attaches: engine.io
  // then forwards it only the requests outside its own path.
  let handler = null;
  const onRequest = (req, res) => handler(req, res);
  const server = tlsOptions ? https.createServer(tlsOptions, onRequest) : http.createServer(onRequest);
  const io = new Server(server, {
    path: cfg.path,
    serveClient: false,
    pingInterval: cfg.pingInterval,
    pingTimeout: cfg.pingTimeout,
    maxHttpBufferSize: cfg.maxPayload,
    // Sessions are kept for a dropped daemon, and what is broadcast to its
    // room is replayed when it comes back with its pid and last offset.
    ...(cfg.recovery > 0
      ? { connectionStateRecovery: { maxDisconnectionDuration: cfg.recovery, skipMiddlewares: true } }
      : {}),
  });
  const volt = new Volt(io, state, cfg);
  handler = createHandler({ state, volt, cfg });

  server.on('error', (e) => {
    process.stderr.write(`volt-dev-server: ${e.message}\n`);
    process.exit(1);
  });
  server.listen(cfg.port, cfg.host, () => {
    const { port } = server.address();
    // Always printed, even with --quiet: tests started with --port 0 read it.
    process.stdout.write(`${JSON.stringify({ event: 'listening', port, tls: cfg.tls })}\n`);
    if (cfg.portFile) writePortFile(cfg.portFile, port);
  });

  let closing = false;
  const shutdown = (signal) => {
    if (closing) return;
    closing = true;
    logger.line(`shutting down (${signal})`);
    volt.close();
    state.wakeAll();
    // io.close() disconnects every socket and closes the HTTP server; the
    // connections still open after that (keep-alive, a "hang" enrollment)
    // would keep close() from finishing, so they are cut.
    if (cfg.portFile) fs.rmSync(cfg.portFile, { force: true });
    io.close(() => process.exit(0));
    // setImmediate: let the woken long-polls write their answers first.
    setImmediate(() => server.closeAllConnections && server.closeAllConnections());
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

main();
