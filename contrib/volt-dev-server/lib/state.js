'use strict';
// Shared mutable state of the dev server: credentials, scripted behaviours,
// counters and the event log that tests read through the control API.

// Binary values cannot travel in the control API's JSON, so they are written
// as {"$bin": "<base64>"}: an object with exactly that one key.
function isBinary(v) {
  return Buffer.isBuffer(v) || v instanceof ArrayBuffer || ArrayBuffer.isView(v);
}

function toBuffer(v) {
  if (Buffer.isBuffer(v)) return v;
  if (v instanceof ArrayBuffer) return Buffer.from(v);
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

// Buffers -> markers, recursively (for JSON output and the event log).
function toMarkers(v) {
  if (v === null || typeof v !== 'object') return v;
  if (isBinary(v)) return { $bin: toBuffer(v).toString('base64') };
  if (Array.isArray(v)) return v.map(toMarkers);
  const out = {};
  for (const k of Object.keys(v)) out[k] = toMarkers(v[k]);
  return out;
}

// Markers -> Buffers, recursively (for control API input sent to daemons).
function fromMarkers(v) {
  if (v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map(fromMarkers);
  const keys = Object.keys(v);
  if (keys.length === 1 && keys[0] === '$bin' && typeof v.$bin === 'string') {
    return Buffer.from(v.$bin, 'base64');
  }
  const out = {};
  for (const k of keys) out[k] = fromMarkers(v[k]);
  return out;
}

const COUNTER_NAMES = [
  'enrollments', 'enrollmentsRefused', 'connects', 'connectErrors',
  'registrations', 'registrationsRefused', 'heartbeats', 'requests',
  'messages', 'messagesOut', 'serverRequests', 'serverResponses',
  'duplicateServerResponses', 'lateServerResponses', 'unknownServerResponses',
  'unknownEvents', 'disconnects',
];

// The log keeps at least the last MAX_EVENTS events, so a long demo cannot
// eat the heap. The oldest go a quarter of it at a time: dropping one for
// each new event moved the whole log every time (a third of the server's
// CPU under load, two events per request).
const MAX_EVENTS = 10000;
const MAX_EVENTS_HELD = MAX_EVENTS + MAX_EVENTS / 4;

class State {
  constructor(cfg, logger) {
    this.cfg = cfg;
    this.logger = logger;
    this.credentials = { teamClusterId: cfg.cluster, daemonPassword: cfg.password };
    this.tokens = new Set(cfg.tokens);
    // seq never restarts (not even on reset) so a test's `since` cursor stays valid.
    this.seq = 0;
    this.waiters = new Set();
    this.reset();
  }

  reset() {
    this.events = [];
    this.counters = Object.fromEntries(COUNTER_NAMES.map((n) => [n, 0]));
    this.behavior = {
      enrollStatuses: [], registerRefuse: 0, registerSilent: 0, registerHold: 0,
      connectRefuse: 0, heartbeat: 'ok',
    };
    // requestId -> number of server:response seen; lives until reset so
    // exactly-once can be checked after the HTTP call returned.
    this.serverResponseCounts = new Map();
  }

  count(name, n = 1) {
    this.counters[name] = (this.counters[name] || 0) + n;
  }

  // Append to the event log, print it when asked to, and wake long-pollers.
  record(kind, details = {}) {
    const ev = { seq: ++this.seq, t: new Date().toISOString(), kind, ...details };
    this.events.push(ev);
    if (this.events.length > MAX_EVENTS_HELD) this.events.splice(0, this.events.length - MAX_EVENTS);
    this.logger.event(ev);
    for (const w of this.waiters) {
      if (w.matches(ev)) w.wake();
    }
    return ev;
  }

  eventsSince(since, kinds) {
    return this.events.filter((e) => e.seq > since && (!kinds || kinds.has(e.kind)));
  }

  // Long-poll: resolves with the matching events once there is at least one,
  // or with [] after waitMs.
  waitEvents(since, kinds, waitMs) {
    const now = this.eventsSince(since, kinds);
    if (now.length > 0 || !(waitMs > 0)) return Promise.resolve(now);
    return new Promise((resolve) => {
      const w = {
        matches: (ev) => ev.seq > since && (!kinds || kinds.has(ev.kind)),
        wake: () => {
          clearTimeout(w.timer);
          this.waiters.delete(w);
          resolve(this.eventsSince(since, kinds));
        },
      };
      w.timer = setTimeout(w.wake, waitMs);
      this.waiters.add(w);
    });
  }

  // On shutdown, answer every long-poll at once instead of leaving it hanging.
  wakeAll() {
    for (const w of [...this.waiters]) w.wake();
  }

  // Pop the next scripted enrollment outcome, if any.
  nextEnrollStatus() {
    return this.behavior.enrollStatuses.length ? this.behavior.enrollStatuses.shift() : null;
  }

  // Decrement a "next N" behaviour counter; true if it applied to this call.
  consume(name) {
    if (this.behavior[name] > 0) {
      this.behavior[name] -= 1;
      return true;
    }
    return false;
  }

  publicBehavior() {
    return {
      ...this.behavior,
      enrollStatuses: [...this.behavior.enrollStatuses],
      credentials: { teamClusterId: this.credentials.teamClusterId },
      tokens: [...this.tokens],
      rotate: this.cfg.rotate,
    };
  }
}

module.exports = { State, toMarkers, fromMarkers, isBinary };
