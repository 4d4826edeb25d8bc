'use strict';
// Losing the broker: a real volt-broker killed (SIGKILL, as in a crash) or
// stopped, and started again on the same socket. The client reconnects
// with backoff, registers its handlers and subscription again, fires
// onDisconnected/onConnected as for an upstream drop, fails what was in
// flight with SOCKET_NOT_READY exactly once, and sends the messages it kept.

const test = require('node:test');
const assert = require('assert');
const { ClusterDaemonClient, DaemonClientError } = require('..');
const h = require('./helpers');

const unhandled = h.trackUnhandled();
let server;

test.before(async () => {
  server = await h.startDevServer();
});

test.after(async () => {
  if (server) await server.stop();
  unhandled.assertNone();
});

function client(sock, extra = {}) {
  const c = new ClusterDaemonClient({
    serverUrl: 'https://api.voltcloud.dev',
    controlSocketUrl: 'wss://api.voltcloud.dev/control',
    credentials: { teamClusterId: 'cluster-dev', daemonPassword: 'dev-password' },
    brokerSocket: sock,
    socket: { reconnectionDelay: 50, reconnectionDelayMax: 400 },
    ...extra,
  });
  c.errors = [];
  c.events = [];
  c.onError((e) => c.errors.push(e));
  c.onConnected(() => c.events.push('connected'));
  c.onDisconnected((r) => c.events.push(`disconnected: ${r}`));
  return c;
}

async function handlersAtServer() {
  const st = await server.state();
  const d = st.connected.find((x) => x.registered);
  return d ? d.handlers : [];
}

for (const how of ['killed', 'stopped']) {
  test(`the broker ${how} and started again: everything comes back`, async () => {
    const broker = await h.startBroker(server, {});
    const c = client(broker.sock);
    const messages = [];
    try {
      c.registerHandler('survivor', async (p) => ({ echoed: p }));
      c.onMessage((m) => messages.push(m));
      await h.within(c.connect(), h.slack(10000), 'connect()');
      await h.waitFor(async () => (await handlersAtServer()).includes('survivor'), h.slack(5000), 'the handler at the server');

      let settled = 0;
      const inFlight = h.rejection(c.sendCommand('never', {}, 30000).finally(() => settled++), h.slack(10000), 'the request in flight');
      await h.waitFor(async () => (await broker.status()).counters.pending >= 1, h.slack(5000), 'the request at the broker');
      if (how === 'killed') await broker.kill();
      else assert.strictEqual(await broker.stop(), 0, 'a clean stop');

      const e = await inFlight;
      assert.ok(e instanceof DaemonClientError);
      assert.strictEqual(e.code, 'SOCKET_NOT_READY', e.message);
      await h.waitFor(() => c.events.length === 2, h.slack(5000), 'onDisconnected');
      assert.match(c.events[1], /^disconnected: broker connection lost: /);
      assert.strictEqual(c.isReady(), false);
      const notReady = await h.rejection(c.sendCommand('echo', 1), 1000, 'send while the broker is away');
      assert.strictEqual(notReady.code, 'SOCKET_NOT_READY');
      assert.match(notReady.message, /not connected to the broker at .* \(reconnecting\)/);
      // Kept here until the session is back.
      c.emit({ type: 'while-the-broker-was-away', data: { n: 1 } });
      c.emit({ type: 'while-the-broker-was-away', data: { n: 2 } });
      c.emit({ type: 'volatile-while-away' }, { volatile: true });
      await h.waitFor(() => c.errors.some((x) => x.code === 'EmitFailed'), 2000, 'EmitFailed for the volatile emit');
      // Let a few reconnect attempts fail before the broker is back.
      await h.waitFor(() => c.errors.some((x) => /no broker at/.test(x.message)), h.slack(5000), 'a failed reconnect attempt');

      const since = await server.lastSeq();
      await broker.start();
      await h.waitFor(() => c.isReady(), h.slack(15000), 'ready again');
      assert.deepStrictEqual(c.events.map((x) => x.split(':')[0]), ['connected', 'disconnected', 'connected']);
      assert.strictEqual(settled, 1, 'the request in flight settled once');
      // Handlers and the subscription were announced again.
      await h.waitFor(async () => (await handlersAtServer()).includes('survivor'), h.slack(5000), 'the handler at the server again');
      const r = await server.serverRequest('survivor', { x: 1 });
      assert.deepStrictEqual(r.data, { echoed: { x: 1 } });
      await server.post('/_dev/message', { type: 'after-restart', data: 7 });
      await h.waitFor(() => messages.some((m) => m.type === 'after-restart'), h.slack(5000), 'the message');
      const kept = await h.waitFor(async () => {
        const evs = (await server.events('message_in', since)).filter((x) => x.type === 'while-the-broker-was-away');
        return evs.length === 2 && evs;
      }, h.slack(5000), 'the kept messages');
      assert.deepStrictEqual(kept.map((x) => x.data.n), [1, 2], 'in order');
      assert.deepStrictEqual(await c.sendCommand('echo', { back: true }), { back: true });
      // Failed attempts were reported once each, not once per attempt.
      const gone = c.errors.filter((x) => /no broker at/.test(x.message));
      assert.strictEqual(gone.length, 1, gone.map((x) => x.message).join('; '));
    } finally {
      c.disconnect();
      const code = await broker.stop();
      broker.cleanup();
      assert.strictEqual(code, 0, 'the broker exits cleanly (no leak under valgrind)');
    }
  });
}

test('socket.reconnection false: the client stays down after losing the broker', async () => {
  const broker = await h.startBroker(server, {});
  const c = client(broker.sock, { socket: { reconnection: false } });
  try {
    await h.within(c.connect(), h.slack(10000), 'connect()');
    await broker.kill();
    await h.waitFor(() => c.events.length === 2, h.slack(5000), 'onDisconnected');
    await broker.start();
    // A connect() made now finds the broker: nothing else would have.
    const e = await h.rejection(c.sendCommand('echo', 1), 1000, 'send');
    assert.match(e.message, /call connect\(\) first/);
    await h.within(c.connect(), h.slack(10000), 'connect() again');
    assert.deepStrictEqual(c.events.map((x) => x.split(':')[0]), ['connected', 'disconnected', 'connected']);
  } finally {
    c.disconnect();
    const code = await broker.stop();
    broker.cleanup();
    assert.strictEqual(code, 0);
  }
});

test('many requests in flight when the broker dies: each settles exactly once', async () => {
  const broker = await h.startBroker(server, {});
  const c = client(broker.sock);
  try {
    await h.within(c.connect(), h.slack(10000), 'connect()');
    const N = 500;
    const outcomes = new Array(N).fill(0);
    const all = [];
    for (let i = 0; i < N; i++) {
      const cmd = i % 2 ? 'never' : 'slow';
      all.push(c.sendCommand(cmd, { ms: 60000 }, 30000).then(
        () => { outcomes[i]++; return 'ok'; },
        (e) => { outcomes[i]++; return e.code; },
      ));
    }
    await h.waitFor(async () => (await broker.status()).counters.pending >= N, h.slack(10000), `${N} requests at the broker`);
    await broker.kill();
    const codes = await h.within(Promise.all(all), h.slack(10000), 'every request');
    assert.deepStrictEqual([...new Set(codes)], ['SOCKET_NOT_READY']);
    assert.ok(outcomes.every((n) => n === 1), 'each settled once');
    await broker.start();
    await h.waitFor(() => c.isReady(), h.slack(15000), 'ready again');
    assert.ok(outcomes.every((n) => n === 1), 'and never again');
  } finally {
    c.disconnect();
    const code = await broker.stop();
    broker.cleanup();
    assert.strictEqual(code, 0);
  }
});
