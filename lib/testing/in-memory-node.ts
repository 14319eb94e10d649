import { clientClosed } from '../memcached.messages.js';
import { MemcachedError } from '../transport/memcached.error.js';
import type { NodeTransport, RequestOptions } from '../transport/node-connection.js';
import { PENDING } from '../transport/node-connection.js';
import { type BinaryResponse, NO_INITIAL, Opcode, Status } from '../transport/protocol.js';
import { MAX_RELATIVE_TTL } from '../codec/ttl.js';

interface Item {
  value: Buffer;
  flags: number;
  expiresAt: number;
  cas: bigint;
}

const QUIET = new Set<number>([Opcode.GetKQ]);
const MAX_UINT64 = (1n << 64n) - 1n;

/**
 * A memcached node in process memory that answers the binary-protocol frames the client sends,
 * with memcached's rules (expiry, add/replace, 64-bit counters, item size limit that unlinks the
 * old item). Behind `InMemoryMemcachedClient`, so tests without a server see the same behaviour.
 */
export class InMemoryNode implements NodeTransport {
  private readonly items = new Map<string, Item>();
  private nextCas = 1n;
  private closed = false;

  constructor(
    readonly label: string,
    private readonly maxItemSize: number,
  ) {}

  /** The keys currently held (expired ones dropped), as sent on the wire. */
  keys(): string[] {
    return [...this.items.keys()].filter((key) => this.live(key) !== undefined);
  }

  request<T>(
    operation: string,
    _seq: number,
    frame: Buffer,
    onResponse: (res: BinaryResponse) => T | typeof PENDING,
    _options?: RequestOptions,
  ): Promise<T> {
    if (this.closed) {
      return Promise.reject(new MemcachedError(operation, this.label, 'CLOSED', clientClosed()));
    }
    return new Promise<T>((resolve, reject) => {
      queueMicrotask(() => {
        try {
          for (const res of this.handleFrame(frame)) {
            const result = onResponse(res);
            if (result !== PENDING) return resolve(result);
          }
          reject(new MemcachedError(operation, this.label, 'CONNECTION', 'no final response'));
        } catch (error) {
          reject(error);
        }
      });
    });
  }

  reset(): void {}

  close(): void {
    this.closed = true;
  }

  private *handleFrame(frame: Buffer): Generator<BinaryResponse> {
    let offset = 0;
    while (offset < frame.length) {
      const opcode = frame[offset + 1];
      const keyLength = frame.readUInt16BE(offset + 2);
      const extrasLength = frame[offset + 4];
      const bodyLength = frame.readUInt32BE(offset + 8);
      const opaque = frame.readUInt32BE(offset + 12);
      const cas = frame.readBigUInt64BE(offset + 16);
      const extras = frame.subarray(offset + 24, offset + 24 + extrasLength);
      const key = frame.toString('latin1', offset + 24 + extrasLength, offset + 24 + extrasLength + keyLength);
      const value = frame.subarray(offset + 24 + extrasLength + keyLength, offset + 24 + bodyLength);
      offset += 24 + bodyLength;
      const res = this.execute(opcode, key, extras, Buffer.from(value), cas, opaque);
      for (const r of res) {
        if (QUIET.has(opcode) && r.header.status === Status.KeyNotFound) continue;
        yield r;
      }
    }
  }

  private execute(
    opcode: number,
    key: string,
    extras: Buffer,
    value: Buffer,
    cas: bigint,
    opaque: number,
  ): BinaryResponse[] {
    const reply = (status: number, body: { key?: string; extras?: Buffer; val?: Buffer; cas?: bigint } = {}) => [
      response(opcode, status, opaque, body),
    ];
    switch (opcode) {
      case Opcode.Get:
      case Opcode.GetKQ: {
        const item = this.live(key);
        if (!item) return reply(Status.KeyNotFound);
        const flags = Buffer.alloc(4);
        flags.writeUInt32BE(item.flags);
        return reply(Status.Ok, {
          key: opcode === Opcode.GetKQ ? key : '',
          extras: flags,
          val: Buffer.from(item.value),
          cas: item.cas,
        });
      }
      case Opcode.Set:
      case Opcode.Add:
      case Opcode.Replace: {
        const existing = this.live(key);
        if (opcode === Opcode.Add && existing) return reply(Status.KeyExists);
        if (opcode === Opcode.Replace && !existing) return reply(Status.KeyNotFound);
        if (cas !== 0n && (!existing || existing.cas !== cas))
          return reply(existing ? Status.KeyExists : Status.KeyNotFound);
        if (value.length + key.length + 56 > this.maxItemSize) {
          this.items.delete(key);
          return reply(Status.ValueTooLarge);
        }
        const item = {
          value,
          flags: extras.readUInt32BE(0),
          expiresAt: expiresAt(extras.readUInt32BE(4)),
          cas: this.nextCas++,
        };
        this.items.set(key, item);
        return reply(Status.Ok, { cas: item.cas });
      }
      case Opcode.Delete: {
        const existing = this.live(key);
        if (!existing) return reply(Status.KeyNotFound);
        if (cas !== 0n && existing.cas !== cas) return reply(Status.KeyExists);
        this.items.delete(key);
        return reply(Status.Ok);
      }
      case Opcode.Touch: {
        const item = this.live(key);
        if (!item) return reply(Status.KeyNotFound);
        item.expiresAt = expiresAt(extras.readUInt32BE(0));
        return reply(Status.Ok);
      }
      case Opcode.Increment:
      case Opcode.Decrement: {
        const delta = extras.readBigUInt64BE(0);
        const initial = extras.readBigUInt64BE(8);
        const expiry = extras.readUInt32BE(16);
        const item = this.live(key);
        let next: bigint;
        if (!item) {
          if (expiry === NO_INITIAL) return reply(Status.KeyNotFound);
          next = initial;
          this.items.set(key, {
            value: Buffer.from(String(next)),
            flags: 0,
            expiresAt: expiresAt(expiry),
            cas: this.nextCas++,
          });
        } else {
          const text = item.value.toString('latin1');
          if (!/^[0-9]{1,20}$/.test(text) || BigInt(text) > MAX_UINT64) return reply(Status.NonNumeric);
          const current = BigInt(text);
          next = opcode === Opcode.Increment ? (current + delta) & MAX_UINT64 : current > delta ? current - delta : 0n;
          item.value = Buffer.from(String(next));
          item.cas = this.nextCas++;
        }
        const val = Buffer.alloc(8);
        val.writeBigUInt64BE(next);
        return reply(Status.Ok, { val });
      }
      case Opcode.Flush:
        this.items.clear();
        return reply(Status.Ok);
      case Opcode.Noop:
        return reply(Status.Ok);
      case Opcode.Version:
        return reply(Status.Ok, { val: Buffer.from('in-memory') });
      case Opcode.Stat:
        return [
          response(opcode, Status.Ok, opaque, { key: 'curr_items', val: Buffer.from(String(this.keys().length)) }),
          response(opcode, Status.Ok, opaque, { key: 'version', val: Buffer.from('in-memory') }),
          response(opcode, Status.Ok, opaque, {}),
        ];
      default:
        return reply(Status.UnknownCommand);
    }
  }

  private live(key: string): Item | undefined {
    const item = this.items.get(key);
    if (item && item.expiresAt !== 0 && item.expiresAt <= Date.now()) {
      this.items.delete(key);
      return undefined;
    }
    return item;
  }
}

function expiresAt(expiry: number): number {
  if (expiry === 0) return 0;
  return expiry > MAX_RELATIVE_TTL ? expiry * 1000 : Date.now() + expiry * 1000;
}

function response(
  opcode: number,
  status: number,
  opaque: number,
  body: { key?: string; extras?: Buffer; val?: Buffer; cas?: bigint },
): BinaryResponse {
  const key = Buffer.from(body.key ?? '', 'latin1');
  const extras = body.extras ?? Buffer.alloc(0);
  const val = body.val ?? Buffer.alloc(0);
  const cas = Buffer.alloc(8);
  cas.writeBigUInt64BE(body.cas ?? 0n);
  return {
    header: {
      opcode,
      status,
      opaque,
      keyLength: key.length,
      extrasLength: extras.length,
      totalBodyLength: key.length + extras.length + val.length,
      cas,
    },
    key,
    extras,
    val,
  };
}
