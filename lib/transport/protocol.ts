/** memcached binary protocol: the opcodes and status codes this client uses. */
export const Opcode = {
  Get: 0x00,
  Set: 0x01,
  Add: 0x02,
  Replace: 0x03,
  Delete: 0x04,
  Increment: 0x05,
  Decrement: 0x06,
  Flush: 0x08,
  Noop: 0x0a,
  Version: 0x0b,
  GetKQ: 0x0d,
  Stat: 0x10,
  Touch: 0x1c,
  SaslAuth: 0x21,
} as const;

export const Status = {
  Ok: 0x00,
  KeyNotFound: 0x01,
  KeyExists: 0x02,
  ValueTooLarge: 0x03,
  InvalidArguments: 0x04,
  NotStored: 0x05,
  NonNumeric: 0x06,
  AuthError: 0x20,
  AuthContinue: 0x21,
  UnknownCommand: 0x81,
  OutOfMemory: 0x82,
} as const;

export const STATUS_TEXT: Record<number, string> = {
  0x01: 'key not found',
  0x02: 'key exists',
  0x03: 'value too large',
  0x04: 'invalid arguments',
  0x05: 'item not stored',
  0x06: 'incr/decr on a non-numeric value',
  0x20: 'authentication error',
  0x81: 'unknown command',
  0x82: 'out of memory',
};

/** One response frame. */
export interface BinaryResponse {
  header: {
    opcode: number;
    status: number;
    opaque: number;
    totalBodyLength: number;
    keyLength: number;
    extrasLength: number;
    cas: Buffer;
  };
  key: Buffer;
  extras: Buffer;
  val: Buffer;
  /** The body was larger than the client accepts and was skipped: key, extras and value are empty. */
  oversized?: boolean;
}

const HEADER = 24;

/**
 * Builds one request frame. `key` must already be a valid wire key (ASCII), so its byte length
 * equals its string length.
 */
export function buildRequest(
  opcode: number,
  key: string,
  extras: Buffer | null,
  value: Buffer | null,
  opaque: number,
  cas?: Buffer,
): Buffer {
  const keyLength = key.length;
  const extrasLength = extras === null ? 0 : extras.length;
  const valueLength = value === null ? 0 : value.length;
  const buf = Buffer.allocUnsafe(HEADER + extrasLength + keyLength + valueLength);
  buf[0] = 0x80;
  buf[1] = opcode;
  buf.writeUInt16BE(keyLength, 2);
  buf[4] = extrasLength;
  buf[5] = 0;
  buf.writeUInt16BE(0, 6);
  buf.writeUInt32BE(extrasLength + keyLength + valueLength, 8);
  buf.writeUInt32BE(opaque, 12);
  if (cas) cas.copy(buf, 16, 0, 8);
  else buf.fill(0, 16, 24);
  if (extras !== null) extras.copy(buf, HEADER);
  if (keyLength > 0) buf.write(key, HEADER + extrasLength, 'latin1');
  if (value !== null) value.copy(buf, HEADER + extrasLength + keyLength);
  return buf;
}

/** Extras of SET / ADD / REPLACE: flags, then expiry. */
export function storeExtras(flags: number, expiry: number): Buffer {
  const extras = Buffer.allocUnsafe(8);
  extras.writeUInt32BE(flags >>> 0, 0);
  extras.writeUInt32BE(expiry >>> 0, 4);
  return extras;
}

/** Extras of TOUCH: expiry. */
export function expiryExtras(expiry: number): Buffer {
  const extras = Buffer.allocUnsafe(4);
  extras.writeUInt32BE(expiry >>> 0, 0);
  return extras;
}

/** No initial value: memcached answers "key not found" instead of creating the counter. */
export const NO_INITIAL = 0xffffffff;

/** Extras of INCREMENT / DECREMENT: 64-bit delta, 64-bit initial value, expiry. */
export function counterExtras(delta: bigint, initial: bigint, expiry: number): Buffer {
  const extras = Buffer.allocUnsafe(20);
  extras.writeBigUInt64BE(delta, 0);
  extras.writeBigUInt64BE(initial, 8);
  extras.writeUInt32BE(expiry >>> 0, 16);
  return extras;
}

/** GETKQ for each key then NOOP, in one buffer: a pipelined multi-get answered by hits only, then NOOP. */
export function buildMultiGet(wires: readonly string[], opaque: number): Buffer {
  let total = HEADER;
  for (const wire of wires) total += HEADER + wire.length;
  const buf = Buffer.allocUnsafe(total);
  let offset = 0;
  const header = (opcode: number, keyLength: number) => {
    buf[offset] = 0x80;
    buf[offset + 1] = opcode;
    buf.writeUInt16BE(keyLength, offset + 2);
    buf.writeUInt32BE(0, offset + 4); // extras length, data type, vbucket
    buf.writeUInt32BE(keyLength, offset + 8);
    buf.writeUInt32BE(opaque, offset + 12);
    buf.fill(0, offset + 16, offset + 24);
    offset += HEADER;
  };
  for (const wire of wires) {
    header(Opcode.GetKQ, wire.length);
    offset += buf.write(wire, offset, 'latin1');
  }
  header(Opcode.Noop, 0);
  return buf;
}
