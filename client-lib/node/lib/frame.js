'use strict';
// Framing of the local protocol (proto/PROTOCOL.md, "Framing"): a 4-byte
// big-endian length, then that many bytes of one msgpack map.
//
// Like proto/reader.c, this knows nothing of sockets: push() the bytes as
// they come, in chunks split anywhere, and next() hands out one frame body
// at a time. Two things shape the code:
//
// - A frame may arrive in many chunks (a 16 MiB binary in 64 KiB reads).
//   Chunks are kept in a list and a body is copied once, when it is whole;
//   gluing each new chunk to the rest would copy a big frame hundreds of
//   times over. A body inside one chunk is handed out as a view, no copy.
// - Bodies are never reused: the decoder hands out binary values as views
//   into them, and those views go to the caller.
//
// A length of 0 or above the limit is fatal (FrameError): past a bad
// length nothing in the stream can be trusted, so the connection must go.

const { Encoder } = require('@msgpack/msgpack');

const HEADER = 4;

class FrameError extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'FrameError';
    this.code = code;
  }
}

class FrameReader {
  /** @param {number} maxFrame largest body accepted, in bytes */
  constructor(maxFrame) {
    this.maxFrame = maxFrame;
    this.chunks = [];
    this.offset = 0; // consumed bytes of chunks[0]
    this.size = 0; // bytes held, not yet consumed
    this.need = -1; // body length of the frame being read, -1 before its header
  }

  push(chunk) {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.size += chunk.length;
  }

  /** Bytes held that do not make a whole frame yet. */
  get buffered() {
    return this.size;
  }

  /** What is missing, for the error when the peer closes mid-frame. */
  describePartial() {
    if (this.need < 0) return `${this.size} of the 4 bytes of a frame header`;
    return `${this.size - HEADER} of the ${this.need} bytes of a frame`;
  }

  /**
   * The next whole frame body (a Buffer), or null until more bytes come.
   * Throws FrameError on a length that cannot be right.
   */
  next() {
    if (this.need < 0) {
      if (this.size < HEADER) return null;
      const len = this.peekU32();
      if (len === 0) throw new FrameError('BadFrame', 'the broker sent a frame of length 0');
      if (len > this.maxFrame) {
        throw new FrameError(
          'FrameTooLarge',
          `the broker sent a frame of ${len} bytes, over the limit of ${this.maxFrame}`,
        );
      }
      this.need = len;
    }
    if (this.size < HEADER + this.need) return null;
    const body = this.take(HEADER + this.need).subarray(HEADER);
    this.need = -1;
    return body;
  }

  peekU32() {
    const first = this.chunks[0];
    if (first.length - this.offset >= HEADER) return first.readUInt32BE(this.offset);
    const head = Buffer.alloc(HEADER);
    this.copyOut(head, HEADER);
    return head.readUInt32BE(0);
  }

  // Copies the first n held bytes into dst without consuming them.
  copyOut(dst, n) {
    let at = 0;
    for (let i = 0; at < n; i++) {
      const c = this.chunks[i];
      const from = i === 0 ? this.offset : 0;
      const k = Math.min(n - at, c.length - from);
      c.copy(dst, at, from, from + k);
      at += k;
    }
  }

  // Consumes and returns the first n held bytes (n <= size).
  take(n) {
    const first = this.chunks[0];
    let out;
    if (first.length - this.offset >= n) {
      out = first.subarray(this.offset, this.offset + n);
      this.offset += n;
    } else {
      out = Buffer.allocUnsafe(n);
      this.copyOut(out, n);
      let left = n + this.offset;
      while (left >= this.chunks[0].length) {
        left -= this.chunks[0].length;
        this.chunks.shift();
        if (this.chunks.length === 0) break;
      }
      this.offset = left;
    }
    if (this.chunks.length && this.offset === this.chunks[0].length) {
      this.chunks.shift();
      this.offset = 0;
    }
    this.size -= n;
    return out;
  }
}

// One encoder for the process: encodeSharedRef() hands out its own buffer,
// which frameOf() copies behind the length at once.
const encoder = new Encoder({ useBigInt64: true });

/** A whole frame (length + msgpack body) of a map already in wire form. */
function frameOf(map) {
  const body = encoder.encodeSharedRef(map);
  const out = Buffer.allocUnsafe(HEADER + body.length);
  out.writeUInt32BE(body.length, 0);
  out.set(body, HEADER);
  return out;
}

module.exports = { FrameReader, FrameError, frameOf, HEADER };
