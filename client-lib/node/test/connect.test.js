'use strict';
// connect() when the upstream cannot get ready: the seed's codes
// (SocketConnectionFailed, SocketRegistrationFailed, EnrollmentFailed)
// with the broker's reason, at once when the upstream has failed for good,
// else at the deadline (socket.timeout). A real broker and the real dev
// server each time, made to fail the way a test needs.

const test = require('node:test');
const assert = require('assert');
const fs = require('fs');
const net = require('net');
const { ClusterDaemonClient, DaemonClientError } = require('..');
const h = require('./helpers');

const unhandled = h.trackUnhandled();
test.after(() => unhandled.assertNone());

function client(sock, extra = {}) {
  return new ClusterDaemonClient({
    serverUrl: 'https://api.voltcloud.dev',
    controlSocketUrl: 'wss://api.voltcloud.dev/control',
    credentials: { teamClusterId: 'cluster-dev', daemonPassword: 'dev-password' },
    brokerSocket: sock,
    ...extra,
  });
}

// What keeps the process alive, by kind (sockets, timers).
function resources() {
  const counts = {};
  for (const r of process.getActiveResourcesInfo()) counts[r] = (counts[r] || 0) + 1;
  return counts;
}

async function assertNothingLeft(before) {
  await new Promise((r) => setImmediate(r));
  const after = resources();
  for (const kind of ['PipeWrap', 'Timeout']) {
    assert.ok((after[kind] || 0) <= (before[kind] || 0), `${kind}: ${before[kind] || 0} before connect(), ${after[kind] || 0} after it failed`);
  }
}

async function withBroker(server, config, fn) {
  const broker = await h.startBroker(server, config);
  try {
    await fn(broker);
  } finally {
    const code = await broker.stop();
    broker.cleanup();
    assert.strictEqual(code, 0, 'the broker exits cleanly (no leak under valgrind)');
  }
}

async function noBrokerAt(dir) {
  const sock = `${dir}/broker.sock`;
  const before = resources();
  const c = client(sock);
  const t0 = Date.now();
  const e = await h.rejection(c.connect(), 5000, 'connect()');
  assert.ok(Date.now() - t0 < 2000, 'at once');
  assert.ok(e instanceof DaemonClientError);
  assert.strictEqual(e.code, 'SocketConnectionFailed');
  assert.strictEqual(e.message, `no broker at ${sock}: is volt-broker running? set VOLT_BROKER_SOCKET`);
  await assertNothingLeft(before);
  // The same through $VOLT_BROKER_SOCKET, without the option.
  const saved = process.env.VOLT_BROKER_SOCKET;
  process.env.VOLT_BROKER_SOCKET = `${dir}/other.sock`;
  try {
    const e2 = await h.rejection(client(undefined).connect(), 5000, 'connect() via the environment');
    assert.strictEqual(e2.message, `no broker at ${dir}/other.sock: is volt-broker running? set VOLT_BROKER_SOCKET`);
  } finally {
    if (saved === undefined) delete process.env.VOLT_BROKER_SOCKET;
    else process.env.VOLT_BROKER_SOCKET = saved;
  }
}

test('no broker at the path: SocketConnectionFailed at once, saying what to do', async () => {
  const dir = h.tempDir('none');
  try {
    await noBrokerAt(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('registration refused: SocketRegistrationFailed with the server\'s reason at the deadline', async () => {
  const server = await h.startDevServer();
  try {
    await server.post('/_dev/behavior', { registerRefuse: 100000 });
    await withBroker(server, {}, async (broker) => {
      const before = resources();
      const deadline = h.slack(3000);
      const c = client(broker.sock, { socket: { timeout: deadline } });
      const errors = [];
      c.onError((e) => errors.push(e));
      const t0 = Date.now();
      const e = await h.rejection(c.connect(), h.slack(10000), 'connect()');
      const took = Date.now() - t0;
      assert.strictEqual(e.code, 'SocketRegistrationFailed', e.message);
      assert.match(e.message, /RegistrationRefused|refused/i);
      assert.ok(e.message.endsWith(`(the upstream session did not become ready within ${deadline} ms)`), e.message);
      assert.ok(took >= deadline - 100, `at the deadline: ${took} ms`);
      assert.ok(errors.some((x) => x.code === 'SocketRegistrationFailed'), 'the upstream errors reached onError too');
      assert.strictEqual(c.isReady(), false);
      await assertNothingLeft(before);
    });
  } finally {
    await server.stop();
  }
});

test('enrollment refused for good: EnrollmentFailed at once', async () => {
  const server = await h.startDevServer();
  try {
    const config = {
      serverUrl: `http://127.0.0.1:${server.port}`,
      credentials: { teamClusterId: 'cluster-dev', enrollmentToken: 'tok-not-valid' },
    };
    await withBroker(server, config, async (broker) => {
      await broker.waitState('failed', 10000);
      // A deadline far beyond what "at once" may take, even under valgrind.
      const c = client(broker.sock, { socket: { timeout: h.slack(60000) } });
      const t0 = Date.now();
      const e = await h.rejection(c.connect(), h.slack(15000), 'connect()');
      assert.strictEqual(e.code, 'EnrollmentFailed', e.message);
      assert.match(e.message, /InvalidToken|invalid|refused/i);
      assert.ok(Date.now() - t0 < h.slack(5000), 'long before the deadline');
    });
  } finally {
    await server.stop();
  }
});

test('enrollment refused while connect() waits: EnrollmentFailed as soon as the upstream fails', async () => {
  const server = await h.startDevServer();
  let paused = false;
  try {
    const config = {
      serverUrl: `http://127.0.0.1:${server.port}`,
      credentials: { teamClusterId: 'cluster-dev', enrollmentToken: 'tok-not-valid' },
    };
    // The enrollment waits on a stopped server until the client is there.
    server.proc.kill('SIGSTOP');
    paused = true;
    await withBroker(server, config, async (broker) => {
      const c = client(broker.sock, { socket: { timeout: h.slack(60000) } });
      const errors = [];
      c.onError((e) => errors.push(e));
      const pending = h.rejection(c.connect(), h.slack(20000), 'connect()');
      await broker.waitLog('hello: name=', 5000);
      const t0 = Date.now();
      server.proc.kill('SIGCONT');
      paused = false;
      const e = await pending;
      assert.strictEqual(e.code, 'EnrollmentFailed', e.message);
      assert.ok(Date.now() - t0 < h.slack(8000), 'soon after the refusal, not at the deadline');
      assert.ok(errors.some((x) => x.code === 'EnrollmentFailed'));
    });
  } finally {
    if (paused) server.proc.kill('SIGCONT');
    await server.stop();
  }
});

test('no server at the URL: SocketConnectionFailed with the broker\'s reason at the deadline', async () => {
  const port = await new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
  const config = {
    controlSocketUrl: `ws://127.0.0.1:${port}/control`,
    credentials: { teamClusterId: 'cluster-dev', daemonPassword: 'dev-password' },
  };
  await withBroker(null, config, async (broker) => {
    const deadline = h.slack(2000);
    const c = client(broker.sock, { socket: { timeout: deadline } });
    const t0 = Date.now();
    const e = await h.rejection(c.connect(), deadline + 5000, 'connect()');
    assert.strictEqual(e.code, 'SocketConnectionFailed', e.message);
    assert.match(e.message, new RegExp(`127\\.0\\.0\\.1.*${port}|refused`, 'i'));
    assert.match(e.message, new RegExp(`did not become ready within ${deadline} ms`));
    assert.ok(Date.now() - t0 >= deadline - 100);
  });
});

test('a broker with no upstream configured: SocketConnectionFailed naming the state', async () => {
  await withBroker(null, {}, async (broker) => {
    const deadline = h.slack(1000);
    const c = client(broker.sock, { socket: { timeout: deadline } });
    const e = await h.rejection(c.connect(), deadline + 5000, 'connect()');
    assert.strictEqual(e.code, 'SocketConnectionFailed');
    assert.strictEqual(e.message, `the upstream session did not become ready within ${deadline} ms (upstream idle: no controlSocketUrl configured)`);
    assert.strictEqual(c.getTeamClusterId(), 'cluster-dev', 'the broker named none: the configured one stays');
  });
});
