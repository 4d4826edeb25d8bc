'use strict';
// Payloads between JavaScript and the wire.
//
// Outbound, the seed's client hands a payload to socket.io-client, which
// writes it as JSON with binary attachments. A service moved onto the
// broker must see the server receive the same thing, so toWire() gives a
// value JSON's meaning before it is packed: toJSON() is called (a Date
// becomes its ISO string), undefined, functions and symbols are left out
// of objects and become null in arrays, NaN and the infinities become
// null, a Map or a class instance keeps only its own enumerable keys.
// Binary goes as msgpack bin, whatever its view: Buffer, any typed array,
// DataView, ArrayBuffer (socket.io's own rule for what is binary). One
// extension: a BigInt goes as a 64-bit integer (JSON would throw).
//
// The broker refuses a frame nested deeper than 64 (the frame's own map is
// one level) or with a container of more than 2^20 entries as BadFrame,
// which answers no request; such a payload is refused here instead, with
// a message, so the request fails at once rather than at its deadline.
// A circular value ends at the depth limit too.
//
// Nothing is copied that need not be: a value already in wire form (plain
// objects, arrays, strings, finite numbers, Buffers) comes back as is, and
// a container is copied only when something inside it changed.
//
// Inbound, fromWire() turns every binary into a Buffer (a view, no copy:
// what socket.io-client gives in Node) and, with the bigInt option, keeps
// as a BigInt only an integer that a number cannot hold exactly.

const MAX_DEPTH = 63; // levels of a payload inside the frame's map
const MAX_ENTRIES = 1 << 20;
const INT64_MIN = -(2n ** 63n);
const UINT64_MAX = 2n ** 64n - 1n;
const OMIT = Symbol('omit');
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

class ValueError extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'ValueError';
    this.code = code;
  }
}

function isPlainObject(v) {
  const p = Object.getPrototypeOf(v);
  return p === Object.prototype || p === null;
}

function wire(v, depth, where) {
  switch (typeof v) {
    case 'string':
    case 'boolean':
      return v;
    case 'number':
      return Number.isFinite(v) ? v : null;
    case 'bigint':
      if (v < INT64_MIN || v > UINT64_MAX) {
        throw new ValueError('NotJson', `${where}: the BigInt ${v} does not fit in 64 bits`);
      }
      return v;
    case 'undefined':
    case 'function':
    case 'symbol':
      return OMIT;
    default:
      break;
  }
  if (v === null) return null;
  if (v instanceof Uint8Array) return v;
  if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  if (typeof v.toJSON === 'function') return wire(v.toJSON(), depth, where);
  if (depth >= MAX_DEPTH) {
    throw new ValueError(
      'BadRequest',
      `${where} nests deeper than ${MAX_DEPTH} levels (or refers to itself)`,
    );
  }
  if (Array.isArray(v)) {
    if (v.length > MAX_ENTRIES) {
      throw new ValueError('BadRequest', `${where} holds an array of ${v.length} entries, over ${MAX_ENTRIES}`);
    }
    let out = v;
    for (let i = 0; i < v.length; i++) {
      let w = wire(v[i], depth + 1, where);
      if (w === OMIT) w = null;
      if (w !== v[i]) {
        if (out === v) out = v.slice();
        out[i] = w;
      }
    }
    return out;
  }
  const keys = Object.keys(v);
  if (keys.length > MAX_ENTRIES) {
    throw new ValueError('BadRequest', `${where} holds an object of ${keys.length} keys, over ${MAX_ENTRIES}`);
  }
  let out = isPlainObject(v) ? v : null;
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i];
    const w = wire(v[k], depth + 1, where);
    if (w === v[k] && out === v) continue;
    if (out === v) {
      out = {};
      for (let j = 0; j < i; j++) out[keys[j]] = v[keys[j]];
    } else if (out === null) {
      out = {};
    }
    if (w !== OMIT) out[k] = w;
  }
  return out === null ? {} : out;
}

/**
 * The wire form of a payload (see above), or undefined when the value has
 * none at the top (undefined, a function): the field is then left out, as
 * JSON leaves it out. Throws ValueError.
 */
function toWire(v, where) {
  const w = wire(v, 0, where);
  return w === OMIT ? undefined : w;
}

function toBuffer(u8) {
  return Buffer.isBuffer(u8) ? u8 : Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength);
}

// The decoder gives every integer beyond 32 bits as a BigInt (so that ids
// are exact); a payload shows it as a number unless bigInt asks for it and
// a number would not be exact.
function fromBigInt(v, bigInt) {
  if (!bigInt || (v >= -MAX_SAFE && v <= MAX_SAFE)) return Number(v);
  return v;
}

// Mutates decoded containers in place: the decoder made them fresh for us.
function fromWireIn(v, bigInt) {
  if (typeof v === 'bigint') return fromBigInt(v, bigInt);
  if (typeof v !== 'object' || v === null) return v;
  if (v instanceof Uint8Array) return toBuffer(v);
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const x = v[i];
      if (typeof x === 'object' ? x !== null : typeof x === 'bigint') v[i] = fromWireIn(x, bigInt);
    }
    return v;
  }
  for (const k in v) {
    const x = v[k];
    if (typeof x === 'object' ? x !== null : typeof x === 'bigint') v[k] = fromWireIn(x, bigInt);
  }
  return v;
}

/**
 * A decoded payload as a service sees it (see above). Containers are
 * changed in place.
 */
function fromWire(v, bigInt) {
  return fromWireIn(v, bigInt);
}

module.exports = { toWire, fromWire, ValueError, MAX_DEPTH, MAX_ENTRIES };
