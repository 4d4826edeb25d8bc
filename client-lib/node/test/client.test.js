'use strict';
// ClusterDaemonClient against a real volt-broker and the real socket.io
// dev server: every call of the seed's API, its error codes, binary and
// 64-bit values, upstream drops.

const test = require('node:test');
const assert = require('assert');
const { ClusterDaemonClient, DaemonClientError } = require('..');
const { BrokerConnection } = require('../lib/connection');
const h = require('./helpers');

const BROKER_TIMEOUT = 2000; // the broker's commandTimeout here

let server;
let broker;
const clients = [];
const unhandled = h.trackUnhandled();

function seedOptions(extra) {
  return {
    serverUrl: 'https://api.voltcloud.dev',
    controlSocketUrl: 'wss://api.voltcloud.dev/control',
    credentials: { teamClusterId: 'cluster-dev', daemonPassword: 'not-the-brokers' },
    brokerSocket: broker.sock,
    ...extra,
  };
}

/** A client with an onError collector; disconnected after the file. */
function newClient(extra) {
  const c = new ClusterDaemonClient(seedOptions(extra));
  c.errors = [];
  c.onError((e) => c.errors.push(e));
  clients.push(c);
  return c;
}

async function connected(extra) {
  const c = newClient(extra);
  await h.within(c.connect(), h.slack(10000), 'connect()');
  return c;
}

test.before(async () => {
  server = await h.startDevServer();
  broker = await h.startBroker(server, { commandTimeout: BROKER_TIMEOUT });
  await broker.waitState('ready', 10000);
});

test.after(async () => {
  for (const c of clients) c.disconnect();
  try {
    if (broker) assert.strictEqual(await broker.stop(), 0, 'the broker exits cleanly (no leak under valgrind)');
  } finally {
    if (broker) broker.cleanup();
    if (server) await server.stop();
  }
  unhandled.assertNone();
});

test('connect() resolves once ready; the seed getters are synchronous', async () => {
  const c = newClient();
  let connectedCalls = 0;
  assert.strictEqual(c.onConnected(() => connectedCalls++), c, 'onConnected returns this');
  assert.strictEqual(c.isReady(), false);
  assert.strictEqual(c.getTeamClusterId(), 'cluster-dev', 'before connect: the configured id');
  assert.strictEqual(c.getDaemonPassword(), 'not-the-brokers', 'before connect: the configured password');
  await h.within(c.connect(), h.slack(10000), 'connect()');
  assert.strictEqual(c.isReady(), true);
  assert.strictEqual(connectedCalls, 1);
  assert.strictEqual(c.getTeamClusterId(), 'cluster-dev');
  assert.strictEqual(c.getDaemonPassword(), 'dev-password', 'the broker\'s password (we run as root)');
  await c.connect(); // resolves at once when ready
  assert.strictEqual(connectedCalls, 1, 'a second connect() fires nothing');
  assert.deepStrictEqual(c.errors, []);
});

test('sendCommand: data back exactly, binary as Buffer, no payload left out', async () => {
  const c = await connected();
  const payload = { s: 'é✓', n: -12.5, t: true, z: null, arr: [1, [2, { x: 'y' }]], bin: Buffer.from([0, 1, 2, 255]) };
  const back = await c.sendCommand('echo', payload);
  assert.deepStrictEqual(back, payload);
  assert.ok(Buffer.isBuffer(back.bin), `binary comes back as a Buffer, got ${back.bin && back.bin.constructor.name}`);
  const since = await server.lastSeq();
  assert.strictEqual(await c.sendCommand('echo'), null, 'the dev server echoes no payload as null');
  const ev = await server.waitEvent('request', (e) => e.command === 'echo', h.slack(5000), since);
  assert.strictEqual(ev.payloadOmitted, true, `payload left out of daemon:request: ${JSON.stringify(ev)}`);
  const status = await c.sendCommand('status');
  assert.deepStrictEqual(status, { server: 'volt-dev-server' });
  const date = new Date(Date.UTC(2020, 1, 3));
  assert.deepStrictEqual(await c.sendCommand('echo', { date, skip: undefined }), { date: date.toISOString() }, 'JSON meaning: toJSON, undefined left out');
});

test('sendCommand: COMMAND_REJECTED carries the server code and message', async () => {
  const c = await connected();
  const e = await h.rejection(c.sendCommand('reject', { code: 'ContainerGone', message: 'container c-1 is gone' }), h.slack(5000), 'reject');
  assert.ok(e instanceof DaemonClientError, `a DaemonClientError, got ${e}`);
  assert.strictEqual(e.code, 'COMMAND_REJECTED');
  assert.strictEqual(e.serverCode, 'ContainerGone');
  assert.strictEqual(e.message, 'container c-1 is gone');
});

test('sendCommand: COMMAND_TIMEOUT after the given timeout, else the broker\'s', async () => {
  const c = await connected();
  let t0 = Date.now();
  let e = await h.rejection(c.sendCommand('never', {}, 300), h.slack(5000), 'never, 300 ms');
  let took = Date.now() - t0;
  assert.strictEqual(e.code, 'COMMAND_TIMEOUT');
  assert.ok(took >= 290, `timed out after ${took} ms, expected >= 300`);
  t0 = Date.now();
  e = await h.rejection(c.sendCommand('never'), h.slack(BROKER_TIMEOUT + 5000), 'never, default timeout');
  took = Date.now() - t0;
  assert.strictEqual(e.code, 'COMMAND_TIMEOUT');
  assert.ok(took >= BROKER_TIMEOUT - 10, `default timeout: ${took} ms, expected the broker's ${BROKER_TIMEOUT}`);
  // The seed's commandTimeout option is the default of this client's requests.
  const quick = await connected({ commandTimeout: 400 });
  t0 = Date.now();
  e = await h.rejection(quick.sendCommand('never'), h.slack(5000), 'never, commandTimeout 400');
  took = Date.now() - t0;
  assert.strictEqual(e.code, 'COMMAND_TIMEOUT');
  assert.ok(took >= 390 && took < BROKER_TIMEOUT, `commandTimeout 400: timed out after ${took} ms`);
  // A late answer is dropped, not delivered to anyone.
  assert.deepStrictEqual(await c.sendCommand('slow', { ms: 50 }), { ms: 50 });
});

test('sendCommand: bad arguments and oversize payloads fail at once, clearly', async () => {
  const c = await connected();
  let e = await h.rejection(c.sendCommand(''), 1000, 'empty command');
  assert.strictEqual(e.code, 'BadRequest');
  assert.match(e.message, /command must be a non-empty string/);
  e = await h.rejection(c.sendCommand('echo', {}, -5), 1000, 'negative timeout');
  assert.strictEqual(e.code, 'BadRequest');
  const cyclic = {};
  cyclic.me = cyclic;
  e = await h.rejection(c.sendCommand('echo', cyclic), 1000, 'cyclic payload');
  assert.strictEqual(e.code, 'BadRequest');
  assert.match(e.message, /refers to itself/);
  e = await h.rejection(c.sendCommand('echo', { big: 2n ** 70n }), 1000, 'BigInt over 64 bits');
  assert.strictEqual(e.code, 'NotJson');
  // Over the broker's max_frame (16 MiB): refused here, never sent.
  e = await h.rejection(c.sendCommand('echo', { blob: Buffer.alloc(17 * 1024 * 1024) }), 5000, '17 MiB');
  assert.strictEqual(e.code, 'PayloadTooLarge');
  assert.match(e.message, /over the broker's max_frame of 16777216/);
  // Over the server's maxPayload (1e6): the broker refuses it.
  e = await h.rejection(c.sendCommand('echo', { blob: Buffer.alloc(2 * 1000 * 1000) }), h.slack(5000), '2 MB');
  assert.strictEqual(e.code, 'PayloadTooLarge');
  assert.strictEqual(c.isReady(), true, 'the client is still fine');
  assert.deepStrictEqual(await c.sendCommand('echo', { ok: 1 }), { ok: 1 });
});

test('registerHandler: results, thrown errors, codes, binary, unregister', async () => {
  const c = await connected();
  const seen = [];
  assert.strictEqual(
    c.registerHandler('list-files', async (payload) => {
      seen.push(payload);
      return ['a.txt', 'b.txt'];
    }),
    c,
    'registerHandler returns this',
  );
  c.registerHandler('explode', async () => {
    throw new Error('disk on fire');
  })
    .registerHandler('explode-sync', () => {
      throw new TypeError('sync failure');
    })
    .registerHandler('coded', async () => {
      throw new DaemonClientError('PluginNotFound', 'no plugin p-9');
    })
    .registerHandler('fs-error', async () => {
      const err = new Error('ENOENT: no such file');
      err.code = 'ENOENT';
      throw err;
    })
    .registerHandler('blob', (payload) => ({ blob: Buffer.from(payload.text), got: Buffer.isBuffer(payload.raw) }))
    .registerHandler('nothing', async () => undefined);
  await h.waitFor(async () => {
    const st = await server.state();
    const d = st.connected.find((x) => x.registered);
    return d && d.handlers.includes('nothing');
  }, h.slack(5000), 'the server to see the handler list');

  let r = await server.serverRequest('list-files', { path: '/srv' });
  assert.deepStrictEqual(r, { requestId: r.requestId, success: true, data: ['a.txt', 'b.txt'] });
  assert.deepStrictEqual(seen, [{ path: '/srv' }]);

  r = await server.serverRequest('explode', {});
  assert.strictEqual(r.success, false);
  assert.deepStrictEqual(r.error, { code: 'HandlerError', message: 'disk on fire' });
  r = await server.serverRequest('explode-sync');
  assert.deepStrictEqual(r.error, { code: 'HandlerError', message: 'sync failure' });
  r = await server.serverRequest('coded');
  assert.deepStrictEqual(r.error, { code: 'PluginNotFound', message: 'no plugin p-9' }, 'a DaemonClientError chooses the code');
  r = await server.serverRequest('fs-error');
  assert.deepStrictEqual(r.error, { code: 'HandlerError', message: 'ENOENT: no such file' }, 'other errors are HandlerError');
  const handlerErrors = c.errors.filter((e) => e.code === 'HandlerError').map((e) => e.message);
  assert.deepStrictEqual(handlerErrors, [
    'handler "explode" failed: disk on fire',
    'handler "explode-sync" failed: sync failure',
    'handler "coded" failed: no plugin p-9',
    'handler "fs-error" failed: ENOENT: no such file',
  ]);

  r = await server.serverRequest('blob', { text: 'hello', raw: { $bin: 'AAEC' } });
  assert.deepStrictEqual(r.data, { blob: { $bin: Buffer.from('hello').toString('base64') }, got: true });
  r = await server.serverRequest('nothing');
  assert.deepStrictEqual(r, { requestId: r.requestId, success: true }, 'no data, as JSON drops an undefined one');

  assert.strictEqual(c.unregisterHandler('list-files'), c, 'unregisterHandler returns this');
  await h.waitFor(async () => {
    const st = await server.state();
    const d = st.connected.find((x) => x.registered);
    return d && !d.handlers.includes('list-files');
  }, h.slack(5000), 'the server to see list-files gone');
  r = await server.serverRequest('list-files', { path: '/' });
  assert.deepStrictEqual(r.error && r.error.code, 'NoHandler');
  assert.throws(() => c.registerHandler('', async () => 1), /command must be a non-empty string/);
  assert.throws(() => c.registerHandler('x\ny', async () => 1), /control characters/);
  assert.throws(() => c.registerHandler('ok', 'not a function'), /must be a function/);
  c.disconnect();
});

test('onMessage: every listener gets {type, data}, binary as Buffer', async () => {
  const c = await connected();
  const a = [];
  const b = [];
  assert.strictEqual(c.onMessage((m) => a.push(m)), c);
  c.onMessage((m) => b.push(m));
  // The subscription is made live; wait until the broker has it.
  await h.waitFor(async () => {
    const st = await broker.status();
    return st.clients.some((x) => x.subscriptions.length > 0);
  }, h.slack(5000), 'the subscription');
  await server.post('/_dev/message', { type: 'exposure-snapshot', data: { blob: { $bin: 'AAEC' }, n: 1 } });
  await h.waitFor(() => a.length === 1 && b.length === 1, h.slack(5000), 'the message');
  assert.strictEqual(a[0].type, 'exposure-snapshot');
  assert.deepStrictEqual(a[0].data, { blob: Buffer.from([0, 1, 2]), n: 1 });
  assert.ok(Buffer.isBuffer(a[0].data.blob));
  assert.strictEqual(b[0], a[0]);
  c.disconnect();
});

test('emit: reaches the server; bad messages go to onError as EmitFailed', async () => {
  const c = await connected();
  const since = await server.lastSeq();
  c.emit({ type: 'exposure-snapshot', data: { analysisId: 'a-1', raw: Buffer.from([7, 8]) } });
  const ev = await server.waitEvent('message_in', (e) => e.type === 'exposure-snapshot', h.slack(5000), since);
  assert.deepStrictEqual(ev.data, { analysisId: 'a-1', raw: { $bin: Buffer.from([7, 8]).toString('base64') } });
  assert.strictEqual(c.emit({ type: '' }), undefined, 'emit returns nothing');
  c.emit(null);
  const cyclic = {};
  cyclic.me = cyclic;
  c.emit({ type: 'x', data: cyclic });
  await h.waitFor(() => c.errors.length >= 3, 2000, 'three EmitFailed errors');
  assert.deepStrictEqual(c.errors.map((e) => e.code), ['EmitFailed', 'EmitFailed', 'EmitFailed']);
  assert.match(c.errors[0].message, /type must be a non-empty string/);
  assert.match(c.errors[1].message, /emit needs a message/);
  assert.match(c.errors[2].message, /refers to itself/);
});

test('64-bit integers: exact as BigInt with bigInt: true, numbers by default', async () => {
  const plain = await connected();
  const big = await connected({ bigInt: true });
  const got = [];
  plain.onMessage((m) => got.push(['plain', m.data]));
  big.onMessage((m) => got.push(['big', m.data]));
  await h.waitFor(async () => (await broker.status()).clients.filter((x) => x.subscriptions.length).length >= 2, h.slack(5000), 'subscriptions');
  // The server writes 2^60 in JSON as 1152921504606847000; the broker reads
  // that integer exactly.
  await server.post('/_dev/message', { type: 'ints', data: { huge: 1152921504606847000, small: 42, neg: -7 } });
  await h.waitFor(() => got.length === 2, h.slack(5000), 'both messages');
  const byWho = Object.fromEntries(got);
  assert.deepStrictEqual(byWho.big, { huge: 1152921504606847000n, small: 42, neg: -7 });
  assert.deepStrictEqual(byWho.plain, { huge: 1152921504606847000, small: 42, neg: -7 });

  // Outbound: a BigInt goes upstream as the exact integer (the monitor
  // shows the upstream text).
  const traces = [];
  const mon = new BrokerConnection({
    path: broker.sock, name: 'test-monitor',
    onFrame: (f) => { if (f.op === 'trace' && f.dir === 'upstream-out' && typeof f.frame === 'string') traces.push(f.frame); },
    onClose: () => {},
  });
  await new Promise((resolve, reject) => {
    mon.start(h.slack(5000), () => mon.request({ op: 'monitor' }, h.slack(5000), (err, res) => (err || !res.ok ? reject(err || new Error(res.message)) : resolve())));
  });
  try {
    await big.sendCommand('echo', { n: 2n ** 60n + 1n });
    await h.waitFor(() => traces.some((t) => t.includes('"n":1152921504606846977')), h.slack(5000), 'the exact integer upstream');
  } finally {
    mon.close();
  }
});

test('an upstream drop: onDisconnected, SOCKET_NOT_READY at once, then back with handlers', async () => {
  const c = await connected();
  c.registerHandler('still-here', async () => 'yes');
  const log = [];
  c.onDisconnected((reason) => log.push(['disconnected', reason])).onConnected(() => log.push(['connected']));
  await h.waitFor(async () => (await broker.status()).clients.some((x) => x.handlers.includes('still-here')), h.slack(5000), 'the handler');
  const inFlight = h.rejection(c.sendCommand('never', {}, 20000), h.slack(10000), 'the request in flight');
  // Keep the upstream down until told otherwise.
  await server.post('/_dev/behavior', { connectRefuse: 1000 });
  await server.post('/_dev/disconnect', { mode: 'transport' });
  const e = await inFlight;
  assert.strictEqual(e.code, 'SOCKET_NOT_READY', `in flight: ${e.code}: ${e.message}`);
  await h.waitFor(() => log.length >= 1, h.slack(5000), 'onDisconnected');
  assert.strictEqual(log[0][0], 'disconnected');
  assert.strictEqual(typeof log[0][1], 'string');
  assert.strictEqual(c.isReady(), false);
  const t0 = Date.now();
  const notReady = await h.rejection(c.sendCommand('echo', {}), 1000, 'not ready');
  assert.strictEqual(notReady.code, 'SOCKET_NOT_READY');
  assert.ok(Date.now() - t0 < 500, 'at once');
  assert.match(notReady.message, /upstream session is not ready/);

  await server.post('/_dev/behavior', { connectRefuse: 0 });
  await h.waitFor(() => c.isReady(), h.slack(15000), 'ready again');
  assert.deepStrictEqual(log.map((x) => x[0]), ['disconnected', 'connected']);
  const r = await server.serverRequest('still-here');
  assert.deepStrictEqual(r.data, 'yes', 'the handler survived');
  // Errors on the way: the upstream's, reported through onError with codes.
  assert.ok(c.errors.every((x) => x instanceof DaemonClientError && typeof x.code === 'string'));
});

// PROTOCOL.md v2: "While the upstream is not ready an emit is kept [...]
// and sent once the session is registered again [...]; with volatile: true
// it fails with EmitFailed at once instead".
test('emits made while the upstream is down are kept by the broker; volatile ones fail', async () => {
  const c = await connected();
  await server.post('/_dev/behavior', { connectRefuse: 1000 });
  await server.post('/_dev/disconnect', { mode: 'transport' });
  await h.waitFor(() => !c.isReady(), h.slack(5000), 'the upstream drop');
  const since = await server.lastSeq();
  c.emit({ type: 'kept-while-down', data: { n: 1 } });
  c.emit({ type: 'dropped-while-down' }, { volatile: true });
  try {
    await h.waitFor(() => c.errors.some((x) => x.code === 'EmitFailed'), h.slack(5000), 'EmitFailed for the volatile emit');
  } finally {
    await server.post('/_dev/behavior', { connectRefuse: 0 });
  }
  await h.waitFor(() => c.isReady(), h.slack(15000), 'ready again');
  await server.waitEvent('message_in', (x) => x.type === 'kept-while-down', h.slack(5000), since);
  const seen = await server.events('message_in', since);
  assert.ok(!seen.some((x) => x.type === 'dropped-while-down'), 'the volatile emit never reached the server');
  // The upstream's own errors while it was refused come too; of the emits,
  // only the volatile one failed.
  assert.strictEqual(c.errors.filter((x) => x.code === 'EmitFailed').length, 1, c.errors.map((x) => `${x.code}: ${x.message}`).join('; '));
});

test('a teamClusterId that is not the broker\'s fails connect() clearly', async () => {
  const before = (await broker.status()).clients.length;
  const c = newClient({ credentials: { teamClusterId: 'cluster-other', daemonPassword: 'x' } });
  const e = await h.rejection(c.connect(), h.slack(10000), 'connect with another cluster');
  assert.ok(e instanceof DaemonClientError);
  assert.strictEqual(e.code, 'SocketRegistrationFailed');
  assert.match(e.message, /teamClusterId "cluster-other" does not match the broker's: the broker at .* serves team cluster "cluster-dev"/);
  assert.strictEqual(c.isReady(), false);
  assert.strictEqual(c.getTeamClusterId(), 'cluster-other', 'nothing adopted');
  // It stopped: it holds no connection to the broker.
  await h.waitFor(async () => (await broker.status()).clients.length === before, h.slack(5000), `the broker to count ${before} clients again`);
  const e2 = await h.rejection(c.sendCommand('echo'), 1000, 'send after the failed connect');
  assert.strictEqual(e2.code, 'SOCKET_NOT_READY');
  assert.match(e2.message, /call connect\(\) first/);
});

test('disconnect(): requests in flight get SOCKET_NOT_READY once, onDisconnected fires', async () => {
  const c = await connected();
  const reasons = [];
  c.onDisconnected((r) => reasons.push(r));
  let settled = 0;
  const inFlight = c.sendCommand('never', {}, 20000).finally(() => settled++);
  c.disconnect();
  const e = await h.rejection(inFlight, 1000, 'in flight at disconnect');
  assert.strictEqual(e.code, 'SOCKET_NOT_READY');
  assert.deepStrictEqual(reasons, ['io client disconnect']);
  assert.strictEqual(c.isReady(), false);
  c.disconnect(); // twice is harmless
  assert.deepStrictEqual(reasons, ['io client disconnect']);
  assert.strictEqual(settled, 1);
  // connect() again works.
  await h.within(c.connect(), h.slack(10000), 'connect after disconnect');
  assert.deepStrictEqual(await c.sendCommand('echo', { again: true }), { again: true });
});
