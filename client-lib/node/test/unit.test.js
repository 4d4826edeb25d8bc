'use strict';
// Unit tests of the pure parts: framing, payload conversion, the backoff
// formula, the default socket path rule, frame checks.

const test = require('node:test');
const assert = require('assert');
const fs = require('fs');
const net = require('net');
const os = require('os');
const path = require('path');
const { encode, decode } = require('@msgpack/msgpack');

const { FrameReader, FrameError, frameOf } = require('../lib/frame');
const { toWire, fromWire, ValueError, MAX_DEPTH } = require('../lib/values');
const { Backoff } = require('../lib/backoff');
const { resolveSocketPath, SYSTEM_SOCKET } = require('../lib/socket-path');
const { checkFrame } = require('../lib/connection');
const { DaemonClientError } = require('..');

function framesOf(maps) {
  return Buffer.concat(maps.map((m) => frameOf(m)));
}

function readAll(reader) {
  const out = [];
  for (let b = reader.next(); b !== null; b = reader.next()) out.push(decode(b));
  return out;
}

test('frames come out whole whatever the split point', () => {
  const maps = [{ op: 'a', n: 1 }, { op: 'b', s: 'x'.repeat(300) }, { op: 'c', bin: Buffer.from([1, 2, 3]) }];
  const wire = framesOf(maps);
  for (let cut = 0; cut <= wire.length; cut++) {
    const r = new FrameReader(1 << 20);
    r.push(wire.subarray(0, cut));
    const got = readAll(r);
    r.push(wire.subarray(cut));
    got.push(...readAll(r));
    assert.deepStrictEqual(got, maps, `split at ${cut}`);
    assert.strictEqual(r.buffered, 0, `nothing left after split at ${cut}`);
  }
});

test('frames fed one byte at a time', () => {
  const maps = [{ op: 'x', v: [1, 2, { y: 'z' }] }, { op: 'y' }];
  const wire = framesOf(maps);
  const r = new FrameReader(1 << 20);
  const got = [];
  for (const byte of wire) {
    r.push(Buffer.from([byte]));
    got.push(...readAll(r));
  }
  assert.deepStrictEqual(got, maps);
});

test('a big frame in many chunks is copied once, exactly', () => {
  const blob = Buffer.alloc(3 * 1024 * 1024);
  for (let i = 0; i < blob.length; i++) blob[i] = i % 251;
  const wire = frameOf({ op: 'big', blob });
  const r = new FrameReader(16 << 20);
  let body = null;
  for (let at = 0; at < wire.length; at += 65536) {
    assert.strictEqual(body, null, 'no frame before the last chunk');
    r.push(wire.subarray(at, at + 65536));
    body = r.next();
  }
  assert.notStrictEqual(body, null);
  const f = decode(body);
  assert.strictEqual(Buffer.compare(Buffer.from(f.blob), blob), 0);
});

test('length 0 and lengths over the limit are fatal, with the numbers', () => {
  const zero = new FrameReader(100);
  zero.push(Buffer.from([0, 0, 0, 0]));
  assert.throws(() => zero.next(), (e) => e instanceof FrameError && e.code === 'BadFrame' && /length 0/.test(e.message));
  const big = new FrameReader(100);
  big.push(Buffer.from([0, 0, 0, 101, 0x80]));
  assert.throws(() => big.next(), (e) => e instanceof FrameError && e.code === 'FrameTooLarge' && /101 bytes, over the limit of 100/.test(e.message));
  const edge = new FrameReader(100);
  const body = Buffer.alloc(100, 0xc0);
  edge.push(Buffer.concat([Buffer.from([0, 0, 0, 100]), body]));
  assert.strictEqual(edge.next().length, 100, 'exactly max_frame is fine');
});

test('a partial frame is described for the close error', () => {
  const r = new FrameReader(1000);
  r.push(Buffer.from([0, 0]));
  assert.strictEqual(r.next(), null);
  assert.match(r.describePartial(), /2 of the 4 bytes of a frame header/);
  r.push(Buffer.from([0, 50, 1, 2, 3]));
  assert.strictEqual(r.next(), null);
  assert.match(r.describePartial(), /3 of the 50 bytes of a frame/);
});

test('toWire gives values their JSON meaning and keeps binary', () => {
  const date = new Date(Date.UTC(2024, 0, 2, 3, 4, 5));
  const u16 = new Uint16Array([1, 0x0203]);
  const ab = new Uint8Array([9, 8, 7]).buffer;
  const w = toWire(
    {
      d: date, u: undefined, f() {}, n: NaN, inf: -Infinity, arr: [undefined, () => 1, 1],
      map: new Map([[1, 2]]), buf: Buffer.from('hi'), u16, ab, dv: new DataView(ab, 1, 2),
      big: 2n ** 63n, nested: { deep: [date] },
    },
    'test',
  );
  assert.strictEqual(w.d, date.toJSON());
  assert.ok(!('u' in w) && !('f' in w), 'undefined and functions are left out of objects');
  assert.strictEqual(w.n, null);
  assert.strictEqual(w.inf, null);
  assert.deepStrictEqual(w.arr, [null, null, 1]);
  assert.deepStrictEqual(w.map, {});
  assert.ok(Buffer.isBuffer(w.buf));
  assert.ok(w.u16 instanceof Uint8Array && w.u16.byteLength === 4);
  assert.deepStrictEqual([...w.ab], [9, 8, 7]);
  assert.deepStrictEqual([...w.dv], [8, 7]);
  assert.strictEqual(w.big, 2n ** 63n);
  assert.deepStrictEqual(w.nested, { deep: [date.toJSON()] });
  assert.strictEqual(toWire(undefined, 'x'), undefined);
  assert.strictEqual(toWire(() => 1, 'x'), undefined);
});

test('toWire copies nothing that needs no change', () => {
  const v = { a: [1, 'b', { c: true, d: null }], e: Buffer.from([1]) };
  assert.strictEqual(toWire(v, 'x'), v);
  const w = toWire({ keep: v.a, change: [undefined] }, 'x');
  assert.strictEqual(w.keep, v.a, 'an unchanged branch is shared');
});

test('toWire refuses what the broker could only drop', () => {
  const cyclic = { a: 1 };
  cyclic.self = cyclic;
  assert.throws(() => toWire(cyclic, 'the payload'), (e) => e instanceof ValueError && e.code === 'BadRequest' && /the payload nests deeper than/.test(e.message));
  let deep = 1;
  for (let i = 0; i < MAX_DEPTH; i++) deep = [deep];
  assert.doesNotThrow(() => toWire(deep, 'x'), 'MAX_DEPTH levels are fine');
  assert.throws(() => toWire([deep], 'x'), /nests deeper/);
  assert.throws(() => toWire({ n: 2n ** 64n }, 'the payload'), (e) => e.code === 'NotJson' && /does not fit in 64 bits/.test(e.message));
  assert.throws(() => toWire(new Array((1 << 20) + 1).fill(0), 'x'), /over 1048576/);
});

test('fromWire gives Buffers, and BigInt only when asked and needed', () => {
  const decoded = decode(encode({ b: new Uint8Array([1, 2]), big: 2n ** 60n, small: 2n ** 40n, neg: -(2n ** 60n), arr: [2n ** 62n] }, { useBigInt64: true }), { useBigInt64: true });
  const asNumbers = fromWire(structuredClone(decoded), false);
  assert.ok(Buffer.isBuffer(asNumbers.b));
  assert.strictEqual(asNumbers.big, 2 ** 60);
  assert.strictEqual(asNumbers.small, 2 ** 40);
  assert.strictEqual(asNumbers.neg, -(2 ** 60));
  const asBig = fromWire(decoded, true);
  assert.strictEqual(asBig.big, 2n ** 60n);
  assert.strictEqual(asBig.small, 2 ** 40, 'a safe integer stays a number');
  assert.strictEqual(asBig.neg, -(2n ** 60n));
  assert.strictEqual(asBig.arr[0], 2n ** 62n);
});

test('backoff doubles from min, stays within max, jitters within its share', () => {
  const b = new Backoff({ min: 100, max: 1000, jitter: 0 });
  assert.deepStrictEqual([1, 2, 3, 4, 5, 6].map(() => b.next()), [100, 200, 400, 800, 1000, 1000]);
  b.reset();
  assert.strictEqual(b.next(), 100);
  const j = new Backoff({ min: 1000, max: 5000, jitter: 0.5 });
  for (let i = 0; i < 200; i++) {
    j.reset();
    const d = j.next();
    assert.ok(d >= 500 && d <= 1500, `first delay ${d} within 1000 +- 50%`);
  }
  for (let i = 0; i < 20; i++) assert.ok(j.next() <= 5000);
});

test('default socket path: env, then a per-user socket that exists, then /run', () => {
  assert.strictEqual(resolveSocketPath('/x.sock', { VOLT_BROKER_SOCKET: '/env.sock' }), '/x.sock');
  assert.strictEqual(resolveSocketPath(undefined, { VOLT_BROKER_SOCKET: '/env.sock' }), '/env.sock');
  const xdg = fs.mkdtempSync(path.join(os.tmpdir(), 'volt-node-xdg-'));
  try {
    assert.strictEqual(resolveSocketPath(undefined, { XDG_RUNTIME_DIR: xdg }), SYSTEM_SOCKET, 'no per-user socket yet');
    assert.strictEqual(resolveSocketPath(undefined, { XDG_RUNTIME_DIR: 'relative/dir' }, 4242), SYSTEM_SOCKET);
    fs.mkdirSync(path.join(xdg, 'volt'));
    const sock = path.join(xdg, 'volt', 'broker.sock');
    const server = net.createServer();
    return new Promise((resolve) => server.listen(sock, resolve)).then(() => {
      assert.strictEqual(resolveSocketPath(undefined, { XDG_RUNTIME_DIR: xdg }), sock);
      assert.strictEqual(resolveSocketPath(undefined, { XDG_RUNTIME_DIR: xdg, VOLT_BROKER_SOCKET: '' }), sock, 'an empty VOLT_BROKER_SOCKET is not set');
      return new Promise((resolve) => server.close(resolve));
    }).finally(() => fs.rmSync(xdg, { recursive: true, force: true }));
  } catch (e) {
    fs.rmSync(xdg, { recursive: true, force: true });
    throw e;
  }
});

test('checkFrame names what is wrong with a frame', () => {
  assert.strictEqual(checkFrame({ op: 'result', id: 1, ok: true }), null);
  assert.strictEqual(checkFrame({ op: 'result', id: 2n ** 40n, ok: false, code: 'X' }), null);
  assert.strictEqual(checkFrame({ op: 'from-the-future', anything: [1] }), null, 'unknown ops pass');
  assert.match(checkFrame([1, 2]), /not a msgpack map/);
  assert.match(checkFrame('x'), /not a msgpack map/);
  assert.match(checkFrame({ id: 1 }), /no string "op"/);
  assert.match(checkFrame({ op: 'result', ok: true }), /"result" frame without "id"/);
  assert.match(checkFrame({ op: 'result', id: 'one', ok: true }), /a string "id" \(expected int\)/);
  assert.match(checkFrame({ op: 'welcome', version: 2, max_frame: 10, state: 'ready' }), /without "timeout_ms"/);
  assert.match(checkFrame({ op: 'call', id: -1, command: 'x' }), /"id"/);
});

test('DaemonClientError carries code, server code and cause', () => {
  const cause = new Error('under');
  const e = new DaemonClientError('COMMAND_REJECTED', 'no', { serverCode: 'Nope', cause });
  assert.ok(e instanceof Error);
  assert.strictEqual(e.name, 'DaemonClientError');
  assert.strictEqual(e.code, 'COMMAND_REJECTED');
  assert.strictEqual(e.serverCode, 'Nope');
  assert.strictEqual(e.cause, cause);
  assert.strictEqual(e.message, 'no');
  assert.ok(!('serverCode' in new DaemonClientError('X', 'y')));
});
