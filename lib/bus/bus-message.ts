import { createHmac, createSecretKey, type KeyObject, timingSafeEqual } from 'node:crypto';
import { MAX_BUS_KEYS } from '../config/near-options.js';
import { KEY_PREFIX_PATTERN, NAMESPACE_PATTERN } from '../codec/key.codec.js';
import type { ChangeRef, KeyChange, NamespaceChange, TagChange } from '../codec/keyspace.js';
import { MAX_TAG_LENGTH } from '../codec/tags.js';
import { TRACEPARENT } from '../tracing/channels.js';

/**
 * Invalidation messages on the bus. Every byte that arrives is untrusted: the broker is shared, and
 * anyone who can publish on the channel can send anything. A message is
 *
 *   `2.<macs>.<payload>`
 *
 * - `<payload>`: compact JSON `{"s":"<source>","q":<seq>,"t":"k"|"n"|"g"|"h"|"b","x":[[...],...],"a":<ms>,"d":1,"o":1,"p":"00-…"}`
 *   with the sender's source id (random per process and bus), its sequence number, the type, the
 *   changes, the sender's wall-clock time, `d` when the change was caused by a followed change,
 *   `p` the W3C `traceparent` of the write that caused it (when its sender was traced), and
 *   `o` when every receiver is to hold it as a debt until it is paid: `1` memcached did not confirm
 *   it, `2` it landed on a stand-in node while its owner was down (`deadNodePolicy: 'rehash'`).
 *   Receivers of the previous release ignore `o` and drop their near entries as for any change.
 *   `k`: keys changed (`x` holds `[prefix, namespace, key]`, `namespace` empty for a plain key, or
 *   `[prefix, namespace, sha256, 1]` for a key too long to carry); `n`: namespaces got a new
 *   generation (`[prefix, namespace]`); `g`: tags got a new version (`[tagPrefix, tag]`; receivers of
 *   the release before tags drop it as malformed); `h`: a heartbeat; `b`: the source is closing (`x` empty).
 * - `<macs>`: with `bus.keys`, `<id>:<mac>` for every configured key, comma-separated, where `mac`
 *   is the base64url HMAC-SHA256 of `nmc2.<payload>` under that key: a receiver that knows any
 *   one of the keys can check the message, so processes with keys [2, 1] and [1] interoperate
 *   while a new key is rolled out. Empty without keys.
 *
 * With keys, nothing is parsed before the MAC checks out, and a message older than the replay
 * window (by the sender's clock) is refused. Without keys, version 1 messages (plain JSON, sent by
 * the previous release) are read too.
 */
export type BusMessageType = 'k' | 'n' | 'g' | 'h' | 'b';

interface BusHeader {
  source: string;
  seq: number;
  /** The sender's wall-clock time, ms (0 in a version 1 message). */
  at: number;
  derived?: boolean;
  /**
   * Receivers hold the change as a debt: `1` memcached did not confirm it; `2` it landed on a
   * stand-in node (`deadNodePolicy: 'rehash'`), and is owed to the owner when it returns.
   */
  owed?: 1 | 2;
  /** The W3C trace context of the write that caused the change, when its sender was traced. */
  traceparent?: string;
}

/** A decoded message: keys (`k`) or namespaces (`n`) that changed, or a heartbeat or goodbye. */
export type BusMessage = BusHeader &
  (
    | { type: 'k'; changes: KeyChange[] }
    | { type: 'n'; changes: NamespaceChange[] }
    | { type: 'g'; changes: TagChange[] }
    | { type: 'h' | 'b'; changes: [] }
  );

/** Why a message was dropped before it touched any state. */
export type BusRejection = 'malformed' | 'forged' | 'replayed' | 'stale';

export type DecodedBusMessage = { message: BusMessage } | { rejected: BusRejection };

/** An HMAC key of `bus.keys`. */
export interface BusKey {
  id: number;
  key: Buffer;
}

export const BUS_VERSION = 2;
/** Longest message read (bytes, or UTF-16 units of a string): anything longer is dropped unparsed. */
export const MAX_BUS_MESSAGE = 64 * 1024;
/** Most changes in one message (senders send one per message). */
export const MAX_BUS_NAMES = 256;
/** Longest change, its strings together (UTF-16 units); a longer key travels as its hash (keyspace.ts). */
export const MAX_BUS_NAME = 2048;
/** With keys, a message sent longer ago than this (by its sender's clock) is a replay. */
export const REPLAY_WINDOW_MS = 30_000;

const SOURCE = /^[A-Za-z0-9_-]{1,64}$/;
const MAC_INPUT_PREFIX = 'nmc2.';

/**
 * Encodes and checks bus messages with the configured keys. The key bytes are held as Node
 * `KeyObject`s, which never show their material (`util.inspect`, JSON).
 */
export class BusCodec {
  private readonly keys: ReadonlyArray<{ id: number; key: KeyObject }>;
  private readonly byId: ReadonlyMap<number, KeyObject>;

  constructor(keys: readonly BusKey[] = []) {
    this.keys = keys.map(({ id, key }) => ({ id, key: createSecretKey(Buffer.from(key)) }));
    this.byId = new Map(this.keys.map(({ id, key }) => [id, key]));
  }

  /** Whether messages are authenticated (`bus.keys` set). */
  get signed(): boolean {
    return this.keys.length > 0;
  }

  encode(message: BusMessage): string {
    const body: Record<string, unknown> = {
      s: message.source,
      q: message.seq,
      t: message.type,
      x: message.changes.map(changeToWire),
      a: message.at,
    };
    if (message.derived) body.d = 1;
    if (message.owed) body.o = message.owed;
    if (message.traceparent) body.p = message.traceparent;
    const payload = JSON.stringify(body);
    const macs = this.keys.map(({ id, key }) => `${id}:${mac(key, payload)}`).join(',');
    return `${BUS_VERSION}.${macs}.${payload}`;
  }

  /**
   * Reads a message; every byte is untrusted. With keys, a message is checked before its payload
   * is even turned into text, and a message sent before `now - REPLAY_WINDOW_MS` is refused.
   */
  decode(data: string | Uint8Array, now: number): DecodedBusMessage {
    if (data.length > MAX_BUS_MESSAGE) return MALFORMED;
    const bytes = typeof data === 'string' ? undefined : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const text = data as string;
    const first = bytes === undefined ? text.charCodeAt(0) : bytes[0];
    if (first === OPEN_BRACE) return this.signed ? FORGED : decodeVersion1(bytes?.toString('utf8') ?? text);
    const second = bytes === undefined ? text.charCodeAt(1) : bytes[1];
    const cut =
      first === VERSION_DIGIT && second === DOT
        ? bytes === undefined
          ? text.indexOf('.', 2)
          : bytes.indexOf(DOT, 2)
        : -1;
    if (cut < 0) return this.signed ? FORGED : MALFORMED;
    if (this.signed) {
      const macs = bytes === undefined ? text.slice(2, cut) : bytes.toString('latin1', 2, cut);
      if (!this.authentic(macs, bytes === undefined ? text.slice(cut + 1) : bytes.subarray(cut + 1))) return FORGED;
    }
    const message = parsePayload(bytes === undefined ? text.slice(cut + 1) : bytes.toString('utf8', cut + 1));
    if (message === undefined) return MALFORMED;
    if (this.signed && Math.abs(now - message.at) > REPLAY_WINDOW_MS) return STALE;
    return { message };
  }

  /**
   * Whether one of the message's MACs is right under a key we hold: ids we do not hold are
   * skipped, and each key we hold is tried once at most (a forged message cannot make us compute
   * more MACs than we have keys).
   */
  private authentic(macs: string, payload: string | Buffer): boolean {
    if (macs.length === 0 || macs.length > MAX_BUS_KEYS * 50) return false;
    const tried = new Set<number>();
    for (const entry of macs.split(',', MAX_BUS_KEYS)) {
      const colon = entry.indexOf(':');
      const id = Number(entry.slice(0, colon));
      const key = colon > 0 && Number.isInteger(id) && !tried.has(id) ? this.byId.get(id) : undefined;
      if (key === undefined) continue;
      tried.add(id);
      const expected = hmac(key, payload).digest();
      const given = Buffer.from(entry.slice(colon + 1), 'base64url');
      if (given.length === expected.length && timingSafeEqual(given, expected)) return true;
    }
    return false;
  }
}

const OPEN_BRACE = 0x7b;
const PAYLOAD_START = '{"s":"';
const DOT = 0x2e;
const VERSION_DIGIT = 0x30 + BUS_VERSION;

function hmac(key: KeyObject, payload: string | Buffer) {
  return createHmac('sha256', key).update(MAC_INPUT_PREFIX).update(payload);
}

function mac(key: KeyObject, payload: string): string {
  return hmac(key, payload).digest('base64url');
}

const MALFORMED: DecodedBusMessage = { rejected: 'malformed' };
const FORGED: DecodedBusMessage = { rejected: 'forged' };
const STALE: DecodedBusMessage = { rejected: 'stale' };

function parseJson(text: string): Record<string, unknown> | undefined {
  let parsed: unknown;
  try {
    // a deeply nested document throws (a RangeError at worst), and is malformed like any other
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)
    ? (parsed as Record<string, unknown>)
    : undefined;
}

function changeToWire(change: ChangeRef | TagChange): (string | 1)[] {
  if ('tag' in change) return [change.tagPrefix, change.tag];
  if (change.key === undefined) return [change.prefix, change.namespace];
  return change.hashed === true
    ? [change.prefix, change.namespace, change.key, 1]
    : [change.prefix, change.namespace, change.key];
}

/**
 * A change as received, or undefined when anything in it is not what a sender writes: a prefix and
 * a namespace hold no separator the keyspace uses, so one change can never pass for another.
 */
function changeOf(prefix: unknown, namespace: unknown, key: unknown, hashed: boolean): ChangeRef | undefined {
  if (typeof prefix !== 'string' || !KEY_PREFIX_PATTERN.test(prefix)) return undefined;
  if (typeof namespace !== 'string' || (namespace !== '' && !NAMESPACE_PATTERN.test(namespace))) return undefined;
  if (key === undefined) return namespace === '' ? undefined : { prefix, namespace };
  if (typeof key !== 'string' || prefix.length + namespace.length + key.length > MAX_BUS_NAME) return undefined;
  if (hashed) return HASH.test(key) ? { prefix, namespace, key, hashed: true } : undefined;
  return { prefix, namespace, key };
}

const HASH = /^[A-Za-z0-9_-]{43}$/;

/** A tag change as received: a tag prefix as configured, and a tag as `checkTags` accepts it. */
function tagChangeOf(entry: unknown[]): TagChange | undefined {
  const [tagPrefix, tag] = entry;
  if (entry.length !== 2 || typeof tagPrefix !== 'string' || !KEY_PREFIX_PATTERN.test(tagPrefix)) return undefined;
  if (typeof tag !== 'string' || tag.length === 0 || tag.length > MAX_TAG_LENGTH) return undefined;
  return { tagPrefix, tag };
}

function changesOf(x: unknown, type: unknown): Array<ChangeRef | TagChange> | undefined {
  if (!Array.isArray(x) || x.length > MAX_BUS_NAMES) return undefined;
  if (type === 'h' || type === 'b' ? x.length !== 0 : x.length === 0) return undefined;
  const changes: Array<ChangeRef | TagChange> = [];
  for (const entry of x) {
    if (!Array.isArray(entry)) return undefined;
    if (type === 'g') {
      const tag = tagChangeOf(entry);
      if (tag === undefined) return undefined;
      changes.push(tag);
      continue;
    }
    let change: ChangeRef | undefined;
    if (type === 'n') change = entry.length === 2 ? changeOf(entry[0], entry[1], undefined, false) : undefined;
    else if (entry.length === 3) change = changeOf(entry[0], entry[1], entry[2], false);
    else if (entry.length === 4 && entry[3] === 1) change = changeOf(entry[0], entry[1], entry[2], true);
    if (change === undefined || (type === 'k') !== (change.key !== undefined)) return undefined;
    changes.push(change);
  }
  return changes;
}

/**
 * The previous release's names: `prefix\0namespace\0key` (a hashed key as `\u0001sha256:<hash>`)
 * and `prefix\0namespace`. Read only from version 1 messages, during a rolling upgrade.
 */
function legacyChangesOf(x: unknown, type: unknown): ChangeRef[] | undefined {
  // the previous release had no tags
  if (type === 'g' || !Array.isArray(x) || x.length > MAX_BUS_NAMES) return undefined;
  if (type === 'h' || type === 'b') return x.length === 0 ? [] : undefined;
  if (x.length === 0) return undefined;
  const changes: ChangeRef[] = [];
  for (const name of x) {
    if (typeof name !== 'string' || name.length > MAX_BUS_NAME) return undefined;
    const first = name.indexOf('\u0000');
    const second = type === 'k' ? name.indexOf('\u0000', first + 1) : -1;
    let change: ChangeRef | undefined;
    if (type === 'n')
      change = first < 0 ? undefined : changeOf(name.slice(0, first), name.slice(first + 1), undefined, false);
    else if (first >= 0 && second >= 0) {
      const key = name.slice(second + 1);
      const hashed = key.startsWith(LEGACY_HASHED);
      change = changeOf(
        name.slice(0, first),
        name.slice(first + 1, second),
        hashed ? key.slice(LEGACY_HASHED.length) : key,
        hashed,
      );
    }
    if (change === undefined) return undefined;
    changes.push(change);
  }
  return changes;
}

const LEGACY_HASHED = '\u0001sha256:';

function parsePayload(payload: string): BusMessage | undefined {
  // what the encoder writes starts so: anything else (deep nesting, another format) is not parsed
  if (!payload.startsWith(PAYLOAD_START)) return undefined;
  const fields = parseJson(payload);
  return fields === undefined || typeof fields.a !== 'number' || !Number.isFinite(fields.a)
    ? undefined
    : messageOf(fields, fields.a, changesOf);
}

/** The previous release's messages: `{"v":1,"s":..,"q":..,"t":..,"x":[..],"d":1}` (read only without keys). */
function decodeVersion1(text: string): DecodedBusMessage {
  const fields = parseJson(text);
  // the previous release sent no `o`: one here is not read
  const message =
    fields === undefined || fields.v !== 1 ? undefined : messageOf({ ...fields, o: undefined }, 0, legacyChangesOf);
  return message === undefined ? MALFORMED : { message };
}

/** A message from its parsed fields (source, sequence, type, names, derived), or undefined if one is wrong. */
function messageOf(
  fields: Record<string, unknown>,
  at: number,
  read: (x: unknown, type: unknown) => Array<ChangeRef | TagChange> | undefined,
): BusMessage | undefined {
  const { s, q, t, x, d, o } = fields;
  if (typeof s !== 'string' || !SOURCE.test(s)) return undefined;
  if (typeof q !== 'number' || !Number.isSafeInteger(q) || q < 1) return undefined;
  if (t !== 'k' && t !== 'n' && t !== 'g' && t !== 'h' && t !== 'b') return undefined;
  if (d !== undefined && d !== 1) return undefined;
  // a tag is owed only as memcached's refusal (1): tags are not moved to stand-in nodes' keys
  if (o !== undefined && ((o !== 1 && o !== 2) || (t !== 'k' && t !== 'n' && (t !== 'g' || o !== 1)))) return undefined;
  const changes = read(x, t);
  if (changes === undefined) return undefined;
  // changesOf checked that every change is of the message's kind
  const message = { source: s, seq: q, type: t, changes, at } as BusMessage;
  if (d === 1) message.derived = true;
  if (o !== undefined) message.owed = o;
  // tracing data never costs a change: a `p` that is not a traceparent is left out, the change kept
  if (typeof fields.p === 'string' && TRACEPARENT.test(fields.p)) message.traceparent = fields.p;
  return message;
}
