import { channel, tracingChannel } from 'node:diagnostics_channel';

/**
 * What the library publishes for tracers, on Node's `diagnostics_channel`: no OpenTelemetry here,
 * and nothing built or published while no one subscribes (every publisher checks
 * `hasSubscribers` first). `nestjs-memcached/otel` turns these into spans and metrics; anyone
 * may subscribe (by name, or to the exported channels). Keys can hold user data: subscribers
 * decide whether to record them.
 *
 * @example
 * import { tracingChannel } from 'node:diagnostics_channel';
 * tracingChannel('nestjs-memcached:cache').subscribe({ asyncEnd: (call) => console.log(call.outcome) });
 */
export const CHANNELS = {
  /** A cached call (a decorated method or route, `getOrSet`): a tracing channel of `CacheCallEvent`. */
  cache: 'nestjs-memcached:cache',
  /** One memcached request frame sent to one node: a tracing channel of `CommandEvent`. */
  command: 'nestjs-memcached:command',
  /** A change published on the bus: a channel of `BusPublishEvent` (a subscriber fills `traceparent`). */
  busPublish: 'nestjs-memcached:bus.publish',
  /** A change heard on the bus and applied here: a tracing channel of `BusReceiveEvent`. */
  busReceive: 'nestjs-memcached:bus.receive',
  /** A warning about to be logged: a channel of `LogEvent` (a subscriber fills `traceId`). */
  log: 'nestjs-memcached:log',
} as const;

/**
 * An event a `start` subscriber may give a context to run the traced work in (OpenTelemetry's
 * `context.with`), so work it starts (memcached commands, the loader's queries) is its child.
 */
export interface RunsIn {
  runIn?: <T>(work: () => T) => T;
}

/** How a cached call was served. `STALE`: an entry past its TTL (refreshing, or graced). */
export type CacheCallOutcome = 'HIT' | 'MISS' | 'STALE' | 'BYPASS';

/** A cached call, as published on `CHANNELS.cache`; the outcome fields are set before it ends. */
export interface CacheCallEvent extends RunsIn {
  /** `undefined`: a key without a namespace. */
  namespace: string | undefined;
  /** The entry's key (user data: record it only on purpose). */
  key: string;
  /** The entry's tags, if it has any. */
  tags?: readonly string[];
  outcome?: CacheCallOutcome;
  /** Served from this process's near cache (no round trip). */
  near?: boolean;
  /** Served past its TTL because the source failed or was too slow (`grace`). */
  graced?: boolean;
  /** Waited for another caller's fill (a lease) before it was served. */
  leaseWaited?: boolean;
  /** Set by the channel when the call rejected (only the loader's own error: the cache fails open). */
  error?: unknown;
}

/** One request frame to one node, as published on `CHANNELS.command`. */
export interface CommandEvent {
  /** memcached's name for the command: `get`, `set`, `add`, `delete`, `incr`, `touch`, ... */
  command: string;
  /** What the library was doing (`get`, `getMulti`, `lease`, `invalidateTags`, ...). */
  operation: string;
  /** The node, as `host:port`. */
  node: string;
  /** Bytes of the request frame. */
  bytes: number;
  /** Keys in a multi-get. */
  batchSize?: number;
  /** memcached's status in its answer, when not 0 (success): `0x01` not found, `0x02` exists, `0x81` unknown command... */
  status?: number;
  /** Set by the channel when the request failed (a `MemcachedError`, whose `code` says why). */
  error?: unknown;
}

/** A change about to be published on the bus: a subscriber may set the W3C `traceparent` it carries. */
export interface BusPublishEvent {
  kind: 'keys' | 'namespaces' | 'tags';
  traceparent?: string;
}

/** A change heard on the bus, applied while the event is traced. */
export interface BusReceiveEvent extends RunsIn {
  kind: 'keys' | 'namespaces' | 'tags';
  /** How many keys, namespaces or tags changed. */
  changes: number;
  /** The change was caused by another (a followed namespace, a repaid debt). */
  derived: boolean;
  /** The W3C `traceparent` of the write that caused it, when its sender was traced. */
  traceparent?: string;
  error?: unknown;
}

/** A warning about to be logged: a subscriber may set the active trace's id, which the line then names. */
export interface LogEvent {
  traceId?: string;
}

export const cacheChannel = tracingChannel<string, CacheCallEvent>(CHANNELS.cache);
export const commandChannel = tracingChannel<string, CommandEvent>(CHANNELS.command);
export const busPublishChannel = channel(CHANNELS.busPublish);
export const busReceiveChannel = tracingChannel<string, BusReceiveEvent>(CHANNELS.busReceive);
export const logChannel = channel(CHANNELS.log);

/** A W3C `traceparent` (version 00), the only form a bus message carries. */
export const TRACEPARENT = /^00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}$/;

/** The `traceparent` a subscriber gives a change about to be published, if any. */
export function traceparentFor(kind: BusPublishEvent['kind']): string | undefined {
  if (!busPublishChannel.hasSubscribers) return undefined;
  const event: BusPublishEvent = { kind };
  busPublishChannel.publish(event);
  return typeof event.traceparent === 'string' && TRACEPARENT.test(event.traceparent) ? event.traceparent : undefined;
}

/** ` (trace <id>)` for a warning logged while a subscriber knows the active trace, else ''. */
export function traceSuffix(): string {
  if (!logChannel.hasSubscribers) return '';
  const event: LogEvent = {};
  logChannel.publish(event);
  return typeof event.traceId === 'string' && /^[0-9a-f]{32}$/.test(event.traceId) ? ` (trace ${event.traceId})` : '';
}

/**
 * A call that goes around the cache, traced under its namespace with its outcome but without a key
 * (building it would run the user's key function again): `BYPASS` (a condition said no, its key
 * could not be built, a request that may not be cached), or `MISS` (its node is known down).
 */
export function traceAround<T>(
  namespace: () => string,
  run: () => Promise<T>,
  outcome: CacheCallOutcome = 'BYPASS',
): Promise<T> {
  if (!cacheChannel.hasSubscribers) return run();
  return traced({ namespace: namespace(), key: '', outcome }, run);
}

/** Runs a cached call traced on `CHANNELS.cache` (call only when it has subscribers). */
export function traced<T>(event: CacheCallEvent, run: () => Promise<T>): Promise<T> {
  return cacheChannel.tracePromise(() => (event.runIn ? event.runIn(run) : run()), event);
}

/** Applies a change heard on the bus, traced on `CHANNELS.busReceive` (call only when it has subscribers). */
export function tracedReceive(event: BusReceiveEvent, apply: () => void): void {
  busReceiveChannel.traceSync(() => (event.runIn ? event.runIn(apply) : apply()), event);
}
