import { badDataType, badMagic, bodyTooLarge, keyExtrasTooLong } from '../memcached.messages.js';
import type { BinaryResponse } from './protocol.js';

export const HEADER_LENGTH = 24;
const RESPONSE_MAGIC = 0x81;
/** memcached's largest item (`-I 1024m`) plus a key and extras: no real server sends more. */
const MAX_POSSIBLE_BODY = 1024 * 1024 * 1024 + 512;

/**
 * The byte stream broke the binary protocol's framing (a wrong magic byte, a key and extras
 * longer than the body, a data type we never asked for): nothing after it can be trusted, so the
 * connection must be dropped.
 */
export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
}

/**
 * Splits the bytes a memcached node sends into responses. Every header is checked before its body
 * is awaited, so no input can make it throw anything but `ProtocolError` or hold more than one
 * header plus `maxBodyLength` bytes: a body declared larger than that (up to the largest item
 * memcached can hold) is skipped as it streams in and its response is delivered at once, empty
 * and marked `oversized`.
 */
export class ResponseParser {
  private chunks: Buffer[] = [];
  private length = 0;
  /** Bytes of an oversized body still to drop. */
  private skipping = 0;

  constructor(
    private readonly maxBodyLength: number,
    private readonly deliver: (res: BinaryResponse) => void,
  ) {}

  /** Bytes held while waiting for the rest of a response. */
  get buffered(): number {
    return this.length;
  }

  /** Feeds received bytes; delivers every response they complete. Throws `ProtocolError`. */
  push(data: Buffer): void {
    if (this.skipping > 0) {
      if (data.length <= this.skipping) {
        this.skipping -= data.length;
        return;
      }
      data = data.subarray(this.skipping);
      this.skipping = 0;
    }
    this.chunks.push(data);
    this.length += data.length;
    while (this.length >= HEADER_LENGTH) {
      const head = this.chunks[0].length >= HEADER_LENGTH ? this.chunks[0] : this.join(HEADER_LENGTH);
      const bodyLength = checkHeader(head);
      if (bodyLength > this.maxBodyLength) {
        this.skipOversized(head, bodyLength);
        continue;
      }
      const total = HEADER_LENGTH + bodyLength;
      if (this.length < total) return;
      this.deliver(toResponse(this.take(total)));
    }
  }

  /** Forgets everything buffered (the connection it belonged to is gone). */
  reset(): void {
    this.chunks = [];
    this.length = 0;
    this.skipping = 0;
  }

  private skipOversized(head: Buffer, bodyLength: number): void {
    const header = readHeader(head);
    const available = this.length - HEADER_LENGTH;
    if (available >= bodyLength) {
      this.take(HEADER_LENGTH + bodyLength);
    } else {
      this.take(this.length);
      this.skipping = bodyLength - available;
    }
    this.deliver({ header, key: EMPTY, extras: EMPTY, val: EMPTY, oversized: true });
  }

  /** Joins only the chunks that hold the first `length` bytes (never everything buffered). */
  private join(length: number): Buffer {
    let size = 0;
    let count = 0;
    while (size < length) size += this.chunks[count++].length;
    const joined = Buffer.concat(this.chunks.slice(0, count), size);
    this.chunks.splice(0, count, joined);
    return joined;
  }

  private take(length: number): Buffer {
    const first = this.chunks[0].length >= length ? this.chunks[0] : this.join(length);
    const message = first.subarray(0, length);
    if (first.length === length) this.chunks.shift();
    else this.chunks[0] = first.subarray(length);
    this.length -= length;
    return message;
  }
}

const EMPTY = Buffer.alloc(0);

/** Validates a response header; returns its body length. */
function checkHeader(head: Buffer): number {
  if (head[0] !== RESPONSE_MAGIC) {
    throw new ProtocolError(badMagic(hex(head[0])));
  }
  const keyLength = head.readUInt16BE(2);
  const extrasLength = head[4];
  if (head[5] !== 0) throw new ProtocolError(badDataType(hex(head[5])));
  const bodyLength = head.readUInt32BE(8);
  if (bodyLength > MAX_POSSIBLE_BODY) {
    throw new ProtocolError(bodyTooLarge(bodyLength));
  }
  if (keyLength + extrasLength > bodyLength) {
    throw new ProtocolError(keyExtrasTooLong(keyLength, extrasLength, bodyLength));
  }
  return bodyLength;
}

function readHeader(buf: Buffer): BinaryResponse['header'] {
  return {
    opcode: buf[1],
    keyLength: buf.readUInt16BE(2),
    extrasLength: buf[4],
    status: buf.readUInt16BE(6),
    totalBodyLength: buf.readUInt32BE(8),
    opaque: buf.readUInt32BE(12),
    cas: buf.subarray(16, 24),
  };
}

function toResponse(message: Buffer): BinaryResponse {
  const header = readHeader(message);
  const keyStart = HEADER_LENGTH + header.extrasLength;
  const valueStart = keyStart + header.keyLength;
  return {
    header,
    extras: keyStart === HEADER_LENGTH ? EMPTY : message.subarray(HEADER_LENGTH, keyStart),
    key: valueStart === keyStart ? EMPTY : message.subarray(keyStart, valueStart),
    val: valueStart === message.length ? EMPTY : message.subarray(valueStart),
  };
}

function hex(byte: number): string {
  return byte.toString(16).padStart(2, '0');
}
