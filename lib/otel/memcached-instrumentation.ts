import { createHash } from 'node:crypto';
import type { TracingChannel } from 'node:diagnostics_channel';
import {
  type Attributes,
  type Context,
  context,
  diag,
  type Histogram,
  isSpanContextValid,
  type Link,
  type MeterProvider,
  metrics,
  ROOT_CONTEXT,
  type Span,
  type SpanContext,
  SpanKind,
  SpanStatusCode,
  trace,
  type TracerProvider,
  type Tracer,
} from '@opentelemetry/api';
import {
  type BusPublishEvent,
  type BusReceiveEvent,
  busPublishChannel,
  busReceiveChannel,
  type CacheCallEvent,
  cacheChannel,
  type CommandEvent,
  commandChannel,
  type LogEvent,
  logChannel,
  TRACEPARENT,
} from '../tracing/channels.js';
import { MemcachedConfigError } from '../config/memcached-options.js';
import { invalidTracingOption, tracingNeedsNode } from '../memcached.messages.js';

/** Options of `MemcachedInstrumentation` (all optional). */
export interface MemcachedInstrumentationOptions {
  /**
   * Spans only inside an active trace (a request's, a job's): a cache call, a memcached command or
   * a bus change heard without one starts no trace by itself. Default `true`. Metrics are recorded either way.
   */
  requireParentSpan?: boolean;
  /**
   * Cache keys and tags on cache spans (`cache.key`, `nestjs_memcached.tags`): `false` (default;
   * they can hold user data), `'hashed'` (SHA-256, base64url: the same key gives the same value, to
   * find one key's calls; a key an attacker can guess can be confirmed), or `'raw'`.
   */
  keys?: false | 'hashed' | 'raw';
  /** OpenTelemetry's instrumentation flag: the SDK enables an instrumentation whose config is not enabled. */
  enabled?: boolean;
}

type Settings = Required<Omit<MemcachedInstrumentationOptions, 'enabled'>>;

/** The histogram boundaries the database conventions advise for `db.client.operation.duration`, seconds. */
const DURATION_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10];
const NAME = 'nestjs-memcached';
/** After `disable()`, how long the spans still open may take to end before they are let go, ms. */
const DRAIN_MS = 60_000;
/** Where the enabled instrumentation is noted, shared by every copy of the library in the process. */
const ACTIVE = Symbol.for('nestjs-memcached.otel.enabled');

/**
 * Turns the library's `diagnostics_channel` events into OpenTelemetry spans and metrics by the
 * database semantic conventions: a `CLIENT` span per memcached command (`db.system.name`
 * `memcached`, `db.operation.name`, `server.address`, `server.port`, `db.operation.batch.size`,
 * `error.type`) with the `db.client.operation.duration` histogram; an `INTERNAL` span per cached
 * call (`cache.hit`, the outcome, the namespace) whose commands are its children; and on the bus,
 * the writer's trace context carried with each change, and a span linked to it where the change is
 * applied. Shaped as an OpenTelemetry instrumentation, so the SDK's `instrumentations` list takes it.
 *
 * @example
 * // otel.ts, imported first in main.ts
 * const sdk = new NodeSDK({ instrumentations: [getNodeAutoInstrumentations(), new MemcachedInstrumentation()] });
 * sdk.start();
 */
export class MemcachedInstrumentation {
  readonly instrumentationName = NAME;
  readonly instrumentationVersion = '1';
  private options: Settings;
  private tracer: Tracer;
  private duration?: Histogram;
  private enabled = false;
  /** Subscribed to the channels' end events (kept after `disable()` until the open spans end). */
  private listening = false;
  private open = 0;
  private readonly spans = new WeakMap<object, Span>();
  /** When each command started, and the attributes its span and histogram point share. */
  private readonly started = new WeakMap<CommandEvent, { at: number; attributes: Attributes }>();

  constructor(options: MemcachedInstrumentationOptions = {}) {
    // without it the library cannot tell that anyone listens, so it would publish nothing at all
    if (typeof cacheChannel.hasSubscribers !== 'boolean')
      throw new MemcachedConfigError(tracingNeedsNode(process.versions.node));
    this.options = checked(options);
    this.tracer = trace.getTracer(NAME);
  }

  setTracerProvider(provider: TracerProvider): void {
    this.tracer = provider.getTracer(NAME);
  }

  setMeterProvider(provider: MeterProvider): void {
    this.duration = this.histogram(provider);
  }

  setConfig(options: MemcachedInstrumentationOptions = {}): void {
    this.options = checked(options);
  }

  /** The options, and `enabled` (the SDK enables an instrumentation whose config says it is not). */
  getConfig(): MemcachedInstrumentationOptions & { enabled: boolean } {
    return { ...this.options, enabled: this.enabled };
  }

  /**
   * Subscribes to the library's channels (idempotent). One instrumentation traces a process: while
   * another is enabled (two copies set up), this one stays off and says so, rather than doubling
   * every span.
   */
  enable(): void {
    if (this.enabled) return;
    const holder = globalThis as { [ACTIVE]?: MemcachedInstrumentation };
    if (holder[ACTIVE] !== undefined && holder[ACTIVE] !== this) {
      process.emitWarning('Another MemcachedInstrumentation is enabled in this process; this one stays off', {
        code: 'NESTJS_MEMCACHED_TRACING_TWICE',
      });
      return;
    }
    holder[ACTIVE] = this;
    this.enabled = true;
    // the global meter provider as it is now (an SDK started before this), unless one was given
    this.duration ??= this.histogram(metrics.getMeterProvider());
    const { call, command, receive, publish, log } = this.subscribed;
    if (!this.listening) {
      this.listening = true;
      for (const [channel, name, listener] of this.endListeners()) channel[name].subscribe(listener);
    }
    cacheChannel.start.subscribe(call.start);
    commandChannel.start.subscribe(command.start);
    busReceiveChannel.start.subscribe(receive.start);
    busPublishChannel.subscribe(publish);
    logChannel.subscribe(log);
  }

  /**
   * Unsubscribes: nothing new is traced, and the spans still open end when their work does (then
   * the library publishes nothing again unless someone else listens).
   */
  disable(): void {
    if (!this.enabled) return;
    this.enabled = false;
    const holder = globalThis as { [ACTIVE]?: MemcachedInstrumentation };
    if (holder[ACTIVE] === this) delete holder[ACTIVE];
    const { call, command, receive, publish, log } = this.subscribed;
    cacheChannel.start.unsubscribe(call.start);
    commandChannel.start.unsubscribe(command.start);
    busReceiveChannel.start.unsubscribe(receive.start);
    busPublishChannel.unsubscribe(publish);
    logChannel.unsubscribe(log);
    this.settle();
    // a call that never ends (a loader that hangs) must not keep the library publishing for good
    if (this.listening) setTimeout(() => this.settle(true), DRAIN_MS).unref();
  }

  /** Once disabled and every open span has ended (or the wait for them is over): the end handlers go too. */
  private settle(anyway = false): void {
    if (this.enabled || (this.open > 0 && !anyway) || !this.listening) return;
    this.open = 0;
    this.listening = false;
    for (const [channel, name, listener] of this.endListeners()) channel[name].unsubscribe(listener);
  }

  /** Every handler but `start`, with the channel it listens on. */
  private endListeners(): EndListener[] {
    const { call, command, receive } = this.subscribed;
    const pairs: Array<[AnyTracingChannel, Record<string, Listener>]> = [
      [cacheChannel as AnyTracingChannel, call],
      [commandChannel as AnyTracingChannel, command],
      [busReceiveChannel as AnyTracingChannel, receive],
    ];
    return pairs.flatMap(([channel, handlers]) =>
      Object.entries(handlers)
        .filter(([name]) => name !== 'start')
        .map(([name, listener]): EndListener => [channel, name as EndListener[1], listener]),
    );
  }

  /** A span begun for `event` (counted until it ends). */
  private begun(event: object, span: Span): void {
    this.spans.set(event, span);
    this.open++;
  }

  /** Ends `event`'s span, if it has one. */
  private finish(event: object): void {
    const span = this.spans.get(event);
    if (span === undefined) return;
    this.spans.delete(event);
    this.open--;
    // not while the channel is publishing to us (older Node 20 releases skip a listener then)
    if (!this.enabled && this.open === 0) queueMicrotask(() => this.settle());
    span.end();
  }

  private histogram(provider: MeterProvider): Histogram {
    return provider.getMeter(NAME).createHistogram('db.client.operation.duration', {
      description: 'Duration of memcached commands.',
      unit: 's',
      advice: { explicitBucketBoundaries: DURATION_BUCKETS },
    });
  }

  /** A cached call starts: its span, made the active one while the call runs. */
  private readonly startCall = (event: CacheCallEvent): void => {
    const parent = context.active();
    if (!this.traces(parent)) return;
    const attributes: Attributes = { 'nestjs_memcached.namespace': event.namespace ?? '' };
    const keys = this.options.keys;
    if (keys !== false) {
      attributes['cache.key'] = keys === 'raw' ? event.key : hashed(event.key);
      if (event.tags)
        attributes['nestjs_memcached.tags'] = event.tags.map((tag) => (keys === 'raw' ? tag : hashed(tag)));
    }
    const span = this.tracer.startSpan('cache.get', { kind: SpanKind.INTERNAL, attributes }, parent);
    this.begun(event, span);
    const active = trace.setSpan(parent, span);
    event.runIn = (work) => context.with(active, work);
  };

  private readonly callHandlers = {
    start: this.startCall,
    asyncEnd: (event: CacheCallEvent) => {
      const span = this.spans.get(event);
      if (span === undefined) return;
      if (event.outcome !== undefined) {
        span.setAttribute('cache.hit', event.outcome === 'HIT' || event.outcome === 'STALE');
        span.setAttribute('nestjs_memcached.outcome', event.outcome);
      }
      if (event.near) span.setAttribute('nestjs_memcached.near', true);
      if (event.graced) span.setAttribute('nestjs_memcached.graced', true);
      if (event.leaseWaited) span.setAttribute('nestjs_memcached.lease_waited', true);
      this.finish(event);
    },
    error: (event: CacheCallEvent) => {
      // only the loader's own error reaches a cached call's caller
      const span = this.spans.get(event);
      if (span !== undefined) failed(span, event.error);
    },
  };

  private readonly commandHandlers = {
    start: (event: CommandEvent) => {
      const shared = commandAttributes(event);
      this.started.set(event, { at: performance.now(), attributes: shared });
      const parent = context.active();
      if (!this.traces(parent)) return;
      const attributes: Attributes = {
        ...shared,
        'nestjs_memcached.operation': event.operation,
        'nestjs_memcached.request.bytes': event.bytes,
      };
      // the conventions set the batch size only for batches of two or more
      if (event.batchSize !== undefined && event.batchSize > 1) attributes['db.operation.batch.size'] = event.batchSize;
      const span = this.tracer.startSpan(
        `${attributes['db.operation.name']} ${event.node}`,
        { kind: SpanKind.CLIENT, attributes },
        parent,
      );
      this.begun(event, span);
    },
    asyncEnd: (event: CommandEvent) => {
      // memcached answered with a failure status (the library may still recover from it)
      const refused = event.error === undefined && event.status !== undefined && !OUTCOME_STATUSES.has(event.status);
      const span = this.spans.get(event);
      if (span !== undefined && event.status !== undefined)
        span.setAttribute('db.response.status_code', statusCode(event.status));
      if (span !== undefined && refused) failed(span, { status: event.status });
      const started = this.started.get(event);
      if (started !== undefined) {
        const failure = event.error !== undefined || refused;
        const attributes = failure
          ? { ...started.attributes, ...errorAttributes(event.error ?? event) }
          : started.attributes;
        this.duration?.record((performance.now() - started.at) / 1000, attributes);
      }
      this.finish(event);
    },
    error: (event: CommandEvent) => {
      const span = this.spans.get(event);
      if (span !== undefined) failed(span, event.error);
    },
  };

  /** A change about to be published carries the active span's context. */
  private readonly onPublish = (event: BusPublishEvent): void => {
    const span = trace.getSpan(context.active());
    if (span !== undefined && isSpanContextValid(span.spanContext()))
      event.traceparent = traceparentOf(span.spanContext());
  };

  /** A change heard: a new trace linked to the writer's (with `requireParentSpan`, only if the writer was traced). */
  private readonly startReceive = (event: BusReceiveEvent): void => {
    const writer = event.traceparent === undefined ? undefined : spanContextOf(event.traceparent);
    if (writer === undefined && this.options.requireParentSpan) return;
    const links: Link[] = writer === undefined ? [] : [{ context: writer }];
    const span = this.tracer.startSpan(
      `invalidate ${event.kind}`,
      {
        kind: SpanKind.CONSUMER,
        links,
        root: true,
        attributes: {
          'nestjs_memcached.invalidation.kind': event.kind,
          'nestjs_memcached.invalidation.changes': event.changes,
          'nestjs_memcached.invalidation.derived': event.derived,
        },
      },
      ROOT_CONTEXT,
    );
    this.begun(event, span);
    const active = trace.setSpan(ROOT_CONTEXT, span);
    event.runIn = (work) => context.with(active, work);
  };

  private readonly receiveHandlers = {
    start: this.startReceive,
    end: (event: BusReceiveEvent) => this.finish(event),
    error: (event: BusReceiveEvent) => {
      const span = this.spans.get(event);
      if (span !== undefined) failed(span, event.error);
    },
  };

  /** A warning logged inside a trace names it. */
  private readonly onLog = (event: LogEvent): void => {
    const span = trace.getSpan(context.active());
    if (span !== undefined && isSpanContextValid(span.spanContext())) event.traceId = span.spanContext().traceId;
  };

  /** What is subscribed: every handler guarded, since a subscriber's throw would be an uncaught exception. */
  private readonly subscribed = {
    call: guard(this.callHandlers),
    command: guard(this.commandHandlers),
    receive: guard(this.receiveHandlers),
    publish: guard({ on: this.onPublish }).on,
    log: guard({ on: this.onLog }).on,
  };

  /** Whether work in `parent` gets spans: always, or only inside a trace (`requireParentSpan`). */
  private traces(parent: Context): boolean {
    if (!this.options.requireParentSpan) return true;
    const span = trace.getSpan(parent);
    return span !== undefined && isSpanContextValid(span.spanContext());
  }
}

type Listener = (message: unknown) => void;
/** A tracing channel's events after `start`, and one listener on one of them. */
type AnyTracingChannel = TracingChannel<unknown, object>;
type EndListener = [AnyTracingChannel, 'end' | 'asyncEnd' | 'error', Listener];

/** The same handlers, each catching what it throws (reported to OpenTelemetry's diagnostic logger). */
function guard<T extends object>(handlers: T): Record<keyof T, Listener> {
  const guarded: Record<string, Listener> = {};
  for (const [name, handler] of Object.entries(handlers) as Array<[string, (event: never) => void]>) {
    guarded[name] = (event: unknown) => {
      try {
        handler(event as never);
      } catch (error) {
        diag.error(`nestjs-memcached tracing: ${name} failed`, error);
      }
    };
  }
  return guarded as Record<keyof T, Listener>;
}

function checked(options: MemcachedInstrumentationOptions): Settings {
  const { requireParentSpan = true, keys = false } = options;
  if (typeof requireParentSpan !== 'boolean')
    throw new MemcachedConfigError(invalidTracingOption('requireParentSpan', requireParentSpan, 'true or false'));
  if (keys !== false && keys !== 'hashed' && keys !== 'raw')
    throw new MemcachedConfigError(invalidTracingOption('keys', keys, "false, 'hashed' or 'raw'"));
  return { requireParentSpan, keys };
}

function hashed(text: string): string {
  return createHash('sha256').update(text).digest('base64url');
}

/** `host:port` (or `[v6]:port`, or a socket path) as `server.address` and `server.port`. */
function splitNode(node: string): [string, number | undefined] {
  const colon = node.lastIndexOf(':');
  const port = colon < 0 ? NaN : Number(node.slice(colon + 1));
  if (!Number.isInteger(port) || port <= 0) return [node, undefined];
  const host = node.slice(0, colon);
  return [host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host, port];
}

/**
 * What the database conventions name for a command: `db.operation.name` (`BATCH get` for a
 * multi-get of two or more keys: separate requests in one write), the node.
 */
function commandAttributes(event: CommandEvent): Attributes {
  const [address, port] = splitNode(event.node);
  const batch = event.batchSize !== undefined && event.batchSize > 1;
  const attributes: Attributes = {
    'db.system.name': 'memcached',
    'db.operation.name': batch ? `BATCH ${event.command}` : event.command,
    'server.address': address,
  };
  if (port !== undefined) attributes['server.port'] = port;
  return attributes;
}

/**
 * `error.type` and `db.response.status_code` of a failure: memcached's status code when it answered
 * with one (as the conventions prefer), else a `MemcachedError`'s code (`timeout`, `connection`,
 * ...), else the error's class, else `_OTHER`.
 */
function errorAttributes(error: unknown): Attributes {
  const status = (error as { status?: unknown } | undefined)?.status;
  if (typeof status === 'number') {
    const code = statusCode(status);
    return { 'error.type': code, 'db.response.status_code': code };
  }
  const code = (error as { code?: unknown } | undefined)?.code;
  if (error instanceof Error && error.name === 'MemcachedError' && typeof code === 'string')
    return { 'error.type': code.toLowerCase() };
  const name = error instanceof Error ? error.constructor?.name : undefined;
  return { 'error.type': typeof name === 'string' && name !== '' ? name : '_OTHER' };
}

/**
 * Statuses that are answers, not failures: not found, exists, not stored (a conditional write that
 * lost), and SASL's "continue". Anything else memcached answers is a failure of that command.
 */
const OUTCOME_STATUSES = new Set([0x01, 0x02, 0x05, 0x21]);

/** A binary-protocol status as the conventions' `db.response.status_code`: `0x0081`. */
function statusCode(status: number): string {
  return `0x${status.toString(16).padStart(4, '0')}`;
}

function failed(span: Span, error: unknown): void {
  span.setAttributes(errorAttributes(error));
  if (error instanceof Error) span.recordException(error);
  span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : undefined });
}

function traceparentOf(span: SpanContext): string {
  return `00-${span.traceId}-${span.spanId}-${(span.traceFlags & 0xff).toString(16).padStart(2, '0')}`;
}

function spanContextOf(traceparent: string): SpanContext | undefined {
  if (!TRACEPARENT.test(traceparent)) return undefined;
  const [, traceId, spanId, flags] = traceparent.split('-');
  return { traceId, spanId, traceFlags: parseInt(flags, 16), isRemote: true };
}

/**
 * Traces the library with the OpenTelemetry SDK already started in this process (its global
 * tracer and meter providers): the one line a Nest app adds after `sdk.start()`.
 *
 * @example
 * sdk.start();
 * enableMemcachedTracing();
 */
export function enableMemcachedTracing(options?: MemcachedInstrumentationOptions): MemcachedInstrumentation {
  const instrumentation = new MemcachedInstrumentation(options);
  instrumentation.enable();
  return instrumentation;
}
