import { deflateRawSync, inflateRawSync } from 'node:zlib';
import type { MemcachedSerializer } from '../interfaces/memcached-module-options.interface.js';

/** High 16 bits of the flags we write ("NM"): a value without them was stored by someone else. */
export const FLAGS_MAGIC = 0x4e4d0000;
const MAGIC_MASK = 0xffff0000;
const FORMAT_MASK = 0x000000ff;
export const FLAG_COMPRESSED = 0x00000100;
/** The item is a lease marker: someone is loading this key (see the lease protocol). */
export const FLAG_LEASE = 0x00000200;
/** The body starts with the entry's freshness deadline (stale-while-revalidate). */
export const FLAG_FRESHNESS = 0x00000400;

export const ValueFormat = { Json: 1, Utf8: 2, Binary: 3, Custom: 4 } as const;
type ValueFormat = (typeof ValueFormat)[keyof typeof ValueFormat];

export interface EncodedValue {
  bytes: Buffer;
  flags: number;
}

/** What a read found: a decoded value, a miss, or bytes we cannot read (counted, then a miss). */
export const UNDECODABLE: unique symbol = Symbol('undecodable');
/** A read found a lease marker: no value yet, someone is loading it. */
export const LEASE: unique symbol = Symbol('lease');

/**
 * A JSON entry handed over as its text, not parsed: the HTTP path sends it as the response body
 * as is, skipping a parse and a re-serialisation. `toJSON` keeps it correct anywhere else.
 */
export class RawJson {
  constructor(readonly json: string) {}

  toJSON(): unknown {
    return JSON.parse(this.json);
  }
}

export interface DecodedItem {
  value: unknown;
  /** Epoch ms after which the entry is stale (stale-while-revalidate entries only). */
  freshUntil?: number;
}

export interface ValueCodecOptions {
  compressionThreshold: number;
  serializer?: MemcachedSerializer;
}

// memcached may space-pad a counter that a decrement made shorter
const DIGITS = /^([0-9]{1,20}) *$/;

/**
 * Encodes values for memcached and records the format in the item's flags, so a reader never
 * guesses: strings and Buffers round-trip byte for byte, everything else goes through JSON (or
 * the configured serializer); bodies above the threshold are deflated when that saves space.
 */
export class ValueCodec {
  constructor(private readonly options: ValueCodecOptions) {}

  /** A lease marker: a random token, flagged so no reader takes it for a value. */
  leaseMarker(token: Buffer): EncodedValue {
    return { bytes: token, flags: (FLAGS_MAGIC | FLAG_LEASE) >>> 0 };
  }

  /** `freshUntil` (epoch ms) makes a stale-while-revalidate entry. */
  encode(value: unknown, freshUntil?: number): EncodedValue {
    let bytes: Buffer;
    let format: ValueFormat;
    if (typeof value === 'string' && value.isWellFormed()) {
      bytes = Buffer.from(value, 'utf8');
      format = ValueFormat.Utf8;
    } else if (Buffer.isBuffer(value)) {
      bytes = value;
      format = ValueFormat.Binary;
    } else if (value === undefined) {
      throw new TypeError('undefined cannot be stored in memcached: use delete() to remove a key');
    } else if (this.options.serializer) {
      const out = this.options.serializer.serialize(value);
      bytes = typeof out === 'string' ? Buffer.from(out, 'utf8') : out;
      format = ValueFormat.Custom;
    } else {
      const json = JSON.stringify(value);
      if (json === undefined) {
        throw new TypeError(`a ${typeof value} cannot be stored as JSON`);
      }
      bytes = Buffer.from(json, 'utf8');
      format = ValueFormat.Json;
    }
    let flags = FLAGS_MAGIC | format;
    const threshold = this.options.compressionThreshold;
    if (threshold > 0 && bytes.length >= threshold) {
      const compressed = deflateRawSync(bytes, { level: 1 });
      if (compressed.length < bytes.length) {
        bytes = compressed;
        flags |= FLAG_COMPRESSED;
      }
    }
    if (freshUntil !== undefined) {
      const header = Buffer.allocUnsafe(8);
      header.writeDoubleBE(freshUntil, 0);
      bytes = Buffer.concat([header, bytes]);
      flags |= FLAG_FRESHNESS;
    }
    return { bytes, flags: flags >>> 0 };
  }

  /** The value, LEASE for a lease marker, or UNDECODABLE. */
  decode(bytes: Buffer, flags: number): unknown {
    const item = this.decodeItem(bytes, flags);
    return typeof item === 'symbol' ? item : item.value;
  }

  /** With `rawJson`, JSON entries come back as `RawJson` text instead of parsed values. */
  decodeItem(bytes: Buffer, flags: number, rawJson = false): DecodedItem | typeof LEASE | typeof UNDECODABLE {
    if ((flags & MAGIC_MASK) >>> 0 !== FLAGS_MAGIC) {
      if (flags !== 0) return UNDECODABLE;
      const counter = decodeCounter(bytes);
      return counter === UNDECODABLE ? UNDECODABLE : { value: counter };
    }
    if (flags & FLAG_LEASE) return LEASE;
    let freshUntil: number | undefined;
    if (flags & FLAG_FRESHNESS) {
      if (bytes.length < 8) return UNDECODABLE;
      freshUntil = bytes.readDoubleBE(0);
      bytes = bytes.subarray(8);
    }
    const value = this.decodeBody(bytes, flags, rawJson);
    return value === UNDECODABLE ? UNDECODABLE : { value, freshUntil };
  }

  private decodeBody(bytes: Buffer, flags: number, rawJson: boolean): unknown {
    try {
      const body = flags & FLAG_COMPRESSED ? inflateRawSync(bytes) : bytes;
      switch (flags & FORMAT_MASK) {
        case ValueFormat.Json:
          return rawJson ? new RawJson(body.toString('utf8')) : JSON.parse(body.toString('utf8'));
        case ValueFormat.Utf8:
          return body.toString('utf8');
        case ValueFormat.Binary:
          // copy out of the socket's receive buffer, which memjs reuses
          return Buffer.from(body);
        case ValueFormat.Custom:
          return this.options.serializer ? this.options.serializer.deserialize(body) : UNDECODABLE;
        default:
          return UNDECODABLE;
      }
    } catch {
      return UNDECODABLE;
    }
  }
}

/** Counters created by increment/decrement carry flags 0 and a decimal body. */
function decodeCounter(bytes: Buffer): unknown {
  const match = DIGITS.exec(bytes.toString('latin1'));
  if (!match) return UNDECODABLE;
  const big = BigInt(match[1]);
  return big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
}
