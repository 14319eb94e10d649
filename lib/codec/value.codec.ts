import { MemcachedUsageError } from '../memcached.errors.js';
import { deserialize, serialize } from 'node:v8';
import type { MemcachedSerializer } from '../interfaces/memcached-module-options.interface.js';
import { undefinedValue, unsupportedValue } from '../memcached.messages.js';
import { compress, inflate } from './inflate.js';
import { decodePylibmc, encodePylibmc, PylibmcRefusal } from './pylibmc-format.js';
import { fidelityOf } from './value-fidelity.js';
import { decodeStamps, encodeStamps, type TagStamp } from './tags.js';

/** High 16 bits of the flags we write ("NM"): a value without them was stored by someone else. */
export const FLAGS_MAGIC = 0x4e4d0000;
const MAGIC_MASK = 0xffff0000;
const FORMAT_MASK = 0x000000ff;
export const FLAG_COMPRESSED = 0x00000100;
/** The item is a lease marker: someone is loading this key (see the lease protocol). */
export const FLAG_LEASE = 0x00000200;
/** The body starts with the entry's freshness deadline (stale-while-revalidate). */
export const FLAG_FRESHNESS = 0x00000400;
/** After any freshness deadline, the body carries the HTTP response's metadata (`ResponseMeta`). */
export const FLAG_RESPONSE_META = 0x00000800;
/** After any freshness deadline, the body carries the versions of the entry's tags (`TagStamp`s). */
export const FLAG_TAGS = 0x00001000;

/** What an HTTP entry records about the request it answered. */
export interface ResponseMeta {
  /** The response's `Vary` header names with the request's values for them. */
  vary?: Array<[string, string]>;
}

export const ValueFormat = { Json: 1, Utf8: 2, Binary: 3, Custom: 4, Structured: 5 } as const;
type ValueFormat = (typeof ValueFormat)[keyof typeof ValueFormat];

/**
 * How values that are neither strings nor Buffers are stored: `auto` (JSON when the value
 * survives JSON unchanged, else Node's structured serialisation when that keeps it, else
 * refused), `json` (JSON only: for values other languages read), `structured` (always
 * structured serialisation).
 */
export type ValueMode = 'auto' | 'json' | 'structured';

/** A value that would not come back as it went in; it is not stored. */
export class UnsupportedValueError extends TypeError {
  override readonly name = 'UnsupportedValueError';

  constructor(
    /** What could not be kept, e.g. `an instance of User` or `a Map`. */
    readonly what: string,
    /** Where in the value, e.g. `.owner` or `[3]`; empty for the value itself. */
    readonly where: string,
    mode: ValueMode | 'pylibmc',
  ) {
    super(unsupportedValue(what, where, mode));
  }
}

export interface EncodedValue {
  bytes: Buffer;
  flags: number;
  /** Stored as it is even with encryption: a namespace counter, which memcached increments. */
  clear?: boolean;
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
  /** Handed to many readers (a near-cache entry's): worth keeping what is derived from it. */
  shared = false;

  constructor(readonly json: string) {}

  toJSON(): unknown {
    return JSON.parse(this.json);
  }
}

export interface DecodedItem {
  value: unknown;
  /** Epoch ms after which the entry is stale (stale-while-revalidate entries only). */
  freshUntil?: number;
  meta?: ResponseMeta;
  /** The versions of its tags the entry was stored under. */
  tags?: TagStamp[];
}

export interface ValueCodecOptions {
  compressionThreshold: number;
  serializer?: MemcachedSerializer;
  mode?: ValueMode;
  /** `pylibmc`: plain values in pylibmc's layout, readable by Python clients (see `encodePylibmc`). */
  format?: 'native' | 'pylibmc';
}

// memcached may space-pad a counter that a decrement made shorter
const DIGITS = /^([0-9]{1,20}) *$/;

/**
 * Encodes values for memcached and records the format in the item's flags, so a reader never
 * guesses: strings and Buffers round-trip byte for byte; everything else goes through JSON when
 * JSON keeps it, through structured serialisation when only that does (see `ValueMode`), or the
 * configured serializer; a value neither keeps is refused with `UnsupportedValueError`. Bodies
 * above the threshold are deflated when that saves space.
 */
export class ValueCodec {
  constructor(private readonly options: ValueCodecOptions) {}

  /** A lease marker: a random token, flagged so no reader takes it for a value. */
  leaseMarker(token: Buffer): EncodedValue {
    return { bytes: token, flags: (FLAGS_MAGIC | FLAG_LEASE) >>> 0 };
  }

  /**
   * `freshUntil` (epoch ms) makes a stale-while-revalidate entry. `asResponse` stores an HTTP
   * response body: JSON exactly as Nest would send it, with no type check (what a client receives
   * is that text either way). `tags`: the versions of the entry's tags it is stored under.
   */
  encode(
    value: unknown,
    freshUntil?: number,
    asResponse = false,
    meta?: ResponseMeta,
    tags?: readonly TagStamp[],
  ): EncodedValue {
    // what only this library reads (freshness, HTTP responses, tags) keeps its own layout
    if (
      this.options.format === 'pylibmc' &&
      freshUntil === undefined &&
      !asResponse &&
      meta === undefined &&
      tags === undefined &&
      value !== undefined
    ) {
      try {
        return encodePylibmc(value, this.options.compressionThreshold);
      } catch (error) {
        if (error instanceof PylibmcRefusal) throw new UnsupportedValueError(error.what, error.where, 'pylibmc');
        throw error;
      }
    }
    const body = this.body(value, asResponse);
    let bytes = body.bytes;
    let flags = FLAGS_MAGIC | body.format;
    const compressed = compress(bytes, this.options.compressionThreshold);
    if (compressed !== undefined) {
      bytes = compressed;
      flags |= FLAG_COMPRESSED;
    }
    if (meta !== undefined) {
      const json = Buffer.from(JSON.stringify(meta), 'utf8');
      if (json.length > 0xffff) throw new UnsupportedValueError('response metadata over 64 KiB', '', 'json');
      const length = Buffer.allocUnsafe(2);
      length.writeUInt16BE(json.length, 0);
      bytes = Buffer.concat([length, json, bytes]);
      flags |= FLAG_RESPONSE_META;
    }
    if (tags !== undefined && tags.length > 0) {
      const json = encodeStamps(tags);
      // checked tags (at most MAX_TAGS of MAX_TAG_LENGTH) always fit; this is the format's own limit
      if (json.length > 0xffff) throw new UnsupportedValueError('tags over 64 KiB', '', 'json');
      const length = Buffer.allocUnsafe(2);
      length.writeUInt16BE(json.length, 0);
      bytes = Buffer.concat([length, json, bytes]);
      flags |= FLAG_TAGS;
    }
    if (freshUntil !== undefined) {
      const header = Buffer.allocUnsafe(8);
      header.writeDoubleBE(freshUntil, 0);
      bytes = Buffer.concat([header, bytes]);
      flags |= FLAG_FRESHNESS;
    }
    return { bytes, flags: flags >>> 0 };
  }

  private body(value: unknown, asResponse: boolean): { bytes: Buffer; format: ValueFormat } {
    if (typeof value === 'string' && value.isWellFormed())
      return { bytes: Buffer.from(value, 'utf8'), format: ValueFormat.Utf8 };
    if (Buffer.isBuffer(value)) return { bytes: value, format: ValueFormat.Binary };
    if (value === undefined) throw new MemcachedUsageError('VALUE', undefinedValue());
    if (asResponse) {
      const json = JSON.stringify(value);
      if (json === undefined) throw new UnsupportedValueError(`a ${typeof value}`, '', 'json');
      return { bytes: Buffer.from(json, 'utf8'), format: ValueFormat.Json };
    }
    if (this.options.serializer) {
      const out = this.options.serializer.serialize(value);
      return { bytes: typeof out === 'string' ? Buffer.from(out, 'utf8') : out, format: ValueFormat.Custom };
    }
    const mode = this.options.mode ?? 'auto';
    const fidelity = fidelityOf(value);
    if (fidelity.kind === 'unsupported') throw new UnsupportedValueError(fidelity.what, fidelity.where, mode);
    if (fidelity.kind === 'json' && mode !== 'structured') {
      return { bytes: Buffer.from(JSON.stringify(value), 'utf8'), format: ValueFormat.Json };
    }
    if (mode === 'json')
      throw new UnsupportedValueError(fidelity.kind === 'structured' ? fidelity.what : 'a value', '', mode);
    return { bytes: serialize(value), format: ValueFormat.Structured };
  }

  /** The value, LEASE for a lease marker, or UNDECODABLE. */
  decode(bytes: Buffer, flags: number): unknown {
    const item = this.decodeItem(bytes, flags);
    return typeof item === 'symbol' ? item : item.value;
  }

  /** With `rawJson`, JSON entries come back as `RawJson` text instead of parsed values. */
  decodeItem(bytes: Buffer, flags: number, rawJson = false): DecodedItem | typeof LEASE | typeof UNDECODABLE {
    if ((flags & MAGIC_MASK) >>> 0 !== FLAGS_MAGIC) {
      if (this.options.format === 'pylibmc') return decodePylibmc(bytes, flags) ?? UNDECODABLE;
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
    let tags: TagStamp[] | undefined;
    if (flags & FLAG_TAGS) {
      if (bytes.length < 2 || bytes.length < 2 + bytes.readUInt16BE(0)) return UNDECODABLE;
      const end = 2 + bytes.readUInt16BE(0);
      tags = decodeStamps(bytes.toString('utf8', 2, end));
      if (tags === undefined) return UNDECODABLE;
      bytes = bytes.subarray(end);
    }
    let meta: ResponseMeta | undefined;
    if (flags & FLAG_RESPONSE_META) {
      if (bytes.length < 2 || bytes.length < 2 + bytes.readUInt16BE(0)) return UNDECODABLE;
      const end = 2 + bytes.readUInt16BE(0);
      meta = parseMeta(bytes.toString('utf8', 2, end));
      if (meta === undefined) return UNDECODABLE;
      bytes = bytes.subarray(end);
    }
    const value = this.decodeBody(bytes, flags, rawJson);
    if (value === UNDECODABLE) return UNDECODABLE;
    const item: DecodedItem = meta === undefined ? { value, freshUntil } : { value, freshUntil, meta };
    if (tags !== undefined) item.tags = tags;
    return item;
  }

  private decodeBody(bytes: Buffer, flags: number, rawJson: boolean): unknown {
    try {
      const body = flags & FLAG_COMPRESSED ? inflate(bytes) : bytes;
      switch (flags & FORMAT_MASK) {
        case ValueFormat.Json:
          return rawJson ? new RawJson(body.toString('utf8')) : JSON.parse(body.toString('utf8'));
        case ValueFormat.Utf8:
          return body.toString('utf8');
        case ValueFormat.Binary:
          // copy out of the socket's receive buffer, which the connection reuses
          return Buffer.from(body);
        case ValueFormat.Custom:
          return this.options.serializer ? this.options.serializer.deserialize(body) : UNDECODABLE;
        case ValueFormat.Structured:
          return deserialize(body);
        default:
          return UNDECODABLE;
      }
    } catch {
      return UNDECODABLE;
    }
  }
}

/** Response metadata as stored, checked to be the shape we write; undefined when it is not. */
function parseMeta(text: string): ResponseMeta | undefined {
  try {
    const meta = JSON.parse(text) as ResponseMeta;
    if (meta === null || typeof meta !== 'object') return undefined;
    const vary = meta.vary;
    if (
      vary !== undefined &&
      !(
        Array.isArray(vary) &&
        vary.every((p) => Array.isArray(p) && p.length === 2 && typeof p[0] === 'string' && typeof p[1] === 'string')
      )
    ) {
      return undefined;
    }
    return { vary };
  } catch {
    return undefined;
  }
}

/** Counters created by increment/decrement carry flags 0 and a decimal body. */
function decodeCounter(bytes: Buffer): unknown {
  const match = DIGITS.exec(bytes.toString('latin1'));
  if (!match) return UNDECODABLE;
  const big = BigInt(match[1]);
  return big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
}
