import type { BreakerNode } from '../cluster/breaker-node.js';
import type { NodeRouter } from '../cluster/router.js';
import type { ValueCipher } from '../codec/value-cipher.js';
import {
  type EncodedValue,
  FLAG_LEASE,
  FLAGS_MAGIC,
  LEASE,
  type ResponseMeta,
  UNDECODABLE,
  UnsupportedValueError,
  type ValueCodec,
} from '../codec/value.codec.js';
import { oversizeSkipped, unsupportedValueSkipped } from '../memcached.messages.js';
import { MemcachedError } from '../transport/memcached.error.js';
import { PENDING } from '../transport/node-connection.js';
import { RequestIds } from '../transport/request-ids.js';
import {
  type BinaryResponse,
  buildMultiGet,
  buildRequest,
  counterExtras,
  expiryExtras,
  NO_INITIAL,
  Opcode,
  Status,
  STATUS_TEXT,
  storeExtras,
} from '../transport/protocol.js';
import type { TagStamp } from '../codec/tags.js';
import type { RateLimitedLogger } from '../utils/rate-limited-logger.js';
import type { CacheStats } from '../stats/cache-stats.js';
import { type CommandEvent, commandChannel } from '../tracing/channels.js';

/**
 * What a read found for a key: nothing, another caller's lease marker, an item that cannot be
 * read (another writer's, tampered with, undecryptable: a miss, but one to replace by its CAS),
 * or a value.
 */
export type ItemRead =
  | { state: 'miss' }
  | { state: 'lease'; cas: Buffer }
  | { state: 'unreadable'; cas: Buffer }
  | {
      state: 'hit';
      value: unknown;
      cas: Buffer;
      freshUntil?: number;
      meta?: ResponseMeta;
      kept?: KeptBytes;
      /** The versions of its tags the entry was stored under. */
      tags?: TagStamp[];
    };

/** A hit's stored bytes and flags, copied out (for the near cache, which decodes them per hit). */
export interface KeptBytes {
  bytes: Buffer;
  flags: number;
}

export const MISS: ItemRead = { state: 'miss' };

/** How a store ended: stored, refused by memcached (`exists` / `missing`), or not sent (too large). */
export type StoreOutcome = 'stored' | 'exists' | 'missing' | 'oversize';

/** memcached's per-item overhead beyond key and value (item header, CAS, flags, CRLF), rounded up. */
const ITEM_OVERHEAD = 72;

/** How `Operations.read` reads its keys. */
export interface ReadOptions {
  /** JSON entries come back as `RawJson` text (the HTTP path sends it as it is). */
  rawJson?: boolean;
  /** Hits of the last key also carry a copy of their stored bytes (for the near cache). */
  keep?: boolean;
  /** The first `counters` keys are namespace counters, which memcached increments: never encrypted. */
  counters?: number;
}

/**
 * memcached's commands over wire keys (already prefixed and made safe), routed to their node:
 * one frame each, with the value codec, the item size rule and the client's counters. Nothing
 * here logs a key: keys can hold user data, so warnings name the namespace (`label`).
 */
export class Operations {
  private readonly ids = RequestIds.forRequests();

  constructor(
    readonly router: NodeRouter,
    readonly codec: ValueCodec,
    readonly stats: CacheStats,
    readonly warnings: RateLimitedLogger,
    private readonly maxItemSize: number,
    /** Encrypts what is stored and refuses what is read unencrypted (`encryption`). */
    private readonly cipher?: ValueCipher,
  ) {}

  isDown(wire: string): boolean {
    return this.router.isDown(wire);
  }

  /** A value, or `undefined` for a miss (the caller counts the read). */
  async get(wire: string): Promise<unknown> {
    const res = await this.fetchOne(wire);
    return res === undefined ? undefined : this.decode(res, wire);
  }

  /**
   * Reads keys with their CAS and lease state, one pipelined request per node; the result is in
   * the order of `wires`. Rejects if a node fails (the caller then serves from its source).
   */
  async read(wires: readonly string[], how: ReadOptions = {}): Promise<ItemRead[]> {
    const { rawJson = false, keep = false, counters = 0 } = how;
    const found = wires.length === 1 ? [await this.fetchOne(wires[0])] : await this.fetch(wires, false);
    const result: ItemRead[] = new Array(wires.length);
    let kept: KeptBytes | undefined;
    for (let i = 0; i < wires.length; i++) {
      const res = found[i];
      const stored = res === undefined ? undefined : this.open(res, wires[i], i < counters);
      const item = stored === undefined ? undefined : this.decodeItem(stored, rawJson);
      if (keep && i === wires.length - 1 && stored !== undefined) kept = stored;
      if (res === undefined) result[i] = MISS;
      else if (item === undefined) result[i] = { state: 'unreadable', cas: res.header.cas };
      // the CAS is a slice of a received chunk, which nothing writes to afterwards
      else if (item === LEASE) result[i] = { state: 'lease', cas: res!.header.cas };
      else
        result[i] = {
          state: 'hit',
          value: item.value,
          cas: res!.header.cas,
          freshUntil: item.freshUntil,
          meta: item.meta,
          tags: item.tags,
        };
    }
    const last = wires.length - 1;
    if (kept !== undefined && result[last].state === 'hit') {
      // a decrypted body is already a copy; a received one is a slice of the socket's chunk
      (result[last] as { kept?: KeptBytes }).kept = this.cipher
        ? kept
        : { bytes: Buffer.from(kept.bytes), flags: kept.flags };
    }
    return result;
  }

  /** Raw responses in the order of `wires` (undefined: a miss); a failing node's keys read as misses, with a warning. */
  fetchTolerant(wires: readonly string[]): Promise<Array<BinaryResponse | undefined>> {
    return this.fetch(wires, true);
  }

  /** A value the near cache kept, decoded as a hit would be (undefined if it no longer decodes). */
  decodeKept(kept: KeptBytes, rawJson: boolean): { value: unknown; meta?: ResponseMeta } | undefined {
    const item = this.codec.decodeItem(kept.bytes, kept.flags, rawJson);
    return typeof item === 'symbol' ? undefined : item;
  }

  /** The value of a GET response for `wire`, or undefined (a miss, a lease marker, bytes that do not decode). */
  decode(res: BinaryResponse, wire: string): unknown {
    return this.decodeTagged(res, wire)?.value;
  }

  /** The value of a GET response and the tag versions it was stored under, or undefined (see `decode`). */
  decodeTagged(res: BinaryResponse, wire: string): { value: unknown; tags?: TagStamp[] } | undefined {
    const stored = this.open(res, wire, false);
    const item = stored === undefined ? undefined : this.decodeItem(stored);
    return item === undefined || item === LEASE ? undefined : item;
  }

  /** Encodes a value; a value that cannot be kept as it is throws `UnsupportedValueError`, counted. */
  encode(
    value: unknown,
    freshUntil?: number,
    asResponse = false,
    meta?: ResponseMeta,
    tags?: readonly TagStamp[],
  ): EncodedValue {
    try {
      return this.codec.encode(value, freshUntil, asResponse, meta, tags);
    } catch (error) {
      if (error instanceof UnsupportedValueError) this.stats.count('unsupportedValues');
      throw error;
    }
  }

  /** Warns (once per namespace and type, rate-limited) that a value was not cached. */
  warnUnsupported(label: string, error: unknown): void {
    const what = error instanceof UnsupportedValueError ? error.what : 'a value';
    this.warnings.warn(`unsupported:${label}:${what}`, () => unsupportedValueSkipped(label, (error as Error).message));
  }

  /**
   * SET / ADD / REPLACE, with `cas` a conditional store. An item over `maxItemSize` is not sent:
   * the key is deleted instead (only if it still holds `cas`, when given), so an older value
   * cannot survive as a stale hit, and the skip is counted and warned once per `label`.
   */
  async store(
    opcode: number,
    operation: string,
    wire: string,
    encoded: EncodedValue,
    expiry: number,
    label: string,
    cas?: Buffer,
  ): Promise<StoreOutcome> {
    const size = encoded.bytes.length + wire.length + ITEM_OVERHEAD;
    if (size > this.maxItemSize) {
      this.noteOversize(label, size);
      await this.delete(wire, operation, cas);
      return 'oversize';
    }
    if (this.cipher && !encoded.clear) encoded = this.cipher.seal(wire, encoded);
    const seq = this.nextSeq();
    const frame = buildRequest(opcode, wire, storeExtras(encoded.flags, expiry), encoded.bytes, seq, cas);
    const status = await this.send(this.router.nodeFor(wire), operation, seq, frame, {
      idempotent: opcode !== Opcode.Add && cas === undefined,
      onResponse: (res) => res.header.status,
    });
    switch (status) {
      case Status.Ok:
        this.stats.count('sets');
        return 'stored';
      case Status.KeyExists:
        return 'exists';
      case Status.KeyNotFound:
      case Status.NotStored:
        return 'missing';
      case Status.ValueTooLarge:
        // memcached has already unlinked the old item
        this.noteOversize(label, size);
        return 'oversize';
      default:
        throw this.serverError(operation, wire, status);
    }
  }

  /** DELETE (only if the key still holds `cas`, when given); false when it was not there (or changed). */
  async delete(wire: string, operation = 'delete', cas?: Buffer): Promise<boolean> {
    const seq = this.nextSeq();
    const deleted = await this.send(
      this.router.nodeFor(wire),
      operation,
      seq,
      buildRequest(Opcode.Delete, wire, null, null, seq, cas),
      {
        idempotent: cas === undefined,
        onResponse: (res) => {
          if (res.header.status === Status.Ok) return true;
          if (res.header.status === Status.KeyNotFound || res.header.status === Status.KeyExists) return false;
          throw this.serverError(operation, wire, res.header.status);
        },
      },
    );
    if (deleted) this.stats.count('deletes');
    return deleted;
  }

  /** INCREMENT / DECREMENT: the new value, or null when the counter is missing and `initial` is not given. */
  counter(
    opcode: number,
    operation: string,
    wire: string,
    delta: bigint,
    initial: bigint | undefined,
    expiry: number,
  ): Promise<bigint | null> {
    const seq = this.nextSeq();
    const extras = counterExtras(delta, initial ?? 0n, initial === undefined ? NO_INITIAL : expiry);
    // never retried: a lost answer does not mean the increment was not applied
    return this.send(this.router.nodeFor(wire), operation, seq, buildRequest(opcode, wire, extras, null, seq), {
      onResponse: (res) => {
        if (res.header.status === Status.Ok) return res.val.readBigUInt64BE(0);
        if (res.header.status === Status.KeyNotFound) return null;
        throw this.serverError(operation, wire, res.header.status);
      },
    });
  }

  async touch(wire: string, expiry: number): Promise<boolean> {
    const seq = this.nextSeq();
    return this.send(
      this.router.nodeFor(wire),
      'touch',
      seq,
      buildRequest(Opcode.Touch, wire, expiryExtras(expiry), null, seq),
      {
        idempotent: true,
        onResponse: (res) => {
          if (res.header.status === Status.Ok) return true;
          if (res.header.status === Status.KeyNotFound) return false;
          throw this.serverError('touch', wire, res.header.status);
        },
      },
    );
  }

  warnFailure(error: unknown): void {
    const topic = error instanceof MemcachedError ? `${error.operation}:${error.node}:${error.code}` : 'other';
    this.warnings.warn(topic, () => `cache bypassed: ${(error as Error).message}`);
  }

  nextSeq(): number {
    return this.ids.next();
  }

  /** One key with a plain GET (a multi-get would add a NOOP frame); undefined for a miss. */
  private async fetchOne(wire: string): Promise<BinaryResponse | undefined> {
    const seq = this.nextSeq();
    const res = await this.send(
      this.router.nodeFor(wire),
      'get',
      seq,
      buildRequest(Opcode.Get, wire, null, null, seq),
      {
        idempotent: true,
        onResponse: (r) => r,
      },
    );
    if (res.header.status === Status.KeyNotFound) return undefined;
    if (res.header.status !== Status.Ok) throw this.serverError('get', wire, res.header.status);
    return res;
  }

  private async fetch(wires: readonly string[], tolerant: boolean): Promise<Array<BinaryResponse | undefined>> {
    const found: Array<BinaryResponse | undefined> = new Array(wires.length);
    const groups = this.router.group(wires);
    if (groups.length === 1) await this.fetchFromNode(groups[0][0], wires, found, tolerant, groups[0][1]);
    else
      await Promise.all(groups.map(([node, positions]) => this.fetchFromNode(node, wires, found, tolerant, positions)));
    return found;
  }

  /** One pipelined GETKQ... NOOP on `node` for `wires` (or those at `positions`); hits land in `found`. */
  private async fetchFromNode(
    node: BreakerNode,
    wires: readonly string[],
    found: Array<BinaryResponse | undefined>,
    tolerant: boolean,
    positions?: number[],
  ): Promise<void> {
    const mine = positions === undefined ? wires : positions.map((i) => wires[i]);
    // a few keys: match a hit by scanning; many: by a map of wire key to positions
    let byWire: Map<string, number[]> | undefined;
    if (mine.length > 8) {
      byWire = new Map();
      for (let j = 0; j < mine.length; j++) {
        const at = positions === undefined ? j : positions[j];
        const list = byWire.get(mine[j]);
        if (list) list.push(at);
        else byWire.set(mine[j], [at]);
      }
    }
    const seq = this.nextSeq();
    try {
      await this.send(node, 'getMulti', seq, buildMultiGet(mine, seq), {
        quiet: true,
        idempotent: true,
        batch: mine.length,
        onResponse(res) {
          if (res.header.opcode === Opcode.Noop) return true;
          if (res.header.status !== Status.Ok) return PENDING;
          const wire = res.key.toString('latin1');
          if (byWire !== undefined) {
            for (const at of byWire.get(wire) ?? []) found[at] = res;
          } else {
            for (let j = 0; j < mine.length; j++)
              if (mine[j] === wire) found[positions === undefined ? j : positions[j]] = res;
          }
          return PENDING;
        },
      });
    } catch (error) {
      if (!tolerant) throw error;
      // one sick node must not cost the others' hits: its keys read as misses
      this.warnFailure(error);
    }
  }

  /**
   * A hit's flags and body as written: decrypted with `encryption`, where anything not encrypted
   * by one of our keys reads as a miss (counted), except a lease marker (it holds no value) and,
   * when `counter`, a namespace counter. Undefined for a body that cannot be read.
   */
  private open(res: BinaryResponse, wire: string, counter: boolean): EncodedValue | undefined {
    // a hit always carries its 4 bytes of flags; a body over the size limit was never read
    if (res.oversized || res.extras.length < 4) {
      this.stats.count('undecodable');
      return undefined;
    }
    const flags = res.extras.readUInt32BE(0);
    if (this.cipher === undefined || counter || flags === (FLAGS_MAGIC | FLAG_LEASE) >>> 0)
      return { bytes: res.val, flags };
    const opened = this.cipher.open(wire, res.val, flags);
    if (opened === undefined) this.stats.count('undecryptable');
    return opened;
  }

  private decodeItem(stored: EncodedValue, rawJson = false) {
    const item = this.codec.decodeItem(stored.bytes, stored.flags, rawJson);
    if (item === UNDECODABLE) {
      this.stats.count('undecodable');
      return undefined;
    }
    return item;
  }

  private noteOversize(label: string, size: number): void {
    this.stats.count('oversizeSkips');
    this.warnings.once(`oversize:${label}`, oversizeSkipped(label, size, this.maxItemSize));
  }

  send<T>(
    node: BreakerNode,
    operation: string,
    seq: number,
    frame: Buffer,
    spec: {
      quiet?: boolean;
      idempotent?: boolean;
      /** Keys in a multi-get (traced). */
      batch?: number;
      onResponse: (res: BinaryResponse) => T | typeof PENDING;
    },
  ): Promise<T> {
    if (commandChannel.hasSubscribers) {
      const event: CommandEvent = { command: commandName(frame[1]), operation, node: node.label, bytes: frame.length };
      if (spec.batch !== undefined) event.batchSize = spec.batch;
      const onResponse = (res: BinaryResponse) => {
        if (res.header.status !== 0) event.status = res.header.status;
        return spec.onResponse(res);
      };
      return commandChannel.tracePromise(
        () => node.request(operation, seq, frame, onResponse, spec, this.stats.settled),
        event,
      );
    }
    return node.request(operation, seq, frame, spec.onResponse, spec, this.stats.settled);
  }

  serverError(operation: string, wire: string, status: number, node?: BreakerNode): MemcachedError {
    const label = (node ?? this.router.nodeFor(wire)).label;
    return new MemcachedError(
      operation,
      label,
      'SERVER',
      STATUS_TEXT[status] ?? `status 0x${status.toString(16)}`,
      status,
    );
  }
}

/** memcached's (text protocol) names of the binary opcodes the client sends, for traces. */
const COMMAND_NAMES: Record<number, string> = {
  [Opcode.Get]: 'get',
  [Opcode.GetKQ]: 'get',
  [Opcode.Set]: 'set',
  [Opcode.Add]: 'add',
  [Opcode.Replace]: 'replace',
  [Opcode.Delete]: 'delete',
  [Opcode.Increment]: 'incr',
  [Opcode.Decrement]: 'decr',
  [Opcode.Touch]: 'touch',
  [Opcode.Flush]: 'flush_all',
  [Opcode.Noop]: 'noop',
  [Opcode.Version]: 'version',
  [Opcode.Stat]: 'stats',
};

function commandName(opcode: number): string {
  return COMMAND_NAMES[opcode] ?? `0x${opcode.toString(16)}`;
}
