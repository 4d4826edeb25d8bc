'use strict';
// Bad input from the broker's side of the socket: garbage, frames of the
// wrong shape, lengths over max_frame, a connection closed in the middle
// of a frame. Each gives a clear error (onError, or the rejection of
// connect() before the first welcome) and a reconnect; nothing hangs,
// nothing is thrown at the process, no promise is left unhandled.
// The peer here is a fake broker (test/fake-broker.js), since the real one
// never sends such things.

const test = require('node:test');
const assert = require('assert');
const { encode } = require('@msgpack/msgpack');
const { DaemonClientError } = require('..');
const { FakeBroker, frame, fakeClient: client } = require('./fake-broker');
const h = require('./helpers');

const unhandled = h.trackUnhandled();
test.after(() => unhandled.assertNone());


function rawFrame(body) {
  const b = Buffer.from(body);
  const head = Buffer.alloc(4);
  head.writeUInt32BE(b.length, 0);
  return Buffer.concat([head, b]);
}

// What the broker sends once the client is ready, and what the client says.
const CASES = [
  ['a body that is not msgpack', rawFrame([0xc1]), 'BadFrame', /sent a frame that is not valid msgpack/],
  ['bytes after the map', rawFrame([...encode({ op: 'event', event: 'x' }), 0]), 'BadFrame', /not valid msgpack/],
  ['a body that is not a map', rawFrame(encode([1, 2, 3])), 'BadFrame', /the frame is not a msgpack map/],
  ['a map without op', rawFrame(encode({ id: 1 })), 'BadFrame', /the frame has no string "op"/],
  ['a field of the wrong type', rawFrame(encode({ op: 'result', id: 'one', ok: true })), 'BadFrame', /"result" frame with a string "id"/],
  ['a __proto__ key', rawFrame([0x82, 0xa2, 0x6f, 0x70, 0xa1, 0x78, 0xa9, ...Buffer.from('__proto__'), 0x01]), 'BadFrame', /not valid msgpack.*__proto__/],
  ['a length of 0', Buffer.from([0, 0, 0, 0]), 'BadFrame', /a frame of length 0/],
  ['a length over max_frame', Buffer.from([0x01, 0x00, 0x00, 0x01, 1, 2, 3]), 'FrameTooLarge', /a frame of 16777217 bytes, over the limit of 16777216/],
  ['a second welcome', frame({ op: 'welcome', version: 2, max_frame: 100, state: 'ready', timeout_ms: 1 }), 'BadFrame', /a second welcome/],
];

for (const [what, bytes, code, pattern] of CASES) {
  test(`the broker sends ${what}: ${code}, requests fail once, a reconnect`, async () => {
    const fake = await new FakeBroker().start();
    const c = client(fake);
    try {
      await h.within(c.connect(), 5000, 'connect()');
      let settled = 0;
      const inFlight = h.rejection(c.sendCommand('never', {}).finally(() => settled++), 5000, 'the request in flight');
      await h.waitFor(() => fake.frames.some((f) => f.op === 'request'), 5000, 'the request at the broker');
      fake.conns[0].raw(bytes);
      const e = await inFlight;
      assert.ok(e instanceof DaemonClientError);
      assert.strictEqual(e.code, 'SOCKET_NOT_READY');
      assert.strictEqual(e.cause && e.cause.code, code, `in flight: ${e.message}`);
      await h.waitFor(() => fake.hellos === 2 && c.isReady(), 5000, 'the reconnect');
      const errs = c.errors.filter((x) => x.code === code);
      assert.strictEqual(errs.length, 1, `one ${code} error: ${c.errors.map((x) => `${x.code}: ${x.message}`).join('; ')}`);
      assert.match(errs[0].message, pattern);
      assert.match(errs[0].message, new RegExp(fake.sock.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')), 'the message names the socket');
      assert.strictEqual(c.events.length, 3, `events: ${c.events}`);
      assert.strictEqual(c.events[0], 'connected');
      assert.match(c.events[1], /^disconnected: broker connection lost: /);
      assert.strictEqual(c.events[2], 'connected');
      assert.deepStrictEqual(await c.sendCommand('echo', { after: what }), { after: what });
      assert.strictEqual(settled, 1);
    } finally {
      c.disconnect();
      await fake.stop();
    }
  });
}

for (const [what, bytes, pattern] of [
  ['in the middle of a frame', Buffer.concat([Buffer.from([0, 0, 0, 100]), Buffer.alloc(10)]), /closed the connection in the middle of a frame \(10 of the 100 bytes of a frame\)/],
  ['in the middle of a header', Buffer.from([0, 0]), /in the middle of a frame \(2 of the 4 bytes of a frame header\)/],
  ['between frames', Buffer.alloc(0), /the broker at .* closed the connection$/],
]) {
  test(`the broker closes ${what}: a clear error and a reconnect`, async () => {
    const fake = await new FakeBroker().start();
    const c = client(fake);
    try {
      await h.within(c.connect(), 5000, 'connect()');
      fake.conns[0].raw(bytes);
      fake.conns[0].end();
      await h.waitFor(() => fake.hellos === 2 && c.isReady(), 5000, 'the reconnect');
      assert.strictEqual(c.errors.length, 1, c.errors.map((x) => x.message).join('; '));
      assert.match(c.errors[0].message, pattern);
      assert.strictEqual(c.errors[0].code, bytes.length ? 'BadFrame' : 'BrokerGone');
      assert.deepStrictEqual(await c.sendCommand('echo', 1), 1);
    } finally {
      c.disconnect();
      await fake.stop();
    }
  });
}

test('a small max_frame is honoured both ways', async () => {
  const fake = await new FakeBroker({ welcome: { max_frame: 4096 } }).start();
  const c = client(fake);
  try {
    await h.within(c.connect(), 5000, 'connect()');
    const e = await h.rejection(c.sendCommand('echo', 'x'.repeat(5000)), 1000, 'over max_frame');
    assert.strictEqual(e.code, 'PayloadTooLarge');
    assert.match(e.message, /over the broker's max_frame of 4096/);
    assert.ok(!fake.frames.some((f) => f.op === 'request'), 'nothing was sent');
    fake.conns[0].send({ op: 'message', type: 'big', data: 'y'.repeat(5000) });
    await h.waitFor(() => fake.hellos === 2 && c.isReady(), 5000, 'the reconnect');
    assert.strictEqual(c.errors[0].code, 'FrameTooLarge');
    assert.match(c.errors[0].message, /over the limit of 4096/);
  } finally {
    c.disconnect();
    await fake.stop();
  }
});

test('random garbage, connection after connection: always an error and a reconnect', async () => {
  // A seeded generator: the same garbage every run.
  let seed = 0x9e3779b9;
  const rnd = () => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) / 0x100000000;
  };
  const N = 30;
  const blobs = [];
  for (let i = 0; i < N; i++) {
    const body = Buffer.alloc(1 + Math.floor(rnd() * 300));
    for (let j = 0; j < body.length; j++) body[j] = Math.floor(rnd() * 256);
    // Half with a believable length in front, half raw.
    blobs.push(i % 2 ? rawFrame(body) : body);
  }
  const fake = await new FakeBroker({ onReady: (conn, i) => { if (i < N) conn.raw(blobs[i]); } }).start();
  const c = client(fake);
  try {
    await h.within(c.connect(), 5000, 'connect()');
    await h.waitFor(() => fake.hellos === N + 1 && c.isReady(), 20000, `${N + 1} connections`);
    // Every blob ended its connection with one of these (a raw blob may also
    // be a short frame that never completes: the next blob's connection
    // then reports nothing until that close).
    for (const e of c.errors) {
      assert.ok(e instanceof DaemonClientError);
      assert.ok(['BadFrame', 'FrameTooLarge', 'BrokerGone'].includes(e.code), `${e.code}: ${e.message}`);
    }
    assert.deepStrictEqual(await c.sendCommand('echo', 'alive'), 'alive');
  } finally {
    c.disconnect();
    await fake.stop();
  }
});

test('before the first welcome, any failure rejects connect() and stops the client', async (t) => {
  const cases = [
    ['garbage for a welcome', { answerHello: false, onFrame: (conn, f) => f.op === 'hello' && conn.raw(Buffer.from('HTTP/1.1 400 Bad Request\r\n\r\n')) }, 'FrameTooLarge', /a frame of \d+ bytes, over the limit of 1048576/],
    ['a welcome of version 1', { welcome: { version: 1 } }, 'VersionMismatch', /chose protocol version 1; this client speaks 2/],
    ['an error and a close', {
      answerHello: false,
      onFrame: (conn, f) => {
        if (f.op !== 'hello') return false;
        conn.send({ op: 'error', code: 'LimitExceeded', message: 'too many clients of uid 0 (maxClientsPerUid 64)' });
        conn.end();
        return true;
      },
    }, 'LimitExceeded', /closed the connection: LimitExceeded: too many clients of uid 0/],
    ['silence', { answerHello: false }, 'Timeout', /did not answer hello within 1000 ms/],
  ];
  for (const [what, opts, causeCode, pattern] of cases) {
    await t.test(what, async () => {
      const fake = await new FakeBroker(opts).start();
      const c = client(fake, { socket: { timeout: 1000, reconnectionDelay: 20 } });
      try {
        const e = await h.rejection(c.connect(), 5000, `connect() against ${what}`);
        assert.ok(e instanceof DaemonClientError);
        assert.strictEqual(e.code, 'SocketConnectionFailed');
        assert.strictEqual(e.cause && e.cause.code, causeCode, e.message);
        assert.match(e.message, pattern);
        assert.strictEqual(c.isReady(), false);
        const notReady = await h.rejection(c.sendCommand('echo'), 1000, 'send after');
        assert.match(notReady.message, /call connect\(\) first/, 'the client stopped');
        assert.deepStrictEqual(c.errors, [], 'connect() carries the error, onError does not repeat it');
      } finally {
        c.disconnect();
        await fake.stop();
      }
    });
  }
});

test('unknown ops and keys are ignored; the connection stays', async () => {
  const fake = await new FakeBroker().start();
  const c = client(fake);
  try {
    await h.within(c.connect(), 5000, 'connect()');
    fake.conns[0].send({ op: 'from-version-9', x: [1, 2] });
    fake.conns[0].send({ op: 'event', event: 'something-new', state: 'ready', extra: { a: 1 } });
    fake.conns[0].send({ op: 'pong', id: 12345 });
    fake.conns[0].send({ op: 'result', id: 999999, ok: true, surprise: true });
    assert.deepStrictEqual(await c.sendCommand('echo', 'still'), 'still');
    assert.strictEqual(fake.hellos, 1);
    assert.deepStrictEqual(c.errors, []);
    assert.strictEqual(c.isReady(), true);
  } finally {
    c.disconnect();
    await fake.stop();
  }
});

test('64-bit integers and call ids beyond 2^53 stay exact', async () => {
  const fake = await new FakeBroker().start();
  const c = client(fake, { bigInt: true });
  const got = [];
  c.onMessage((m) => got.push(m));
  c.registerHandler('h', async (p) => ({ back: p.v }));
  try {
    await h.within(c.connect(), 5000, 'connect()');
    fake.conns[0].send({ op: 'message', type: 'ints', data: { max: 2n ** 64n - 1n, min: -(2n ** 63n), safe: 2n ** 40n, small: 5 } });
    fake.conns[0].send({ op: 'call', id: 2n ** 60n + 1n, command: 'h', payload: { v: 2n ** 63n + 7n }, timeout_ms: 1000 });
    await h.waitFor(() => got.length === 1 && fake.frames.some((f) => f.op === 'reply'), 5000, 'message and reply');
    assert.deepStrictEqual(got[0].data, { max: 2n ** 64n - 1n, min: -(2n ** 63n), safe: 2 ** 40, small: 5 });
    const reply = fake.frames.find((f) => f.op === 'reply');
    assert.strictEqual(reply.id, 2n ** 60n + 1n, 'the call id comes back exactly');
    assert.strictEqual(reply.ok, true);
    assert.deepStrictEqual(reply.data, { back: 2n ** 63n + 7n });
  } finally {
    c.disconnect();
    await fake.stop();
  }
});

test('calls: unknown command, a reply after the connection ended, error frames', async () => {
  let release;
  let started = false;
  const late = new Promise((r) => { release = r; });
  const fake = await new FakeBroker().start();
  const c = client(fake);
  c.registerHandler('slow', async () => {
    started = true;
    await late;
    return 'too late';
  });
  try {
    await h.within(c.connect(), 5000, 'connect()');
    fake.conns[0].send({ op: 'call', id: 1, command: 'not-mine', timeout_ms: 1000 });
    await h.waitFor(() => fake.frames.some((f) => f.op === 'reply' && f.id === 1), 5000, 'the NoHandler reply');
    const r1 = fake.frames.find((f) => f.op === 'reply' && f.id === 1);
    assert.strictEqual(r1.ok, false);
    assert.strictEqual(r1.code, 'NoHandler');
    fake.conns[0].send({ op: 'error', code: 'EmitFailed', message: 'the upstream session is not ready', about: 'emit' });
    await h.waitFor(() => c.errors.length === 1, 5000, 'the EmitFailed error');
    assert.strictEqual(c.errors[0].code, 'EmitFailed');
    assert.match(c.errors[0].message, /the upstream session is not ready \(about "emit"\)/);
    fake.conns[0].send({ op: 'call', id: 2, command: 'slow', timeout_ms: 1000 });
    await h.waitFor(() => started, 5000, 'the handler to start');
    fake.conns[0].end();
    await h.waitFor(() => fake.hellos === 2 && c.isReady(), 5000, 'the reconnect');
    release();
    // A round trip on the new connection: a reply sent there before it
    // would have reached the broker first.
    assert.deepStrictEqual(await c.sendCommand('echo', 'sync'), 'sync');
    assert.ok(!fake.frames.some((f) => f.op === 'reply' && f.id === 2), 'no reply on the new connection');
    assert.ok(!c.errors.some((e) => e.code === 'HandlerError'), 'the late result is not an error');
  } finally {
    c.disconnect();
    await fake.stop();
  }
});

test('upstream events: disconnected and connected pair up; a failed upstream fails connect() at once', async () => {
  const fake = await new FakeBroker().start();
  const c = client(fake);
  try {
    await h.within(c.connect(), 5000, 'connect()');
    fake.conns[0].send({ op: 'event', event: 'disconnected', state: 'backoff', reason: 'server closed the connection' });
    fake.conns[0].send({ op: 'event', event: 'error', state: 'backoff', code: 'SocketConnectionFailed', message: 'connection refused' });
    await h.waitFor(() => !c.isReady() && c.errors.length === 1, 5000, 'not ready');
    assert.strictEqual(c.errors[0].code, 'SocketConnectionFailed');
    fake.conns[0].send({ op: 'event', event: 'connected', state: 'ready', team_cluster_id: 'cluster-fake' });
    await h.waitFor(() => c.isReady(), 5000, 'ready again');
    assert.deepStrictEqual(c.events, ['connected', 'disconnected: server closed the connection', 'connected']);
  } finally {
    c.disconnect();
    await fake.stop();
  }

  const failed = await new FakeBroker({
    ready: false,
    welcome: { state: 'failed', reason: 'enrollment refused: invalid token', code: 'EnrollmentFailed', message: 'enrollment refused (401): invalid token' },
  }).start();
  const d = client(failed, { socket: { timeout: 20000 } });
  try {
    const t0 = Date.now();
    const e = await h.rejection(d.connect(), 5000, 'connect() to a failed upstream');
    assert.strictEqual(e.code, 'EnrollmentFailed');
    assert.strictEqual(e.message, 'enrollment refused (401): invalid token');
    assert.ok(Date.now() - t0 < 5000, 'at once, not at the 20 s deadline');
  } finally {
    d.disconnect();
    await failed.stop();
  }
});

test('the password: PermissionDenied makes the getter throw, connect() still succeeds', async () => {
  const fake = await new FakeBroker({
    onFrame: (conn, f) => {
      if (f.op !== 'credential') return false;
      conn.send({ op: 'result', id: f.id, ok: false, code: 'PermissionDenied', message: 'the daemon password is only given to root and the broker\'s own user' });
      return true;
    },
  }).start();
  const c = client(fake);
  try {
    await h.within(c.connect(), 5000, 'connect()');
    assert.strictEqual(c.isReady(), true);
    assert.strictEqual(c.getTeamClusterId(), 'cluster-fake');
    assert.throws(() => c.getDaemonPassword(), (e) => e instanceof DaemonClientError && e.code === 'PermissionDenied' && /gives the daemon password only to root and its own user; this process runs as uid \d+/.test(e.message));
    const cred = fake.frames.find((f) => f.op === 'credential');
    assert.strictEqual(cred.name, 'daemonPassword');
  } finally {
    c.disconnect();
    await fake.stop();
  }
});

test('a broker that changes team cluster under a connected client: it stops, with an error', async () => {
  const fake = await new FakeBroker().start();
  const c = client(fake);
  try {
    await h.within(c.connect(), 5000, 'connect()');
    fake.conns[0].send({ op: 'event', event: 'connected', state: 'ready', team_cluster_id: 'cluster-other' });
    await h.waitFor(() => c.errors.length === 1 && !c.isReady(), 5000, 'the mismatch');
    assert.strictEqual(c.errors[0].code, 'SocketRegistrationFailed');
    assert.match(c.errors[0].message, /teamClusterId "cluster-fake" does not match the broker's: .* serves team cluster "cluster-other"/);
    assert.strictEqual(c.events[c.events.length - 1].startsWith('disconnected: teamClusterId'), true, c.events.join('; '));
  } finally {
    c.disconnect();
    await fake.stop();
  }
});
