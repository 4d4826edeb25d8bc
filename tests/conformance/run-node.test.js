'use strict';
// The conformance scenarios (scenarios.json here) run by the Node client,
// @volt/broker-client, against a real broker and the dev server started by
// the Node client's own test helpers. One node:test test per scenario;
// $VOLT_CONFORMANCE_FILTER (a substring) runs only the matching ones.

const test = require('node:test');
const assert = require('assert');
const fs = require('fs');
const path = require('path');

const NODE_DIR = path.resolve(__dirname, '../../client-lib/node');
const { ClusterDaemonClient, DaemonClientError } = require(NODE_DIR);
const h = require(path.join(NODE_DIR, 'test/helpers'));

const SPEC = JSON.parse(fs.readFileSync(path.join(__dirname, 'scenarios.json'), 'utf8'));
const unhandled = h.trackUnhandled();
const WAIT = 10000; // ms, for anything the broker or the server does (h.slack stretches it)

let server;
let broker;

/** A scenario value as the Node client gives and takes it. */
function native(v) {
  if (v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map(native);
  const keys = Object.keys(v);
  if (keys.length === 1 && keys[0] === '$bin') return Buffer.from(v.$bin, 'base64');
  if (keys.length === 1 && keys[0] === '$int') return BigInt(v.$int);
  const out = {};
  for (const k of keys) out[k] = native(v[k]);
  return out;
}

/**
 * A scenario value as the dev server's control API takes it: binary stays
 * {"$bin": ...} (the dev server decodes it); a 64-bit integer becomes a
 * JSON number (the scenarios use ones a double holds exactly, since the dev
 * server is JavaScript).
 */
function serverSide(v) {
  if (v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map(serverSide);
  const keys = Object.keys(v);
  if (keys.length === 1 && keys[0] === '$int') return Number(v.$int);
  const out = {};
  for (const k of keys) out[k] = serverSide(v[k]);
  return out;
}

function show(v) {
  return JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? `${x}n` : x));
}

function checkError(e, expect, what) {
  assert.ok(e instanceof DaemonClientError, `${what}: expected a DaemonClientError ${expect.error}, got ${e && e.stack}`);
  assert.strictEqual(e.code, expect.error, `${what}: expected code ${expect.error}, got ${e.code} (${e.message})`);
  if (expect.server_code !== undefined) {
    assert.strictEqual(e.serverCode, expect.server_code, `${what}: expected server code ${expect.server_code}, got ${e.serverCode}`);
  }
  if (expect.message !== undefined) {
    assert.ok(e.message.includes(expect.message), `${what}: expected a message with "${expect.message}", got "${e.message}"`);
  }
}

function checkOutcome(outcome, expect, what) {
  if (expect.error !== undefined) {
    assert.ok(!outcome.ok, `${what}: expected error ${expect.error}, got data ${show(outcome.value)}`);
    checkError(outcome.error, expect, what);
  } else {
    assert.ok(outcome.ok, `${what}: expected data ${show(expect.data)}, got error ${outcome.error && outcome.error.code}: ${outcome.error && outcome.error.message}`);
    const want = native(expect.data);
    // An absent answer is null in the scenarios.
    const got = outcome.value === undefined ? null : outcome.value;
    assert.deepStrictEqual(got, want, `${what}: expected ${show(want)}, got ${show(got)}`);
  }
}

/** Settles to {ok, value} / {ok: false, error}, never rejects. */
function outcomeOf(promise) {
  return promise.then((value) => ({ ok: true, value }), (error) => ({ ok: false, error }));
}

class Run {
  constructor(name) {
    this.name = name;
    this.clients = new Map();
    this.bg = new Map();
  }

  client(id) {
    let c = this.clients.get(id);
    if (c) return c;
    c = new ClusterDaemonClient({
      serverUrl: 'https://api.voltcloud.dev',
      controlSocketUrl: 'wss://api.voltcloud.dev/control',
      credentials: { teamClusterId: 'cluster-dev', daemonPassword: 'dev-password' },
      brokerSocket: broker.sock,
      socket: { reconnectionDelay: 50, reconnectionDelayMax: 300 },
      bigInt: true,
    });
    c.events = [];
    c.errors = [];
    c.calls = new Map();
    c.messages = [];
    c.onError((e) => c.errors.push(e));
    c.onConnected(() => c.events.push('connected'));
    c.onDisconnected(() => c.events.push('disconnected'));
    this.clients.set(id, c);
    return c;
  }

  async step(s, i) {
    const what = `${this.name} step ${i} (${s.do})`;
    const c = s.client !== undefined ? this.client(s.client) : null;
    switch (s.do) {
      case 'connect':
        await h.within(c.connect(), h.slack(WAIT), `${what}: connect()`);
        return;
      case 'handle':
        c.registerHandler(s.command, async (payload) => {
          c.calls.set(s.command, (c.calls.get(s.command) || 0) + 1);
          if (s.echo) return payload;
          if (s.fail) throw new DaemonClientError(s.fail.code, s.fail.message);
          if (s.throw !== undefined) throw new Error(s.throw);
          return native(s.reply);
        });
        return;
      case 'subscribe':
        c.onMessage((m) => c.messages.push(m));
        return;
      case 'send': {
        const out = await h.within(outcomeOf(c.sendCommand(s.command, native(s.payload), s.timeout_ms)), h.slack(WAIT + (s.timeout_ms || 0) + 3000), what);
        checkOutcome(out, s.expect, what);
        return;
      }
      case 'send_bg': {
        const ent = { settled: 0, outcome: null };
        ent.promise = outcomeOf(c.sendCommand(s.command, native(s.payload), s.timeout_ms)).then((o) => {
          ent.settled++;
          ent.outcome = o;
          return o;
        });
        this.bg.set(s.as, ent);
        return;
      }
      case 'settle': {
        const ent = this.bg.get(s.as);
        const out = await h.within(ent.promise, h.slack(WAIT), what);
        checkOutcome(out, s.expect, what);
        return;
      }
      case 'settled_once': {
        const ent = this.bg.get(s.as);
        assert.strictEqual(ent.settled, 1, `${what}: expected 1 settlement of "${s.as}", got ${ent.settled}`);
        return;
      }
      case 'emit':
        c.emit({ type: s.type, data: native(s.data) });
        return;
      case 'wait_handlers':
        await h.waitFor(async () => {
          const st = await broker.status().catch(() => null);
          if (!st || st.clients.filter((x) => x.handlers.includes(s.command)).length < s.clients) return false;
          const sv = await server.state();
          return sv.connected.some((d) => d.registered && d.handlers.includes(s.command));
        }, h.slack(WAIT), `${what}: ${s.clients} handler(s) of ${s.command} at the broker and the server`);
        return;
      case 'wait_subscribers':
        await h.waitFor(async () => {
          const st = await broker.status().catch(() => null);
          return st && st.clients.filter((x) => x.subscriptions.length > 0).length >= s.clients;
        }, h.slack(WAIT), `${what}: ${s.clients} subscriber(s) at the broker`);
        return;
      case 'wait_pending':
        await h.waitFor(async () => {
          const st = await broker.status().catch(() => null);
          return st && st.counters.pending >= s.count;
        }, h.slack(WAIT), `${what}: ${s.count} request(s) pending at the broker`);
        return;
      case 'server_request': {
        const body = { command: s.command, timeoutMs: 10000 };
        if (s.payload !== undefined) body.payload = serverSide(s.payload);
        const r = await server.post('/_dev/server-request', body);
        assert.strictEqual(r.status, 200, `${what}: HTTP ${r.status} ${show(r.body)}`);
        const resp = r.body.response;
        const expect = s.expect || {};
        if (expect.error !== undefined) {
          assert.strictEqual(resp.success, false, `${what}: expected error ${expect.error}, got ${show(resp)}`);
          assert.strictEqual(resp.error.code, expect.error, `${what}: expected code ${expect.error}, got ${show(resp.error)}`);
          if (expect.message !== undefined) {
            assert.ok(resp.error.message.includes(expect.message), `${what}: expected a message with "${expect.message}", got ${show(resp.error)}`);
          }
        } else {
          assert.strictEqual(resp.success, true, `${what}: expected success, got ${show(resp)}`);
          if (expect.data !== undefined) assert.deepStrictEqual(resp.data, expect.data, `${what}: expected ${show(expect.data)}, got ${show(resp.data)}`);
        }
        return;
      }
      case 'expect_calls':
        await h.waitFor(() => (c.calls.get(s.command) || 0) >= s.count, h.slack(WAIT), `${what}: ${s.count} call(s) of ${s.command}`).catch(() => {});
        assert.strictEqual(c.calls.get(s.command) || 0, s.count, `${what}: expected ${s.count} call(s) of ${s.command}, got ${c.calls.get(s.command) || 0}`);
        return;
      case 'server_message':
        await server.post('/_dev/message', { type: s.type, data: serverSide(s.data) });
        return;
      case 'expect_message': {
        const m = await h.waitFor(() => c.messages.find((x) => x.type === s.type), h.slack(WAIT), `${what}: message ${s.type}`);
        const want = native(s.data);
        assert.deepStrictEqual(m.data, want, `${what}: expected ${show(want)}, got ${show(m.data)}`);
        return;
      }
      case 'server_expect_emit': {
        const ev = await server.waitEvent('message_in', (e) => e.type === s.type, h.slack(WAIT));
        assert.deepStrictEqual(ev.data, s.data, `${what}: expected ${show(s.data)}, got ${show(ev.data)}`);
        return;
      }
      case 'server_behavior': {
        const r = await server.post('/_dev/behavior', s.body);
        assert.strictEqual(r.status, 200, `${what}: HTTP ${r.status} ${show(r.body)}`);
        return;
      }
      case 'drop_upstream': {
        const r = await server.post('/_dev/disconnect', { mode: s.mode });
        assert.strictEqual(r.status, 200, `${what}: HTTP ${r.status}`);
        return;
      }
      case 'expect_events': {
        const same = () => show(c.events) === show(s.events);
        await h.waitFor(() => same() || c.events.length > s.events.length, h.slack(WAIT), `${what}: events ${show(s.events)}, got ${show(c.events)}`);
        assert.deepStrictEqual(c.events, s.events, `${what}: expected events ${show(s.events)}, got ${show(c.events)}`);
        return;
      }
      case 'stop_broker':
        if (s.how === 'kill') await broker.kill();
        else assert.strictEqual(await broker.stop(), 0, `${what}: the broker exits cleanly`);
        return;
      case 'start_broker':
        await broker.start();
        return;
      default:
        throw new Error(`${what}: unknown step "${s.do}"`);
    }
  }

  finish() {
    for (const c of this.clients.values()) c.disconnect();
  }
}

test.before(async () => {
  server = await h.startDevServer();
  broker = await h.startBroker(server, SPEC.broker);
});

test.after(async () => {
  try {
    // (Not running: a restart scenario failed half-way, and said so.)
    if (broker && broker.proc) assert.strictEqual(await broker.stop(), 0, 'the broker exits cleanly (no leak under valgrind)');
  } finally {
    if (broker) broker.cleanup();
    if (server) await server.stop();
  }
  unhandled.assertNone();
});

const filter = process.env.VOLT_CONFORMANCE_FILTER || '';
for (const sc of SPEC.scenarios) {
  if (filter && !sc.name.includes(filter)) continue;
  test(sc.name, async () => {
    if (!broker.proc) await broker.start();
    await server.post('/_dev/reset', {});
    await broker.waitState('ready', WAIT);
    const run = new Run(sc.name);
    try {
      for (let i = 0; i < sc.steps.length; i++) await run.step(sc.steps[i], i);
    } finally {
      run.finish();
    }
  });
}
