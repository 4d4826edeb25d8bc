// Captures real Engine.IO v4 / Socket.IO v5 WebSocket frames for the codec
// tests in broker/upstream (test-eio.c, test-sio.c). Never run by the build.
//
// How: a socket.io 4.8 server and socket.io-client 4.8 talk through a
// transparent `ws` proxy that logs every WebSocket message, both directions,
// byte-exact. Each text frame is annotated with what the reference parsers
// (engine.io-parser / socket.io-parser, shipped inside socket.io) make of it,
// so the C decoders are checked against the reference, not against our own
// reading of the spec.
//
// Regenerate (needs Node >= 18 and the npm registry), from the repo root:
//   mkdir -p /tmp/sio-capture && (cd /tmp/sio-capture && npm install \
//       socket.io@4.8 socket.io-client@4.8 ws@8)
//   NODE_PATH=/tmp/sio-capture/node_modules node broker/upstream/testdata/capture.js \
//       broker/upstream/testdata/corpus-sio > broker/upstream/testdata/frames-socketio-4.8.txt
//
// Output: the frames on stdout (format in the header it prints). With a
// directory argument it also writes the fuzz seeds capture-conn<N>-<side>
// there: one message per line, a binary one as 'B' + its bytes (the input
// format of fuzz-sio.c).
"use strict";

const http = require("http");
const { Server } = require("socket.io");
const { io } = require("socket.io-client");
const { WebSocketServer, WebSocket } = require("ws");
const { Decoder } = require("socket.io-parser");
const fs = require("fs");
const path = require("path");

const out = [];
function log(line) {
  out.push(line);
}

// What socket.io-parser reads in one Socket.IO text packet (EIO data after
// the "4"). decodeString is the parser's own routine (not public API, but
// stable since 4.0): type, attachments, nsp, id and the JSON payload.
function expectSio(str) {
  const p = new Decoder().decodeString(str);
  const att = p.attachments || 0;
  const id = p.id === undefined ? "-" : String(p.id);
  const data = p.data === undefined ? "-" : JSON.stringify(p.data);
  return `= sio ${p.type} ${att} ${p.nsp} ${id} ${data}`;
}

// Fuzz seeds: per connection, per direction, the messages as fuzz-sio reads them.
const seeds = [];
function seed(conn, dir, bytes) {
  const key = `capture-conn${conn}-${dir === "<" ? "server" : "client"}`;
  let s = seeds.find((x) => x.key === key);
  if (!s) seeds.push((s = { key, parts: [] }));
  s.parts.push(bytes);
}

function record(conn, dir, data, isBinary) {
  const bytes = Buffer.from(data);
  seed(conn, dir, isBinary ? Buffer.concat([Buffer.from("B"), bytes]) : bytes);
  if (isBinary) {
    log(`${dir} bin ${Buffer.from(data).toString("base64")}`);
    return;
  }
  const s = data.toString("utf8");
  if (/[\r\n]/.test(s)) throw new Error("text frame with a line break: " + s);
  log(`${dir} text ${s}`);
  const t = s.charAt(0);
  log(`= eio ${t}`);
  if (t === "0") {
    const h = JSON.parse(s.slice(1));
    log(`= hs ${h.sid} ${h.upgrades.length} ${h.pingInterval} ${h.pingTimeout} ${h.maxPayload}`);
  } else if (t === "4") {
    log(expectSio(s.slice(1)));
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  // --- the real server -----------------------------------------------------
  const httpServer = http.createServer();
  const server = new Server(httpServer, { pingInterval: 300, pingTimeout: 200 });
  const control = server.of("/control");
  control.use((socket, next) => {
    const auth = socket.handshake.auth || {};
    if (auth.daemonPassword === "secret") return next();
    const err = new Error("invalid credentials");
    err.data = { code: "SocketRegistrationFailed" };
    next(err);
  });
  const serverSockets = [];
  control.on("connection", (socket) => {
    serverSockets.push(socket);
    socket.on("daemon:register", (info, ack) => ack({ success: true }));
    socket.on("message", () => {});
    socket.on("blob", (...args) => {
      const ack = args[args.length - 1];
      if (typeof ack === "function")
        ack({ ok: true, echo: Buffer.from([0xde, 0xad, 0xbe, 0xef]) }); // BINARY_ACK
    });
    socket.on("plain", (x, ack) => ack()); // empty ACK
  });
  server.on("connection", (socket) => {
    socket.on("hello", (x, ack) => ack("world"));
    socket.on("bin", () => {});
  });
  await new Promise((r) => httpServer.listen(0, "127.0.0.1", r));
  const serverPort = httpServer.address().port;

  // --- the logging proxy ---------------------------------------------------
  const proxy = new WebSocketServer({ port: 0, host: "127.0.0.1" });
  await new Promise((r) => proxy.on("listening", r));
  const proxyPort = proxy.address().port;
  let conn = 0;
  proxy.on("connection", (down, req) => {
    const n = ++conn;
    log(`# connection ${n}: GET ${req.url}`);
    const up = new WebSocket(`ws://127.0.0.1:${serverPort}${req.url}`);
    const pending = [];
    up.on("open", () => pending.splice(0).forEach(([d, b]) => up.send(d, { binary: b })));
    down.on("message", (data, isBinary) => {
      record(n, ">", data, isBinary);
      if (up.readyState === WebSocket.OPEN) up.send(data, { binary: isBinary });
      else pending.push([data, isBinary]);
    });
    up.on("message", (data, isBinary) => {
      record(n, "<", data, isBinary);
      down.send(data, { binary: isBinary });
    });
    let closed = false;
    up.on("close", (code) => {
      if (!closed) log(`# connection ${n}: the server closed the WebSocket (code ${code})`);
      closed = true;
      down.close();
    });
    down.on("close", (code) => {
      if (!closed) log(`# connection ${n}: the client closed the WebSocket (code ${code})`);
      closed = true;
      up.close();
    });
  });

  const url = `http://127.0.0.1:${proxyPort}`;
  const opts = { transports: ["websocket"], reconnection: false };

  // --- session 1: a daemon that is accepted ---------------------------------
  const manager = io(url + "/control", { ...opts, auth: { teamClusterId: "cluster-abc123", daemonPassword: "secret" } });
  await new Promise((r, j) => { manager.on("connect", r); manager.on("connect_error", j); });
  const root = manager.io.socket("/"); // default namespace on the same connection
  // Manager.socket() connects by itself (autoConnect): no connect() here, or
  // the client sends a second CONNECT for "/".
  await new Promise((r) => root.on("connect", r));
  await root.emitWithAck("hello", "there");
  root.emit("bin", Buffer.from([0x42])); // BINARY_EVENT on the default namespace

  const reg = await manager.emitWithAck("daemon:register", {
    teamClusterId: "cluster-abc123",
    hostname: "node-7",
    version: "0.1.0",
    handlers: ["execute-plugin", "list-files"],
  });
  if (!reg.success) throw new Error("register failed");
  manager.emit("message", { type: "exposure-snapshot", data: { n: 1, s: "é ✓ \u0000" } });
  // Binary: several Buffers nested in objects and arrays, one empty.
  manager.emit("message", {
    type: "blob",
    data: { a: Buffer.from([1, 2, 3]), list: [Buffer.alloc(0), { b: Buffer.from("hello") }], n: 7 },
  });
  const bin = await manager.emitWithAck("blob", [Buffer.from([0, 255]), "x"], { c: Buffer.alloc(300, 0x5a) });
  if (!Buffer.isBuffer(bin.echo)) throw new Error("binary ack lost");
  await manager.emitWithAck("plain", 1);

  // Server-side emits: plain, binary, with ack (plain and binary answers).
  manager.on("server:request", (req, ack) => {
    if (typeof ack === "function") {
      if (req.binary) ack({ data: Buffer.from([9, 8, 7]) });
      else ack({ success: true });
    }
  });
  const s = serverSockets[0];
  s.emit("server:request", { requestId: "11111111-2222-4333-8444-555555555555", command: "list-files", payload: { dir: "/tmp" } });
  s.emit("message", { type: "file", data: Buffer.from("abc"), more: [Buffer.from([0]), Buffer.from([1])] });
  await s.timeout(2000).emitWithAck("server:request", { requestId: "a", command: "x" });
  await s.timeout(2000).emitWithAck("server:request", { requestId: "b", command: "y", binary: true });
  await s.timeout(2000).emitWithAck("server:request", { requestId: "c", blob: Buffer.from("xyz") }); // "451-/control,2..."
  s.emit("daemon:response", 42, null, "strings \"quoted\" and \\ backslash");

  await sleep(700); // let a couple of ping/pong rounds happen
  // Server disconnects the namespace: "41/control,"
  s.disconnect();
  await sleep(100);
  // Client leaves the default namespace: "41", then the connection closes.
  root.disconnect();
  await sleep(100);

  // --- session 2: refused (CONNECT_ERROR) ------------------------------------
  const bad = io(url + "/control", { ...opts, forceNew: true, auth: { teamClusterId: "c", daemonPassword: "wrong" } });
  await new Promise((r) => bad.on("connect_error", r));
  bad.close();
  await sleep(100);

  // --- session 3: server closes the whole connection --------------------------
  const third = io(url + "/control", { ...opts, forceNew: true, auth: { daemonPassword: "secret" } });
  await new Promise((r) => third.on("connect", r));
  await sleep(50);
  serverSockets[serverSockets.length - 1].disconnect(true);
  await sleep(200);

  const header = [
    "# Engine.IO v4 / Socket.IO v5 WebSocket frames captured from socket.io " + require("socket.io/package.json").version +
      " (server) and socket.io-client " + require("socket.io-client/package.json").version + ".",
    "# Generated by capture.js in this directory. Format, one item per line:",
    "#   < text <frame>      server -> client text message (the bytes, verbatim)",
    "#   > text <frame>      client -> server text message",
    "#   < bin <base64>      binary message (> for client -> server)",
    "#   = eio <type>        engine.io packet type of the frame above",
    "#   = hs <sid> <n_upgrades> <pingInterval> <pingTimeout> <maxPayload>   handshake",
    "#   = sio <type> <attachments> <nsp> <id|-> <JSON.stringify(data)|->   socket.io-parser's reading",
    "#   # comment",
  ];
  process.stdout.write(header.concat(out).join("\n") + "\n");
  const corpus = process.argv[2];
  if (corpus) {
    for (const s of seeds) {
      // A '\n' inside a message would split it in two for the fuzzer.
      const parts = s.parts.filter((p) => !p.includes(0x0a));
      fs.writeFileSync(path.join(corpus, s.key), Buffer.concat(parts.flatMap((p, i) => (i ? [Buffer.from("\n"), p] : [p]))));
    }
  }
  proxy.close();
  server.close();
  process.exit(0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
