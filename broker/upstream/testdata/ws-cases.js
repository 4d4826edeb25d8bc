#!/usr/bin/env node
'use strict';
// A WebSocket server that misbehaves on purpose, for test-ws.c: the
// Autobahn-style cases that apply to a client (fragmentation, control
// frames between fragments, invalid UTF-8, close codes, limits) and that a
// socket.io server never produces. Node's http module does the upgrade;
// every frame is written by hand so that any byte can be wrong.
//
//   node ws-cases.js         prints {"event":"listening","port":N}, then one
//                            JSON line per finished connection:
//   {"case":NAME,"closeCode":C|null,"closeBody":HEX|null,"pongs":[...],
//    "echo":true|false|null}
//
// The case is the request path: GET /case/NAME. After its script the server
// waits for the client's Close (answering it) or for the client to hang up,
// at most 5 s, then reports and ends the connection.

const crypto = require('crypto');
const http = require('http');

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

function frame(opcode, payload, { fin = true, rsv = 0, mask = false } = {}) {
  const data = Buffer.isBuffer(payload) ? payload : Buffer.from(payload || '');
  const len = data.length;
  const head = [((fin ? 0x80 : 0) | (rsv << 4) | opcode) & 0xff];
  if (len < 126) head.push((mask ? 0x80 : 0) | len);
  else if (len < 65536) head.push((mask ? 0x80 : 0) | 126, len >> 8, len & 0xff);
  else {
    head.push((mask ? 0x80 : 0) | 127, 0, 0, 0, 0);
    head.push((len >>> 24) & 0xff, (len >>> 16) & 0xff, (len >>> 8) & 0xff, len & 0xff);
  }
  if (!mask) return Buffer.concat([Buffer.from(head), data]);
  const key = crypto.randomBytes(4);
  const masked = Buffer.from(data);
  for (let i = 0; i < masked.length; i++) masked[i] ^= key[i & 3];
  return Buffer.concat([Buffer.from(head), key, masked]);
}

const TEXT = 0x1;
const BINARY = 0x2;
const CONT = 0x0;
const CLOSE = 0x8;
const PING = 0x9;
const PONG = 0xa;

// Set while a case is being made: whether its script sends a Close itself.
let scriptCloses = false;
function closeFrame(payload) {
  scriptCloses = true;
  return frame(CLOSE, payload);
}

function closeBody(code, reason = '') {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(code);
  return Buffer.concat([b, Buffer.isBuffer(reason) ? reason : Buffer.from(reason)]);
}

// A payload pattern the client can check: byte i is (i * 7) & 0xff.
function pattern(n) {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7) & 0xff;
  return b;
}

// Sends `msg` (a Buffer) in fragments of the given sizes, with extra frames
// (control frames) inserted after fragment k as `between[k]`.
function fragments(opcode, msg, sizes, between = {}) {
  const out = [];
  let at = 0;
  for (let k = 0; at < msg.length || k === 0; k++) {
    const n = Math.min(sizes[k % sizes.length], msg.length - at);
    const last = at + n >= msg.length;
    out.push(frame(k === 0 ? opcode : CONT, msg.subarray(at, at + n), { fin: last }));
    at += n;
    if (between[k]) out.push(between[k]);
    if (last) break;
  }
  return Buffer.concat(out);
}

// "κόσμε" as in Autobahn's UTF-8 cases (its ό is U+1F79, three bytes).
const kosme = Buffer.from([0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5]);

// Each case: `send` is what the server writes after the upgrade; `echo`
// (a Buffer) means the client is expected to send that message back.
const CASES = {
  fragments: () => ({
    send: Buffer.concat([
      fragments(TEXT, Buffer.from('Hello, fragmented world'), [1, 2, 3, 5],
        { 1: frame(PING, 'p1'), 2: frame(PONG, 'unsolicited'), 4: frame(PING, '') }),
      closeFrame(closeBody(1000, 'done')),
    ]),
  }),
  'binary-echo': () => {
    const msg = pattern(100000);
    return {
      send: fragments(BINARY, msg, [1, 16384, 30000, 65536], { 0: frame(PING, 'between') }),
      echo: msg,
    };
  },
  'big-frame-echo': () => {
    const msg = Buffer.from('x'.repeat(300000));
    return { send: frame(TEXT, msg), echo: msg };
  },
  'ping-125': () => ({ send: Buffer.concat([frame(PING, pattern(125)), closeFrame(closeBody(1000))]) }),
  'ping-126': () => ({ send: frame(PING, pattern(126)) }),
  rsv1: () => ({ send: frame(TEXT, 'compressed?', { rsv: 4 }) }),
  rsv3: () => ({ send: frame(BINARY, 'x', { rsv: 1 }) }),
  'opcode-3': () => ({ send: frame(3, 'x') }),
  'opcode-b': () => ({ send: frame(0xb, 'x') }),
  'continuation-first': () => ({ send: frame(CONT, 'x') }),
  'fragmented-ping': () => ({ send: frame(PING, 'x', { fin: false }) }),
  'text-inside-fragments': () => ({
    send: Buffer.concat([frame(TEXT, 'a', { fin: false }), frame(TEXT, 'b')]),
  }),
  'utf8-invalid': () => ({ send: frame(TEXT, Buffer.from([0xce, 0xba, 0xed, 0xa0, 0x80, 0x41])) }),
  'utf8-invalid-fragments': () => ({
    send: fragments(TEXT, Buffer.from([0x41, 0xe2, 0x82, 0x28, 0x42]), [2]),
  }),
  'utf8-split-valid': () => ({
    send: Buffer.concat([fragments(TEXT, kosme, [1]), closeFrame(closeBody(1000))]),
  }),
  'close-3000': () => ({ send: closeFrame(closeBody(3000, 'bye')) }),
  'close-empty': () => ({ send: closeFrame(Buffer.alloc(0)) }),
  'close-1004': () => ({ send: closeFrame(closeBody(1004)) }),
  'close-1-byte': () => ({ send: closeFrame(Buffer.from([0x03])) }),
  'close-invalid-reason': () => ({ send: closeFrame(closeBody(1000, Buffer.from([0xff, 0xfe]))) }),
  'message-after-close': () => ({
    send: Buffer.concat([frame(TEXT, 'before'), closeFrame(closeBody(1000)), frame(TEXT, 'after')]),
  }),
  masked: () => ({ send: frame(TEXT, 'masked', { mask: true }) }),
  'too-big': () => ({ send: frame(TEXT, 'y'.repeat(2000)) }),
  'too-big-fragments': () => ({ send: fragments(TEXT, Buffer.from('z'.repeat(1200)), [600]) }),
  drop: () => ({ send: frame(TEXT, 'last words'), drop: true }),
};

// Reads the client's frames (masked) from the socket.
function clientReader(onFrame) {
  let buf = Buffer.alloc(0);
  return (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    for (;;) {
      if (buf.length < 2) return;
      let len = buf[1] & 0x7f;
      let h = 2;
      if (len === 126) {
        if (buf.length < 4) return;
        len = buf.readUInt16BE(2);
        h = 4;
      } else if (len === 127) {
        if (buf.length < 10) return;
        len = Number(buf.readBigUInt64BE(2));
        h = 10;
      }
      const masked = (buf[1] & 0x80) !== 0;
      if (masked) h += 4;
      if (buf.length < h + len) return;
      const payload = Buffer.from(buf.subarray(h, h + len));
      if (masked) {
        const key = buf.subarray(h - 4, h);
        for (let i = 0; i < len; i++) payload[i] ^= key[i & 3];
      }
      onFrame({ fin: (buf[0] & 0x80) !== 0, opcode: buf[0] & 0x0f, masked, payload });
      buf = buf.subarray(h + len);
    }
  };
}

const server = http.createServer((req, res) => {
  res.writeHead(404);
  res.end();
});

server.on('upgrade', (req, socket) => {
  const name = (req.url.match(/^\/case\/([a-z0-9-]+)$/) || [])[1];
  const make = CASES[name];
  if (!make || req.headers['sec-websocket-version'] !== '13' || !req.headers['sec-websocket-key']) {
    socket.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n');
    return;
  }
  const accept = crypto.createHash('sha1').update(req.headers['sec-websocket-key'] + GUID).digest('base64');
  socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
    `Sec-WebSocket-Accept: ${accept}\r\n\r\n`);
  scriptCloses = false;
  const c = make();
  c.closes = scriptCloses;
  const result = { case: name, closeCode: null, closeBody: null, pongs: [], echo: c.echo ? false : null, unmasked: 0 };
  let reported = false;
  const report = () => {
    if (reported) return;
    reported = true;
    clearTimeout(timer);
    process.stdout.write(`${JSON.stringify(result)}\n`);
    socket.end();
  };
  const timer = setTimeout(report, 5000);
  let parts = [];
  socket.on('data', clientReader((f) => {
    if (!f.masked) result.unmasked++;
    if (f.opcode === PONG) result.pongs.push(f.payload.toString('hex'));
    else if (f.opcode === CLOSE) {
      result.closeBody = f.payload.toString('hex');
      result.closeCode = f.payload.length >= 2 ? f.payload.readUInt16BE(0) : null;
      // Answer a Close the client started (not the client's answer to ours).
      if (!c.closes) socket.write(frame(CLOSE, f.payload));
      report();
    } else if (f.opcode === TEXT || f.opcode === BINARY || f.opcode === CONT) {
      parts.push(f.payload);
      if (f.fin) {
        const msg = Buffer.concat(parts);
        parts = [];
        if (c.echo) {
          result.echo = msg.equals(c.echo);
          c.closes = true;
          socket.write(frame(CLOSE, closeBody(1000, 'echoed')));
        }
      }
    }
  }));
  socket.on('error', () => {});
  socket.on('close', report);
  socket.write(c.send);
  if (c.drop) setTimeout(() => socket.destroy(), 50);
});

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ event: 'listening', port: server.address().port })}\n`);
});
process.on('SIGTERM', () => process.exit(0));
