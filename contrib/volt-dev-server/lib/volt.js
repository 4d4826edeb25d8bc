'use strict';
// The socket.io side of the dev server: the control namespace, daemon
// registration, daemon:request commands, the server:request reverse channel
// and messages, as described in volt-upstream-protocol.md.

const crypto = require('crypto');
const { toMarkers, fromMarkers } = require('./state');

// Cap for the `binary` command and delays, so a typo in a test cannot make
// the server allocate gigabytes or keep a timer for days.
const MAX_BINARY_SIZE = 64 * 1024 * 1024;
const MAX_DELAY_MS = 3600 * 1000;

// Events the daemon is expected to send; anything else is recorded as
// `unknown_event` so contract deviations in the broker are visible.
const KNOWN_EVENTS = new Set([
  'daemon:register', 'daemon:handlers', 'daemon:request', 'server:response', 'message',
]);

// Codes a daemon may put in a failed server:response (protocol section 6).
const SERVER_RESPONSE_CODES = new Set(['HandlerError', 'NoHandler', 'HandlerTimeout']);

const isObj = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const isStringArray = (v) => Array.isArray(v) && v.every((s) => typeof s === 'string');
const ok = (data) => ({ success: true, data: data === undefined ? null : data });
const fail = (code, message) => ({ success: false, error: { code, message } });

// socket.io hands the ack callback as the last listener argument when the
// packet carried an ack id; split it off so payload handling is uniform.
function takeAck(args) {
  return args.length && typeof args[args.length - 1] === 'function' ? args.pop() : null;
}

function clampInt(v, lo, hi) {
  const n = Math.floor(Number(v));
  return Number.isFinite(n) ? Math.min(Math.max(n, lo), hi) : lo;
}

// Built-in daemon:request commands. Each returns {body, delayMs} or null for
// "never answer".
const COMMANDS = {
  echo: (p) => ({ body: ok(p) }),
  reject: (p) => ({
    body: fail((p && p.code) || 'REJECTED', (p && p.message) || 'rejected by dev server'),
  }),
  // slow and late behave the same on this side; the difference (answer
  // before or after the client's timeout) is chosen by the test's `ms`.
  slow: (p) => ({ body: ok(p), delayMs: clampInt(p && p.ms, 0, MAX_DELAY_MS) }),
  late: (p) => ({ body: ok(p), delayMs: clampInt(p && p.ms, 0, MAX_DELAY_MS) }),
  never: () => null,
  // An answer nested `depth` arrays deep, e.g. to see what a daemon does
  // with a legal answer deeper than it can pass on.
  nest: (p) => {
    let v = 'core';
    for (let i = clampInt(p && p.depth, 0, 10000); i > 0; i--) v = [v];
    return { body: ok(v) };
  },
  status: () => ({ body: ok({ server: 'volt-dev-server' }) }),
  binary: (p) => {
    const size = clampInt(p && p.size, 0, Number.MAX_SAFE_INTEGER);
    if (size > MAX_BINARY_SIZE) {
      return { body: fail('TooLarge', `size ${size} exceeds ${MAX_BINARY_SIZE}`) };
    }
    const blob = Buffer.allocUnsafe(size);
    for (let i = 0; i < size; i++) blob[i] = i % 256;
    return { body: ok({ blob }) };
  },
};

class Volt {
  constructor(io, state, cfg) {
    this.state = state;
    this.cfg = cfg;
    this.nsp = io.of(cfg.namespace);
    this.sockets = new Map(); // socket.id -> socket, in connection order
    this.daemons = new Map(); // socket.id -> public info shown in /_dev/state
    this.pending = new Map(); // requestId -> waiter of an open server:request
    this.heldRegisterAcks = []; // acks kept back by the registerHold behavior
    // With connection state recovery, what goes to a daemon is broadcast to
    // its own room (socket.emit bypasses the adapter, so it would be neither
    // stored nor given an offset) and the last registered daemon stays a
    // target while it is away: what is sent then is replayed on its return.
    this.recovery = cfg.recovery > 0;
    this.lastDaemonId = null;
    this.timers = new Set(); // delayed responses, cleared on shutdown
    this.nsp.use((socket, next) => this.authenticate(socket, next));
    this.nsp.on('connection', (socket) => this.onConnection(socket));
  }

  authenticate(socket, next) {
    const auth = isObj(socket.handshake.auth) ? socket.handshake.auth : {};
    const cred = this.state.credentials;
    let message = null;
    if (this.state.consume('connectRefuse')) {
      message = 'connection refused by dev server';
    } else if (auth.teamClusterId !== cred.teamClusterId
               || auth.daemonPassword !== cred.daemonPassword) {
      message = 'invalid credentials';
    }
    if (message === null) return next();
    this.state.count('connectErrors');
    this.state.record('connect_error', {
      socket: socket.id,
      teamClusterId: auth.teamClusterId,
      passwordGiven: typeof auth.daemonPassword === 'string',
      message,
    });
    // socket.io turns this into CONNECT_ERROR 44/<nsp>,{"message":...}
    return next(new Error(message));
  }

  onConnection(socket) {
    const info = {
      id: socket.id,
      teamClusterId: socket.handshake.auth.teamClusterId,
      registered: false,
      handlers: [],
      hostname: null,
      version: null,
      connectedAt: new Date().toISOString(),
      transport: socket.conn.transport.name,
      address: socket.handshake.address,
    };
    this.sockets.set(socket.id, socket);
    this.daemons.set(socket.id, info);
    this.state.count('connects');
    this.state.record('connect', {
      socket: socket.id, teamClusterId: info.teamClusterId,
      transport: info.transport, address: info.address,
    });

    socket.onAny((event, ...args) => {
      if (KNOWN_EVENTS.has(event)) return;
      takeAck(args);
      this.state.count('unknownEvents');
      this.state.record('unknown_event', { socket: socket.id, event, args: toMarkers(args) });
    });
    socket.on('daemon:register', (...args) => this.onRegister(socket, info, args));
    socket.on('daemon:handlers', (...args) => this.onHandlers(socket, info, args));
    socket.on('daemon:request', (...args) => this.onRequest(socket, info, args));
    socket.on('server:response', (...args) => this.onServerResponse(socket, args));
    socket.on('message', (...args) => this.onMessage(socket, args));
    socket.on('disconnect', (reason) => {
      this.sockets.delete(socket.id);
      this.daemons.delete(socket.id);
      this.state.count('disconnects');
      this.state.record('disconnect', { socket: socket.id, reason, registered: info.registered });
    });
  }

  onRegister(socket, info, args) {
    const ack = takeAck(args);
    const p = args[0];
    const refuse = (reason, code, extra = {}) => {
      this.state.count('registrationsRefused');
      const ev = { socket: socket.id, reason, ...extra };
      if (code) ev.code = code;
      this.state.record('register_refused', ev);
      if (ack && code) ack(fail(code, reason));
    };
    if (!ack) return refuse('daemon:register sent without an ack id', null, { acked: false });
    if (this.state.consume('registerSilent')) {
      return refuse('not acknowledged (behavior registerSilent)', null, { acked: false });
    }
    if (this.state.consume('registerRefuse')) {
      return refuse('registration refused by dev server', 'RegistrationRefused');
    }
    let problem = null;
    if (!isObj(p)) problem = 'payload must be an object';
    else if (p.teamClusterId !== info.teamClusterId) problem = 'teamClusterId does not match the authenticated one';
    else if (typeof p.hostname !== 'string' || !p.hostname) problem = 'hostname must be a non-empty string';
    else if (typeof p.version !== 'string' || !p.version) problem = 'version must be a non-empty string';
    else if (!isStringArray(p.handlers)) problem = 'handlers must be an array of strings';
    if (problem) return refuse(problem, 'InvalidRegistration', { payload: toMarkers(p) });

    Object.assign(info, {
      registered: true, hostname: p.hostname, version: p.version, handlers: [...p.handlers],
    });
    this.lastDaemonId = socket.id;
    this.state.count('registrations');
    this.state.record('register', {
      socket: socket.id, teamClusterId: p.teamClusterId, hostname: p.hostname,
      version: p.version, handlers: info.handlers, recovered: socket.recovered === true,
    });
    if (this.state.consume('registerHold')) {
      // Acknowledged later, by POST /_dev/release-registrations.
      this.heldRegisterAcks.push(() => ack({ success: true }));
      return;
    }
    ack({ success: true });
  }

  // Acknowledges the registrations held by the registerHold behavior.
  releaseRegistrations() {
    const held = this.heldRegisterAcks.splice(0);
    held.forEach((ack) => ack());
    return held.length;
  }

  onHandlers(socket, info, args) {
    const ack = takeAck(args);
    const p = args[0];
    const ev = { socket: socket.id, registered: info.registered };
    if (ack) ev.unexpectedAck = true;
    if (!isObj(p) || !isStringArray(p.handlers)) {
      ev.error = 'daemon:handlers payload must be {handlers: [string]}';
      ev.payload = toMarkers(p);
    } else {
      info.handlers = [...p.handlers];
      ev.handlers = info.handlers;
    }
    this.state.record('handlers', ev);
  }

  onRequest(socket, info, args) {
    const ack = takeAck(args);
    const req = args[0];
    const requestId = isObj(req) ? req.requestId : undefined;
    const command = isObj(req) ? req.command : undefined;
    const payload = isObj(req) ? req.payload : undefined;
    const isHeartbeat = command === 'runtime.heartbeat';
    this.state.count('requests');
    if (isHeartbeat) this.state.count('heartbeats');

    const ev = { socket: socket.id, requestId, command, payload: toMarkers(payload) };
    if (isObj(req) && !('payload' in req)) ev.payloadOmitted = true;
    if (ack) ev.unexpectedAck = true; // the contract says no socket.io ack here
    if (isHeartbeat) ev.mode = this.state.behavior.heartbeat;
    if (typeof requestId !== 'string' || typeof command !== 'string') {
      ev.error = 'malformed daemon:request (needs string requestId and command)';
    }
    // Heartbeats get their own kind so tests waiting for `request` are not
    // woken by the periodic ones.
    this.state.record(isHeartbeat ? 'heartbeat' : 'request', ev);
    if (typeof requestId !== 'string') return; // nothing to address a reply to
    if (typeof command !== 'string') {
      return this.respond(socket, requestId, command, fail('BadRequest', ev.error));
    }
    if (!info.registered) {
      return this.respond(socket, requestId, command,
        fail('NotRegistered', 'daemon:request before a successful daemon:register'));
    }

    let outcome;
    if (isHeartbeat) {
      const mode = this.state.behavior.heartbeat;
      if (mode === 'never') outcome = null;
      else if (mode === 'fail') outcome = { body: fail('HeartbeatFailed', 'heartbeat failed (dev server behavior)') };
      else outcome = { body: ok({ ok: true }) };
    } else if (Object.prototype.hasOwnProperty.call(COMMANDS, command)) {
      outcome = COMMANDS[command](payload);
    } else {
      outcome = { body: fail('UnknownCommand', `unknown command: ${command}`) };
    }
    if (!outcome) return;
    if (!outcome.delayMs) return this.respond(socket, requestId, command, outcome.body);
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      this.respond(socket, requestId, command, outcome.body);
    }, outcome.delayMs);
    this.timers.add(timer);
  }

  respond(socket, requestId, command, body) {
    // A delayed answer may find the socket gone; socket.io drops the emit
    // then, and the event log says so.
    const delivered = socket.connected;
    socket.emit('daemon:response', { requestId, ...body });
    const ev = { socket: socket.id, requestId, command, success: body.success };
    if (body.error) ev.error = body.error;
    if (!delivered) ev.dropped = true;
    this.state.record('response_sent', ev);
  }

  onMessage(socket, args) {
    const ack = takeAck(args);
    const m = args[0];
    this.state.count('messages');
    const ev = { socket: socket.id };
    if (isObj(m)) {
      ev.type = m.type;
      ev.data = toMarkers(m.data);
      if (typeof m.type !== 'string') ev.error = 'message.type must be a string';
    } else {
      ev.error = 'message must be an object {type, data}';
      ev.raw = toMarkers(m);
    }
    if (ack) ev.unexpectedAck = true;
    this.state.record('message_in', ev);
  }

  // Which daemon a server:request goes to: the one asked for, else the first
  // registered one (connection order).
  pickTarget(socketId) {
    if (socketId !== undefined) {
      const s = this.sockets.get(socketId);
      return s && this.daemons.get(socketId).registered ? this.target(s.id, s) : null;
    }
    for (const [id, s] of this.sockets) {
      if (this.daemons.get(id).registered) return this.target(id, s);
    }
    if (this.recovery && this.lastDaemonId !== null) return this.target(this.lastDaemonId, null);
    return null;
  }

  // Something with an id and emit(): the socket, or its room when sessions
  // are recovered (see the constructor).
  target(id, socket) {
    if (!this.recovery) return socket;
    return { id, emit: (event, ...args) => this.nsp.to(id).emit(event, ...args) };
  }

  targets() {
    const ids = [...this.sockets.keys()];
    if (this.recovery && this.lastDaemonId !== null && !ids.includes(this.lastDaemonId)) {
      ids.push(this.lastDaemonId);
    }
    return ids.map((id) => this.target(id, this.sockets.get(id)));
  }

  // Emits one server:request and resolves when its server:response arrives
  // or after timeoutMs. Never rejects.
  serverRequest(socket, command, payload, timeoutMs) {
    const requestId = crypto.randomUUID();
    const msg = { requestId, command };
    if (payload !== undefined) msg.payload = fromMarkers(payload);
    this.state.serverResponseCounts.set(requestId, { command, responses: 0 });
    this.state.count('serverRequests');
    this.state.record('server_request', {
      socket: socket.id, requestId, command, payload: toMarkers(msg.payload), timeoutMs,
    });
    const started = Date.now();
    return new Promise((resolve) => {
      const finish = (result) => {
        clearTimeout(timer);
        this.pending.delete(requestId);
        resolve({ requestId, ...result, elapsedMs: Date.now() - started });
      };
      const timer = setTimeout(() => {
        this.state.record('server_request_timeout', { socket: socket.id, requestId, command, timeoutMs });
        finish({ timeout: true });
      }, timeoutMs);
      this.pending.set(requestId, { command, finish });
      socket.emit('server:request', msg);
    });
  }

  onServerResponse(socket, args) {
    const ack = takeAck(args);
    const res = args[0];
    const requestId = isObj(res) ? res.requestId : undefined;
    this.state.count('serverResponses');

    const problems = [];
    if (!isObj(res)) problems.push('not an object');
    else {
      if (typeof requestId !== 'string') problems.push('requestId must be a string');
      if (typeof res.success !== 'boolean') problems.push('success must be a boolean');
      if (res.success === false) {
        const e = res.error;
        if (!isObj(e) || typeof e.code !== 'string' || typeof e.message !== 'string') {
          problems.push('error must be {code: string, message: string}');
        } else if (!SERVER_RESPONSE_CODES.has(e.code)) {
          problems.push(`unexpected error code ${e.code}`);
        }
      }
    }
    if (ack) problems.push('unexpected socket.io ack id');

    // Every server:request must get exactly one server:response: count what
    // arrived for this id to tell on-time, late (after our timeout) and
    // duplicate answers apart.
    const pending = typeof requestId === 'string' ? this.pending.get(requestId) : undefined;
    let entry = typeof requestId === 'string' ? this.state.serverResponseCounts.get(requestId) : undefined;
    if (!entry && pending) { // the log was reset while this request was open
      entry = { command: pending.command, responses: 0 };
      this.state.serverResponseCounts.set(requestId, entry);
    }
    let status;
    if (!entry) {
      status = 'unknown';
      this.state.count('unknownServerResponses');
    } else {
      entry.responses += 1;
      if (entry.responses > 1) {
        status = 'duplicate';
        this.state.count('duplicateServerResponses');
      } else if (pending) {
        status = 'ok';
      } else {
        status = 'late';
        this.state.count('lateServerResponses');
      }
    }
    const ev = {
      socket: socket.id, requestId, command: entry && entry.command, status,
      success: isObj(res) ? res.success : undefined,
      response: toMarkers(res),
    };
    if (problems.length) ev.problems = problems;
    this.state.record('server_response', ev);
    if (status === 'ok') pending.finish({ response: toMarkers(res) });
  }

  // Sends a server->daemon `message` to every connected daemon socket.
  sendMessage(type, data) {
    const msg = { type, data: fromMarkers(data) };
    const targets = this.targets();
    for (const t of targets) t.emit('message', msg);
    const sent = targets.length;
    this.state.count('messagesOut');
    this.state.record('message_out', { type, data: toMarkers(msg.data), sent });
    return sent;
  }

  // Emits an arbitrary event, to check that the broker tolerates traffic the
  // contract does not list. Throws on names socket.io reserves.
  emitRaw(event, args) {
    const decoded = fromMarkers(args);
    for (const s of this.sockets.values()) s.emit(event, ...decoded);
    this.state.record('emit_raw', { event, args: toMarkers(decoded), sent: this.sockets.size });
    return this.sockets.size;
  }

  disconnect(mode, socketId) {
    const targets = [...this.sockets.values()].filter((s) => socketId === undefined || s.id === socketId);
    for (const s of targets) {
      if (mode === 'namespace') s.disconnect(true); // DISCONNECT packet, then engine close
      else if (mode === 'namespace-only') s.disconnect(false); // DISCONNECT, engine stays up
      else if (mode === 'transport') s.conn.close(); // engine close, no socket.io DISCONNECT
      else if (mode === 'terminate') {
        // No WebSocket close frame at all: as if the network dropped.
        const ws = s.conn.transport && s.conn.transport.socket;
        if (ws && typeof ws.terminate === 'function') ws.terminate();
        else s.conn.close();
      }
    }
    return targets.length;
  }

  list() {
    return [...this.daemons.values()].map((d) => ({ ...d, handlers: [...d.handlers] }));
  }

  close() {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const p of [...this.pending.values()]) p.finish({ shutdown: true });
  }
}

const DISCONNECT_MODES = ['namespace', 'namespace-only', 'transport', 'terminate'];

module.exports = { Volt, DISCONNECT_MODES };
