'use strict';
// ClusterDaemonClient: the seed's API (@voltstack/daemon-cluster-client),
// over a local volt-broker instead of a socket.io session of its own.
//
// What is whose
// -------------
// The broker owns the upstream session: enrollment, the socket.io
// connection, registration, heartbeats, reconnecting to the server. This
// client owns what the service sees of it: its handlers and its
// subscription (client state, announced again on every connection to the
// broker), its requests in flight (connection state: they end with the
// connection), and one connection to the broker, made again with backoff
// whenever it is lost.
//
// Readiness
// ---------
// isReady() is true, and onConnected has fired, when all of these hold:
// the connection to the broker is open, the broker said the upstream is
// registered and ready (`connected`, or a welcome in state `ready`
// followed by it), this connection's handlers and subscription are
// announced, and the credentials that came with `connected` are read (the
// team cluster id rides on the event, the daemon password is asked for
// with `credential`, since enrollment may have just rotated it). Losing
// any of these (an upstream `disconnected`, the broker connection) makes
// it false and fires onDisconnected(reason), once per onConnected.
//
// connect()
// ---------
// Resolves when ready. Rejects with the seed's codes: at once when the
// broker cannot be reached at all, or refuses us, or serves another team
// cluster; at once when the upstream is `failed` (final, e.g. a refused
// enrollment token); otherwise at the deadline (socket.timeout, 20000 ms
// as in socket.io-client) with the upstream's last error, when there was
// one. A connect() that fails leaves the client stopped (nothing keeps the
// process alive); one that succeeds leaves it reconnecting on its own
// until disconnect().
//
// The protocol sends no event when an upstream that was never ready goes
// to `failed` (only an `error` event, carrying the state before); so after
// each upstream error while connect() waits, the client asks `status`
// whether the state is now `failed`.

const path = require('path');
const { BrokerConnection } = require('./connection');
const { DaemonClientError } = require('./errors');
const { Backoff } = require('./backoff');
const { frameOf } = require('./frame');
const { resolveSocketPath } = require('./socket-path');
const { toWire, fromWire, ValueError } = require('./values');

const DEFAULT_CONNECT_TIMEOUT = 20000; // socket.io-client's `timeout`
const WELCOME_TIMEOUT = 10000; // one attempt: socket connect + hello/welcome
const LOCAL_TIMEOUT = 10000; // ops the broker answers itself
const GRACE = 1000; // after a command's timeout, before our own deadline
const MAX_EMIT_BUFFER = 16 * 1024 * 1024; // emits kept while the broker is away
const NAME_MAX = 256; // command and message type names, in UTF-8 bytes
const CODE_MAX = 64; // error codes in replies

// 1..max bytes of UTF-8 without control characters (PROTOCOL.md).
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;
function nameProblem(s, max) {
  if (typeof s !== 'string' || s.length === 0) return 'must be a non-empty string';
  if (Buffer.byteLength(s, 'utf8') > max) return `must be at most ${max} bytes of UTF-8`;
  if (CONTROL.test(s)) return 'must not contain control characters';
  return null;
}

function positiveOr(v, dflt) {
  return typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : dflt;
}

function fromValueError(e, fallbackCode) {
  if (e instanceof DaemonClientError) return e;
  if (e instanceof ValueError) return new DaemonClientError(e.code, e.message);
  return new DaemonClientError(fallbackCode, e && e.message ? e.message : String(e), { cause: e });
}

class ClusterDaemonClient {
  /**
   * @param {import('../index').ClusterDaemonClientOptions} options
   */
  constructor(options) {
    if (options === null || typeof options !== 'object') {
      throw new TypeError('ClusterDaemonClient: options must be an object');
    }
    const creds = options.credentials || {};
    const sock = options.socket || {};
    this._options = options;
    this._configuredTeam = typeof creds.teamClusterId === 'string' ? creds.teamClusterId : '';
    this._teamClusterId = this._configuredTeam;
    this._password = typeof creds.daemonPassword === 'string' ? creds.daemonPassword : undefined;
    this._passwordError = null;
    this._brokerSocket = options.brokerSocket;
    this._bigInt = options.bigInt === true;
    this._connectTimeout = positiveOr(sock.timeout, DEFAULT_CONNECT_TIMEOUT);
    this._reconnect = sock.reconnection !== false;
    this._backoff = new Backoff({
      min: positiveOr(sock.reconnectionDelay, 1000),
      max: positiveOr(sock.reconnectionDelayMax, 5000),
      jitter: typeof sock.randomizationFactor === 'number' ? sock.randomizationFactor : 0.5,
    });
    this._commandTimeout = positiveOr(options.commandTimeout, 0);
    this._name = path.basename(process.argv[1] || process.argv0 || 'node');

    this._handlers = new Map();
    this._listeners = { message: [], connected: [], disconnected: [], error: [] };
    this._running = false; // connect() was called and neither failed nor disconnect() since
    this._path = null;
    this._conn = null;
    this._welcomed = false; // some connection of this run reached the welcome
    this._setupPending = 0; // register/subscribe results still awaited on this connection
    this._upstreamReady = false; // the broker said `connected`
    this._credentialPending = false;
    this._ready = false;
    this._upstream = { state: 'unknown', reason: '' };
    this._brokerTimeoutMs = 30000;
    this._maxTimeoutMs = 0;
    this._lastError = null; // the upstream's last error since it was ready
    this._connecting = null; // {promise, resolve, reject, timer, startedHere}
    this._reconnectTimer = null;
    this._lastReported = '';
    this._emitBuffer = [];
    this._emitBufferBytes = 0;
  }

  // ------------------------------------------------------------ lifecycle

  connect() {
    if (this._ready) return Promise.resolve();
    if (this._connecting) return this._connecting.promise;
    const c = { startedHere: !this._running };
    c.promise = new Promise((resolve, reject) => {
      c.resolve = resolve;
      c.reject = reject;
    });
    c.timer = setTimeout(() => this._connectDeadline(), this._connectTimeout);
    this._connecting = c;
    if (!this._running) {
      this._running = true;
      this._welcomed = false;
      this._lastError = null;
      this._lastReported = '';
      this._backoff.reset();
      this._path = resolveSocketPath(this._brokerSocket);
      this._open(Math.min(WELCOME_TIMEOUT, this._connectTimeout));
    }
    return c.promise;
  }

  disconnect() {
    const wasReady = this._ready;
    this._stop(new DaemonClientError('SOCKET_NOT_READY', 'disconnect() was called'));
    this._settleConnect(new DaemonClientError('SocketConnectionFailed', 'disconnect() was called before the session was ready'));
    if (wasReady) this._fire('disconnected', 'io client disconnect');
  }

  isReady() {
    return this._ready;
  }

  // --------------------------------------------------------------- commands

  sendCommand(command, payload, timeout) {
    return new Promise((resolve, reject) => {
      const bad = nameProblem(command, NAME_MAX);
      if (bad) return reject(new DaemonClientError('BadRequest', `sendCommand: the command ${bad}`));
      let t = timeout;
      if (t === undefined || t === null || t === 0) {
        t = this._commandTimeout;
      } else if (typeof t !== 'number' || !Number.isFinite(t) || t < 0) {
        return reject(new DaemonClientError('BadRequest', `sendCommand: the timeout must be a number of ms, not ${String(t)}`));
      }
      if (!this._ready) return reject(new DaemonClientError('SOCKET_NOT_READY', this._notReadyWhy()));
      const frame = { op: 'request', command };
      if (t > 0) frame.timeout_ms = Math.ceil(t);
      if (payload !== undefined) {
        try {
          const w = toWire(payload, 'the payload');
          if (w !== undefined) frame.payload = w;
        } catch (e) {
          return reject(fromValueError(e, 'NotJson'));
        }
      }
      let effective = t > 0 ? Math.ceil(t) : this._brokerTimeoutMs;
      if (this._maxTimeoutMs > 0 && effective > this._maxTimeoutMs) effective = this._maxTimeoutMs;
      const bigInt = this._bigInt;
      try {
        this._conn.request(frame, effective + GRACE, (err, res) => {
          if (err) {
            if (err.code === 'Timeout') {
              reject(new DaemonClientError('COMMAND_TIMEOUT', `no answer to "${command}" within ${effective} ms`));
            } else {
              reject(new DaemonClientError('SOCKET_NOT_READY', `"${command}" was in flight when the connection to the broker ended: ${err.message}`, { cause: err }));
            }
          } else if (res.ok) {
            resolve(res.data === undefined ? undefined : fromWire(res.data, bigInt));
          } else {
            const code = res.code || 'Internal';
            const opts = res.server_code !== undefined ? { serverCode: res.server_code } : undefined;
            reject(new DaemonClientError(code, res.message || code, opts));
          }
        });
      } catch (e) {
        reject(fromValueError(e, 'Internal'));
      }
      return undefined;
    });
  }

  /**
   * Fire-and-forget, as in the seed. Connected to the broker, the message
   * goes to it at once (the broker keeps it while the upstream is down);
   * otherwise it is kept here (up to 16 MiB) and sent, in order, when the
   * session is ready again, as socket.io-client buffers while
   * disconnected. Failures reach onError (EmitFailed). Extension:
   * {volatile: true} is never kept: it fails with EmitFailed instead.
   */
  emit(message, options) {
    const isVolatile = !!(options && options.volatile);
    let buf;
    try {
      if (message === null || typeof message !== 'object') {
        throw new DaemonClientError('EmitFailed', 'emit needs a message {type, data}');
      }
      const bad = nameProblem(message.type, NAME_MAX);
      if (bad) throw new DaemonClientError('EmitFailed', `emit: the message type ${bad}`);
      const frame = { op: 'emit', type: message.type };
      const d = toWire(message.data, `the data of message "${message.type}"`);
      if (d !== undefined) frame.data = d;
      if (isVolatile) frame.volatile = true;
      buf = frameOf(frame);
    } catch (e) {
      return this._emitFailed(e);
    }
    // Straight to the broker when connected to it, unless older messages
    // still wait in the buffer (order is kept; a volatile one need not wait).
    if (this._conn && this._conn.isOpen && (isVolatile || this._emitBuffer.length === 0)) {
      try {
        this._conn.sendEncoded(buf);
      } catch (e) {
        this._emitFailed(e);
      }
      return undefined;
    }
    if (isVolatile) {
      return this._emitFailed(new DaemonClientError('EmitFailed', `volatile message "${message.type}" dropped: not connected to the broker`));
    }
    if (this._emitBufferBytes + buf.length > MAX_EMIT_BUFFER) {
      return this._emitFailed(new DaemonClientError('EmitFailed', `message "${message.type}" dropped: ${this._emitBufferBytes} bytes of messages already wait for the broker`));
    }
    this._emitBuffer.push(buf);
    this._emitBufferBytes += buf.length;
    return undefined;
  }

  _emitFailed(e) {
    const err = e instanceof DaemonClientError && e.code === 'EmitFailed' ? e : new DaemonClientError('EmitFailed', e.message, { cause: e });
    process.nextTick(() => this._fire('error', err));
  }

  // --------------------------------------------------------------- handlers

  registerHandler(command, handler) {
    const bad = nameProblem(command, NAME_MAX);
    if (bad) throw new TypeError(`registerHandler: the command ${bad}`);
    if (typeof handler !== 'function') throw new TypeError('registerHandler: the handler must be a function');
    const isNew = !this._handlers.has(command);
    this._handlers.set(command, handler);
    if (isNew && this._conn && this._conn.isOpen) this._announce('register', [command], false);
    return this;
  }

  unregisterHandler(command) {
    if (this._handlers.delete(command) && this._conn && this._conn.isOpen) {
      this._announce('unregister', [command], false);
    }
    return this;
  }

  onMessage(callback) {
    this._listen('message', callback);
    if (this._listeners.message.length === 1 && this._conn && this._conn.isOpen) this._subscribe(false);
    return this;
  }

  onConnected(callback) {
    this._listen('connected', callback);
    return this;
  }

  onDisconnected(callback) {
    this._listen('disconnected', callback);
    return this;
  }

  onError(callback) {
    this._listen('error', callback);
    return this;
  }

  // ------------------------------------------------------------ credentials

  getTeamClusterId() {
    return this._teamClusterId;
  }

  getDaemonPassword() {
    if (this._passwordError) throw this._passwordError;
    if (this._password === undefined) {
      throw new DaemonClientError('SOCKET_NOT_READY', 'the daemon password is not known yet: it is read from the broker by connect()');
    }
    return this._password;
  }

  // ------------------------------------------------------------- internals

  _listen(kind, callback) {
    if (typeof callback !== 'function') throw new TypeError(`on${kind[0].toUpperCase()}${kind.slice(1)}: the callback must be a function`);
    this._listeners[kind].push(callback);
  }

  // Runs the callbacks of `kind`. A callback that throws (or whose promise
  // rejects) is reported to onError; with no onError callback, or when an
  // onError callback itself fails, the error is rethrown outside our code,
  // as an EventEmitter listener's would be.
  _fire(kind, ...args) {
    const list = this._listeners[kind];
    if (list.length === 0) return;
    for (const fn of list.slice()) {
      try {
        const r = fn(...args);
        if (r && typeof r.then === 'function') r.then(undefined, (e) => this._callbackFailed(kind, e));
      } catch (e) {
        this._callbackFailed(kind, e);
      }
    }
  }

  _callbackFailed(kind, e) {
    if (kind !== 'error' && this._listeners.error.length > 0) {
      const msg = e && e.message ? e.message : String(e);
      this._fire('error', new DaemonClientError('HandlerError', `an ${kind} callback failed: ${msg}`, { cause: e }));
      return;
    }
    process.nextTick(() => {
      throw e;
    });
  }

  _notReadyWhy() {
    if (!this._running) return 'not connected: call connect() first';
    if (!this._conn || !this._conn.isOpen) return `not connected to the broker at ${this._path} (reconnecting)`;
    const u = this._upstream;
    if (!this._upstreamReady) return `the upstream session is not ready (${u.state}${u.reason ? `: ${u.reason}` : ''})`;
    return 'the session is being set up';
  }

  _open(welcomeTimeout) {
    const conn = new BrokerConnection({
      path: this._path,
      name: this._name,
      onFrame: (f) => this._onFrame(conn, f),
      onClose: (err) => this._onClose(conn, err),
    });
    this._conn = conn;
    this._setupPending = 0;
    this._upstreamReady = false;
    this._credentialPending = false;
    conn.start(welcomeTimeout, (w) => this._onWelcome(conn, w));
  }

  _onWelcome(conn, w) {
    this._welcomed = true;
    this._backoff.reset();
    this._lastReported = '';
    this._brokerTimeoutMs = w.timeoutMs;
    this._maxTimeoutMs = w.maxTimeoutMs;
    this._upstream = { state: w.state, reason: w.reason };
    if (w.teamClusterId && !this._adoptTeam(w.teamClusterId)) return;
    if (w.code) this._lastError = new DaemonClientError(w.code, w.message || w.reason || w.code);
    if (this._handlers.size > 0) this._announce('register', [...this._handlers.keys()], true);
    if (this._listeners.message.length > 0) this._subscribe(true);
    if (w.state === 'failed') {
      const err = this._lastError || new DaemonClientError('SocketConnectionFailed', `the upstream session has failed: ${w.reason}`);
      if (this._connecting) this._connectFailed(err);
      else this._fire('error', err);
    }
  }

  // False (and the client stopped) when the broker serves another team
  // cluster than the one the service was configured for.
  _adoptTeam(id) {
    if (this._configuredTeam && id !== this._configuredTeam) {
      const err = new DaemonClientError(
        'SocketRegistrationFailed',
        `teamClusterId "${this._configuredTeam}" does not match the broker's: the broker at ${this._path} serves team cluster "${id}"`,
      );
      const wasReady = this._ready;
      this._stop(err);
      if (this._connecting) this._settleConnect(err);
      else this._fire('error', err);
      if (wasReady) this._fire('disconnected', err.message);
      return false;
    }
    this._teamClusterId = id;
    return true;
  }

  // register / unregister `commands`, or subscribe; `setup` counts it
  // among what readiness waits for on this connection.
  _announce(op, commands, setup) {
    this._localRequest({ op, commands }, setup, (res) => {
      if (!res.ok) {
        this._fire('error', new DaemonClientError(res.code || 'Internal', `${op} ${commands.join(', ')}: ${res.message || res.code}`));
      }
    });
  }

  _subscribe(setup) {
    this._localRequest({ op: 'subscribe', match: 'all' }, setup, (res) => {
      if (!res.ok) this._fire('error', new DaemonClientError(res.code || 'Internal', `subscribe: ${res.message || res.code}`));
    });
  }

  // An op the broker answers itself. A lost connection needs nothing:
  // the next one announces everything again.
  _localRequest(frame, setup, onResult) {
    const conn = this._conn;
    if (setup) this._setupPending++;
    const done = () => {
      if (setup && conn === this._conn) {
        this._setupPending--;
        this._maybeReady();
      }
    };
    try {
      conn.request(frame, LOCAL_TIMEOUT, (err, res) => {
        if (err) {
          if (err.code === 'Timeout' && conn === this._conn) this._fire('error', new DaemonClientError('Timeout', `${frame.op}: ${err.message}`));
        } else if (conn === this._conn) {
          onResult(res);
        }
        done();
      });
    } catch (e) {
      this._fire('error', fromValueError(e, 'Internal'));
      done();
    }
  }

  _readCredential() {
    const conn = this._conn;
    this._credentialPending = true;
    try {
      conn.request({ op: 'credential', name: 'daemonPassword' }, LOCAL_TIMEOUT, (err, res) => {
        if (conn !== this._conn) return;
        this._credentialPending = false;
        if (!err && res.ok && typeof res.data === 'string') {
          this._password = res.data;
          this._passwordError = null;
        } else if (!err && res.code === 'PermissionDenied') {
          this._password = undefined;
          this._passwordError = new DaemonClientError(
            'PermissionDenied',
            `the broker at ${this._path} gives the daemon password only to root and its own user; this process runs as uid ${process.getuid()} (${res.message || 'PermissionDenied'})`,
          );
        } else if (err && err.code === 'Timeout') {
          this._fire('error', new DaemonClientError('Timeout', `reading the daemon password: ${err.message}`));
        }
        this._maybeReady();
      });
    } catch (e) {
      this._credentialPending = false;
      this._fire('error', fromValueError(e, 'Internal'));
    }
  }

  _maybeReady() {
    if (this._ready || !this._conn || !this._conn.isOpen) return;
    if (!this._upstreamReady || this._setupPending > 0 || this._credentialPending) return;
    this._ready = true;
    this._lastError = null;
    this._flushEmits();
    this._fire('connected');
    this._settleConnect(null);
  }

  // Messages kept while the broker was away, in order, once the session
  // is ready (as socket.io-client sends its buffer on connect).
  _flushEmits() {
    const kept = this._emitBuffer;
    if (kept.length === 0) return;
    this._emitBuffer = [];
    this._emitBufferBytes = 0;
    for (const buf of kept) {
      try {
        this._conn.sendEncoded(buf);
      } catch (e) {
        this._emitFailed(e);
      }
    }
  }

  _becameUnready(reason) {
    if (!this._ready) return;
    this._ready = false;
    this._fire('disconnected', reason);
  }

  _onFrame(conn, f) {
    if (conn !== this._conn) return;
    switch (f.op) {
      case 'event':
        return this._onEvent(f);
      case 'call':
        return this._onCall(conn, f);
      case 'message':
        return this._onMessage(f);
      case 'error': {
        // About a frame of ours that no result answers: an emit without id
        // (EmitFailed), a reply, a quota that ends the connection.
        const code = f.about === 'emit' && f.code !== 'EmitFailed' ? 'EmitFailed' : f.code;
        const about = f.about ? ` (about "${f.about}")` : '';
        return this._fire('error', new DaemonClientError(code, `${f.message || f.code}${about}`));
      }
      default:
        return undefined; // trace, pong, and ops of later versions
    }
  }

  _onEvent(f) {
    if (f.state) this._upstream = { state: f.state, reason: f.reason || this._upstream.reason };
    switch (f.event) {
      case 'connected':
        if (f.team_cluster_id && !this._adoptTeam(f.team_cluster_id)) return;
        this._upstream = { state: 'ready', reason: '' };
        this._upstreamReady = true;
        this._readCredential();
        return;
      case 'disconnected':
        this._upstreamReady = false;
        this._becameUnready(f.reason || 'upstream disconnected');
        return;
      case 'error': {
        const err = new DaemonClientError(f.code || 'Internal', f.message || f.code || 'upstream error');
        this._lastError = err;
        this._fire('error', err);
        if (this._connecting) this._checkFailed();
        return;
      }
      default:
        return;
    }
  }

  // While connect() waits: has the upstream just become `failed`?
  _checkFailed() {
    const conn = this._conn;
    if (!conn || !conn.isOpen) return;
    try {
      conn.request({ op: 'status' }, LOCAL_TIMEOUT, (err, res) => {
        if (err || conn !== this._conn || !res.ok || !this._connecting) return;
        const up = res.data && res.data.upstream;
        if (up && up.state === 'failed') {
          this._upstream = { state: 'failed', reason: typeof up.reason === 'string' ? up.reason : '' };
          this._connectFailed(this._lastError || new DaemonClientError('SocketConnectionFailed', `the upstream session has failed: ${this._upstream.reason}`));
        }
      });
    } catch {
      // the connection is ending; its close says why
    }
  }

  _onCall(conn, f) {
    const { id, command } = f;
    const handler = this._handlers.get(command);
    if (!handler) {
      // Unregistered while the call was on its way.
      this._reply(conn, { op: 'reply', id, ok: false, code: 'NoHandler', message: `no handler for "${command}" in this process` });
      return;
    }
    let result;
    try {
      result = handler(f.payload === undefined ? undefined : fromWire(f.payload, this._bigInt));
    } catch (e) {
      this._handlerFailed(conn, id, command, e);
      return;
    }
    if (result && typeof result.then === 'function') {
      result.then(
        (v) => this._handlerDone(conn, id, command, v),
        (e) => this._handlerFailed(conn, id, command, e),
      );
    } else {
      this._handlerDone(conn, id, command, result);
    }
  }

  _handlerDone(conn, id, command, value) {
    let frame;
    try {
      frame = { op: 'reply', id, ok: true };
      const data = toWire(value, `the result of handler "${command}"`);
      if (data !== undefined) frame.data = data;
      if (conn.isOpen) conn.send(frame);
    } catch (e) {
      this._handlerFailed(conn, id, command, e);
    }
  }

  _handlerFailed(conn, id, command, e) {
    const message = e && typeof e.message === 'string' && e.message ? e.message : String(e);
    // Only a DaemonClientError chooses the code the server sees; any other
    // error's `code` (ENOENT, ...) is the service's business.
    const code = e instanceof DaemonClientError && !nameProblem(e.code, CODE_MAX) ? e.code : 'HandlerError';
    this._reply(conn, { op: 'reply', id, ok: false, code, message });
    this._fire('error', new DaemonClientError('HandlerError', `handler "${command}" failed: ${message}`, { cause: e }));
  }

  // A reply for a connection that has ended is dropped: the broker has
  // answered the server HandlerError for it already.
  _reply(conn, frame) {
    if (!conn.isOpen) return;
    try {
      conn.send(frame);
    } catch (e) {
      // Too big or no room: the server still gets its one answer.
      try {
        conn.send({ op: 'reply', id: frame.id, ok: false, code: 'HandlerError', message: `the reply could not be sent: ${e.message}` });
      } catch {
        // the connection is ending; the broker answers for us
      }
    }
  }

  _onMessage(f) {
    if (this._listeners.message.length === 0) return;
    this._fire('message', { type: f.type, data: f.data === undefined ? undefined : fromWire(f.data, this._bigInt) });
  }

  _onClose(conn, err) {
    if (conn !== this._conn) return;
    this._conn = null;
    this._upstreamReady = false;
    if (!this._welcomed) {
      // Never reached the broker in this run: connect() fails at once.
      this._stop(err);
      this._settleConnect(new DaemonClientError('SocketConnectionFailed', err.message, { cause: err }));
      return;
    }
    this._becameUnready(`broker connection lost: ${err.message}`);
    if (err.message !== this._lastReported) {
      this._lastReported = err.message;
      this._fire('error', err);
    }
    if (!this._running) return; // a callback called disconnect()
    if (!this._reconnect) {
      this._stop(err);
      this._settleConnect(new DaemonClientError('SocketConnectionFailed', err.message, { cause: err }));
      return;
    }
    const delay = this._backoff.next();
    this._reconnectTimer = setTimeout(() => {
      this._reconnectTimer = null;
      if (this._running && !this._conn) this._open(WELCOME_TIMEOUT);
    }, delay);
  }

  _connectDeadline() {
    const c = this._connecting;
    if (!c) return;
    const ms = this._connectTimeout;
    const last = this._lastError;
    let err;
    if (!this._welcomed) {
      const why = new DaemonClientError('Timeout', `the broker at ${this._path} did not answer hello within ${ms} ms`);
      err = new DaemonClientError('SocketConnectionFailed', why.message, { cause: why });
    } else if (last) {
      err = new DaemonClientError(last.code, `${last.message} (the upstream session did not become ready within ${ms} ms)`);
    } else {
      const u = this._upstream;
      const where = this._conn && this._conn.isOpen ? `upstream ${u.state}${u.reason ? `: ${u.reason}` : ''}` : `reconnecting to the broker at ${this._path}`;
      err = new DaemonClientError('SocketConnectionFailed', `the upstream session did not become ready within ${ms} ms (${where})`);
    }
    this._connectFailed(err);
  }

  // connect() fails; the client stops if that connect() started it.
  _connectFailed(err) {
    const c = this._connecting;
    if (!c) return;
    if (c.startedHere) this._stop(err);
    this._settleConnect(err);
  }

  _settleConnect(err) {
    const c = this._connecting;
    if (!c) return;
    this._connecting = null;
    clearTimeout(c.timer);
    if (err) c.reject(err);
    else c.resolve();
  }

  // Stops everything: no connection, no timer, nothing in flight.
  _stop(err) {
    this._running = false;
    this._ready = false;
    this._upstreamReady = false;
    clearTimeout(this._reconnectTimer);
    this._reconnectTimer = null;
    const conn = this._conn;
    this._conn = null;
    if (conn) conn.close(err);
  }
}

module.exports = { ClusterDaemonClient };
