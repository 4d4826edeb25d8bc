'use strict';
// A fake broker: a local peer on a Unix socket that speaks enough of the
// protocol to get a client ready (welcome, `connected`, results of the
// ops the broker answers itself, echo for requests) and then sends
// whatever a test tells it to: garbage, half frames, oversized lengths,
// frames of the wrong shape. It stands in for a broken broker, never for
// the VOLT server (the other tests use the real one).

const fs = require('fs');
const net = require('net');
const path = require('path');
const { encode } = require('@msgpack/msgpack');
const { ClusterDaemonClient } = require('..');
const { FrameReader } = require('../lib/frame');
const { Decoder } = require('@msgpack/msgpack');
const h = require('./helpers');

function frame(map) {
  const body = encode(map, { useBigInt64: true });
  const out = Buffer.alloc(4 + body.length);
  out.writeUInt32BE(body.length, 0);
  Buffer.from(body).copy(out, 4);
  return out;
}

class FakeBroker {
  /**
   * @param {object} [o]
   * @param {object} [o.welcome] fields merged into the welcome
   * @param {boolean} [o.ready] send `connected` after the welcome (default true)
   * @param {boolean} [o.answerHello] answer hello at all (default true)
   * @param {(conn, index) => void} [o.onReady] runs when a connection has
   *   its welcome (index counts connections from 0)
   * @param {(conn, frame) => boolean} [o.onFrame] sees every frame first;
   *   true means handled
   */
  constructor(o = {}) {
    this.o = o;
    this.dir = h.tempDir('fake');
    this.sock = path.join(this.dir, 'fake.sock');
    this.conns = [];
    this.frames = []; // every frame received, with the connection index
    this.server = net.createServer((s) => this.accept(s));
  }

  async start() {
    await new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.sock, resolve);
    });
    return this;
  }

  get hellos() {
    return this.frames.filter((f) => f.op === 'hello').length;
  }

  accept(socket) {
    const index = this.conns.length;
    const reader = new FrameReader(1 << 24);
    const decoder = new Decoder({ useBigInt64: true });
    const conn = {
      index,
      socket,
      send: (map) => socket.write(frame(map)),
      raw: (bytes) => socket.write(bytes),
      end: () => socket.end(),
    };
    this.conns.push(conn);
    socket.on('error', () => {});
    socket.on('data', (chunk) => {
      reader.push(chunk);
      for (let body = reader.next(); body !== null; body = reader.next()) {
        const f = decoder.decode(body);
        this.frames.push({ ...f, conn: index });
        if (this.o.onFrame && this.o.onFrame(conn, f)) continue;
        this.answer(conn, f);
      }
    });
  }

  answer(conn, f) {
    switch (f.op) {
      case 'hello':
        if (this.o.answerHello === false) return;
        conn.send({
          op: 'welcome', version: 2, max_frame: 16 * 1024 * 1024, name: 'fake-broker/0', state: 'ready',
          timeout_ms: 30000, max_timeout_ms: 300000, team_cluster_id: 'cluster-fake', reason: 'fake',
          ...(this.o.welcome || {}),
        });
        if (this.o.ready !== false) conn.send({ op: 'event', event: 'connected', state: 'ready', team_cluster_id: 'cluster-fake' });
        if (this.o.onReady) setImmediate(() => this.o.onReady(conn, conn.index));
        return;
      case 'credential':
        conn.send({ op: 'result', id: f.id, ok: true, data: 'fake-password' });
        return;
      case 'register':
      case 'unregister':
      case 'subscribe':
      case 'status':
        conn.send({ op: 'result', id: f.id, ok: true });
        return;
      case 'request':
        if (f.command === 'never') return;
        conn.send({ op: 'result', id: f.id, ok: true, data: f.payload });
        return;
      default:
    }
  }

  async stop() {
    for (const c of this.conns) c.socket.destroy();
    await new Promise((resolve) => this.server.close(resolve));
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

// A ClusterDaemonClient of the fake broker `fake`, reconnecting fast; it
// records its errors (c.errors) and its connected/disconnected events
// (c.events).
function fakeClient(fake, extra = {}) {
  const c = new ClusterDaemonClient({
    serverUrl: 'http://unused',
    controlSocketUrl: 'ws://unused/control',
    credentials: { teamClusterId: 'cluster-fake', daemonPassword: 'x' },
    brokerSocket: fake.sock,
    socket: { reconnectionDelay: 20, reconnectionDelayMax: 100, timeout: 3000 },
    ...extra,
  });
  c.errors = [];
  c.events = [];
  c.onError((e) => c.errors.push(e));
  c.onConnected(() => c.events.push('connected'));
  c.onDisconnected((r) => c.events.push(`disconnected: ${r}`));
  return c;
}

module.exports = { FakeBroker, frame, fakeClient };
