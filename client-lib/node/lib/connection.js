'use strict';
// One connection to the broker, from connect() to close: the Unix socket,
// hello/welcome, frames both ways, and the requests in flight on it.
//
// A connection is used once. When it ends, for whatever reason, every
// request in flight on it is completed with the reason (exactly once: an
// entry leaves the table before its callback runs) and the owner hears of
// it once through onClose. Reconnecting is the owner's business (client.js):
// it makes a new connection.
//
// Trust: the broker is a local peer like any other. Whatever it sends is
// checked before use: the framing (reader), the msgpack (the decoder
// refuses a body with bytes after the map, a `__proto__` key, a length
// that is a lie), and the type of every field used. Anything wrong ends the
// connection with an error naming what was wrong (BadFrame,
// FrameTooLarge); a connection that ends in the middle of a frame says so.
// An op this client does not know is ignored (a newer broker may send
// more), as are keys it does not know.
//
// Output is batched: frames made in one turn of the event loop (the next
// request sent from the previous one's result, say) are written with one
// write, on process.nextTick, after the caller's code has run.
//
// Deadlines: every request has a local one, a safety net for a broker that
// never answers (the broker answers COMMAND_TIMEOUT itself before it). One
// timer sweeps the table, only while something is in flight.

const net = require('net');
const { Decoder } = require('@msgpack/msgpack');
const { FrameReader, FrameError, frameOf } = require('./frame');
const { DaemonClientError } = require('./errors');

const PROTOCOL_VERSION = 2;
const HELLO_MAX_FRAME = 1 << 20; // what may come before the welcome says more
const HARD_MAX_FRAME = 256 * 1024 * 1024; // whatever a broker announces
const MAX_OUTPUT = 64 * 1024 * 1024; // bytes queued for the broker, not yet written
const SWEEP_MS = 250;

// Field types of the frames the broker sends: [name, type, required].
// 'int' is a number or (with ids beyond 2^53) a BigInt.
const SCHEMA = {
  welcome: [
    ['version', 'int', true],
    ['max_frame', 'int', true],
    ['state', 'string', true],
    ['timeout_ms', 'int', true],
    ['name', 'string', false],
    ['max_timeout_ms', 'int', false],
    ['team_cluster_id', 'string', false],
    ['reason', 'string', false],
    ['code', 'string', false],
    ['message', 'string', false],
  ],
  result: [
    ['id', 'int', true],
    ['ok', 'boolean', true],
    ['code', 'string', false],
    ['message', 'string', false],
    ['server_code', 'string', false],
  ],
  pong: [['id', 'int', true]],
  call: [
    ['id', 'int', true],
    ['command', 'string', true],
    ['timeout_ms', 'int', false],
  ],
  message: [['type', 'string', true]],
  event: [
    ['event', 'string', true],
    ['state', 'string', false],
    ['reason', 'string', false],
    ['code', 'string', false],
    ['message', 'string', false],
    ['team_cluster_id', 'string', false],
  ],
  error: [
    ['code', 'string', true],
    ['message', 'string', false],
    ['id', 'int', false],
    ['about', 'string', false],
  ],
};

function typeOk(v, type) {
  if (type === 'int') return (typeof v === 'number' && Number.isInteger(v) && v >= 0) || (typeof v === 'bigint' && v >= 0n);
  return typeof v === type;
}

/** Why a decoded frame is unusable, or null. */
function checkFrame(f) {
  if (typeof f !== 'object' || f === null || Array.isArray(f) || f instanceof Uint8Array) {
    return 'the frame is not a msgpack map';
  }
  if (typeof f.op !== 'string') return 'the frame has no string "op"';
  const schema = SCHEMA[f.op];
  if (!schema) return null;
  for (const [name, type, required] of schema) {
    const v = f[name];
    if (v === undefined || v === null) {
      if (required) return `"${f.op}" frame without "${name}"`;
    } else if (!typeOk(v, type)) {
      return `"${f.op}" frame with a ${typeof v} "${name}" (expected ${type})`;
    }
  }
  return null;
}

const int = (v) => (typeof v === 'bigint' ? Number(v) : v);

class BrokerConnection {
  /**
   * @param {object} o
   * @param {string} o.path broker socket
   * @param {string} o.name label in the broker's logs and status
   * @param {(frame: object) => void} o.onFrame every frame after the
   *   welcome but results of our requests
   * @param {(err: DaemonClientError) => void} o.onClose once, when the
   *   connection ends by itself (not by close())
   */
  constructor(o) {
    this.path = o.path;
    this.name = o.name;
    this.onFrame = o.onFrame;
    this.onClose = o.onClose;
    this.state = 'connecting'; // -> hello -> open -> closed
    this.welcome = null;
    this.reader = new FrameReader(HELLO_MAX_FRAME);
    // Integers that do not fit a uint32 come as BigInt, so ids are exact;
    // values.fromWire() decides what a payload shows.
    this.decoder = new Decoder({ useBigInt64: true });
    this.out = [];
    this.outBytes = 0;
    this.flushQueued = false;
    this.pending = new Map();
    this.nextId = 1;
    this.sweepTimer = null;
    this.socketError = null;
    this.brokerError = null; // the last `error` frame, which may explain a close
    this.onWelcome = null;
    this.welcomeTimer = null;
    this.socket = null;
  }

  /**
   * Connects and says hello; onWelcome(welcome) runs once the broker
   * answers. A failure before that goes to onClose, like any other end.
   */
  start(welcomeTimeoutMs, onWelcome) {
    this.onWelcome = onWelcome;
    const s = net.createConnection({ path: this.path });
    this.socket = s;
    s.on('connect', () => {
      this.state = 'hello';
      this.sendNow(frameOf({ op: 'hello', min_version: PROTOCOL_VERSION, max_version: PROTOCOL_VERSION, name: this.name }));
    });
    s.on('data', (chunk) => this.onData(chunk));
    s.on('error', (e) => {
      this.socketError = e;
    });
    s.on('close', () => this.finish(this.closeReason()));
    this.welcomeTimer = setTimeout(() => {
      this.fail('Timeout', `the broker at ${this.path} did not answer hello within ${welcomeTimeoutMs} ms`);
    }, welcomeTimeoutMs);
  }

  get isOpen() {
    return this.state === 'open';
  }

  // Why the socket closed, as the owner and the requests in flight hear it.
  closeReason() {
    const e = this.socketError;
    if (e && (e.code === 'ENOENT' || e.code === 'ECONNREFUSED')) {
      return new DaemonClientError('BrokerGone', `no broker at ${this.path}: is volt-broker running? set VOLT_BROKER_SOCKET`, { cause: e });
    }
    if (e && e.code === 'EACCES') {
      return new DaemonClientError('PermissionDenied', `no permission to connect to the broker at ${this.path} (${e.code})`, { cause: e });
    }
    if (e) return new DaemonClientError('BrokerGone', `the connection to the broker at ${this.path} failed: ${e.message}`, { cause: e });
    if (this.reader.buffered > 0) {
      return new DaemonClientError('BadFrame', `the broker at ${this.path} closed the connection in the middle of a frame (${this.reader.describePartial()})`);
    }
    if (this.brokerError) {
      const b = this.brokerError;
      return new DaemonClientError(b.code, `the broker at ${this.path} closed the connection: ${b.code}: ${b.message || ''}`);
    }
    return new DaemonClientError('BrokerGone', `the broker at ${this.path} closed the connection`);
  }

  onData(chunk) {
    if (this.state === 'closed') return;
    this.reader.push(chunk);
    for (;;) {
      let body;
      try {
        body = this.reader.next();
      } catch (e) {
        if (e instanceof FrameError) return this.fail(e.code, `${e.message} (from ${this.path})`);
        throw e;
      }
      if (body === null) return;
      let frame;
      try {
        frame = this.decoder.decode(body);
      } catch (e) {
        return this.fail('BadFrame', `the broker at ${this.path} sent a frame that is not valid msgpack: ${e.message}`);
      }
      const bad = checkFrame(frame);
      if (bad) return this.fail('BadFrame', `the broker at ${this.path} sent a bad frame: ${bad}`);
      this.dispatch(frame);
      if (this.state === 'closed') return;
    }
  }

  dispatch(f) {
    switch (f.op) {
      case 'welcome': {
        if (this.state !== 'hello') return this.fail('BadFrame', `the broker at ${this.path} sent a second welcome`);
        if (int(f.version) !== PROTOCOL_VERSION) {
          return this.fail('VersionMismatch', `the broker at ${this.path} chose protocol version ${f.version}; this client speaks ${PROTOCOL_VERSION}`);
        }
        clearTimeout(this.welcomeTimer);
        this.welcomeTimer = null;
        this.welcome = {
          maxFrame: Math.min(int(f.max_frame), HARD_MAX_FRAME),
          timeoutMs: int(f.timeout_ms),
          maxTimeoutMs: f.max_timeout_ms === undefined ? 0 : int(f.max_timeout_ms),
          teamClusterId: f.team_cluster_id || '',
          state: f.state,
          reason: f.reason || '',
          code: f.code,
          message: f.message,
          name: f.name || '',
        };
        this.reader.maxFrame = this.welcome.maxFrame;
        this.state = 'open';
        const cb = this.onWelcome;
        this.onWelcome = null;
        cb(this.welcome);
        return;
      }
      case 'error':
        this.brokerError = f;
        if (this.state === 'open') this.onFrame(f);
        return;
      case 'result':
      case 'pong': {
        const entry = this.pending.get(int(f.id));
        if (entry === undefined) return; // expired locally, or never ours
        this.pending.delete(int(f.id));
        entry.cb(null, f);
        return;
      }
      default:
        if (this.state !== 'open') {
          return this.fail('BadFrame', `the broker at ${this.path} sent "${f.op}" before its welcome`);
        }
        this.onFrame(f);
    }
  }

  /** Bytes of output not yet written to the socket. */
  get backlog() {
    return this.outBytes + (this.socket ? this.socket.writableLength : 0);
  }

  /**
   * Queues a frame (a map in wire form). Throws DaemonClientError when it
   * is over the broker's max_frame (PayloadTooLarge) or the output is full
   * (LimitExceeded); the frame is then not sent.
   */
  send(map) {
    this.sendEncoded(frameOf(map));
  }

  sendEncoded(buf) {
    if (this.state === 'closed') throw new DaemonClientError('BrokerGone', 'the connection to the broker is closed');
    const max = this.welcome ? this.welcome.maxFrame : HELLO_MAX_FRAME;
    if (buf.length - 4 > max) {
      throw new DaemonClientError('PayloadTooLarge', `the frame would be ${buf.length - 4} bytes, over the broker's max_frame of ${max}`);
    }
    if (this.backlog + buf.length > MAX_OUTPUT) {
      throw new DaemonClientError('LimitExceeded', `${this.backlog} bytes already wait to be written to the broker (limit ${MAX_OUTPUT})`);
    }
    this.out.push(buf);
    this.outBytes += buf.length;
    if (!this.flushQueued) {
      this.flushQueued = true;
      process.nextTick(() => this.flush());
    }
  }

  sendNow(buf) {
    this.socket.write(buf);
  }

  flush() {
    this.flushQueued = false;
    if (this.state === 'closed' || this.out.length === 0) return;
    const data = this.out.length === 1 ? this.out[0] : Buffer.concat(this.out, this.outBytes);
    this.out = [];
    this.outBytes = 0;
    this.socket.write(data);
  }

  /**
   * Sends a frame that the broker answers with a result under its id (set
   * here). cb(err, resultFrame) runs exactly once: with the result, or with
   * a DaemonClientError when the connection ends first (the close reason)
   * or the local deadline passes (code Timeout). Throws as send() does,
   * and then cb never runs.
   */
  request(map, deadlineMs, cb) {
    let id = this.nextId;
    while (this.pending.has(id)) id = id >= 0x7fffffff ? 1 : id + 1;
    this.nextId = id >= 0x7fffffff ? 1 : id + 1;
    map.id = id;
    this.send(map);
    this.pending.set(id, { cb, deadline: Date.now() + deadlineMs, deadlineMs });
    if (this.sweepTimer === null) this.armSweep();
    return id;
  }

  armSweep() {
    this.sweepTimer = setTimeout(() => this.sweep(), SWEEP_MS);
    this.sweepTimer.unref();
  }

  sweep() {
    this.sweepTimer = null;
    const now = Date.now();
    for (const [id, entry] of this.pending) {
      if (entry.deadline <= now) {
        this.pending.delete(id);
        entry.cb(new DaemonClientError('Timeout', `the broker did not answer within ${entry.deadlineMs} ms`));
      }
    }
    if (this.pending.size > 0 && this.state !== 'closed') this.armSweep();
  }

  fail(code, message) {
    if (this.state === 'closed') return;
    this.finish(new DaemonClientError(code, message));
  }

  /** Ends the connection; requests in flight get `err` (default BrokerGone). */
  close(err) {
    this.finish(err || new DaemonClientError('BrokerGone', 'the client closed its connection to the broker'), true);
  }

  finish(err, byOwner = false) {
    if (this.state === 'closed') return;
    this.state = 'closed';
    clearTimeout(this.welcomeTimer);
    clearTimeout(this.sweepTimer);
    this.sweepTimer = null;
    this.out = [];
    this.outBytes = 0;
    if (this.socket) this.socket.destroy();
    const pending = this.pending;
    this.pending = new Map();
    for (const entry of pending.values()) entry.cb(err);
    if (!byOwner) this.onClose(err);
  }
}

module.exports = { BrokerConnection, checkFrame, PROTOCOL_VERSION, HARD_MAX_FRAME };
