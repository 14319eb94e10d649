import {
  type CallHandler,
  type ExecutionContext,
  Injectable,
  type NestInterceptor,
  StreamableFile,
} from '@nestjs/common';
import { from, isObservable, lastValueFrom, type Observable, type ObservableInput } from 'rxjs';
import {
  CacheAsideEngine,
  type CacheOutcome,
  type CallReport,
  type CallSite,
  type Produced,
} from '../cache/cache-aside.engine.js';
import type { HttpRequestParts } from '../cache/variants.js';
import { stableKey } from '../codec/stable-key.js';
import { RawJson, type ResponseMeta } from '../codec/value.codec.js';
import { CacheInterceptorDelegate } from '../decorators/cache-interceptor.delegate.js';
import { getCachePlan, urlCachePlan } from '../decorators/cache-metadata.accessor.js';
import { SERVE_DECORATED, SERVE_ROUTE } from '../memcached.constants.js';
import { expressEtagFunction, interceptorsOf, takesResponseObject } from '../nest/nest-internals.js';
import type { CacheableOptions, CachePlan } from '../interfaces/cache-decorator-options.interface.js';
import { cacheChannel, traceAround } from '../tracing/channels.js';
import {
  canonicalUrl,
  credentialIn,
  type HttpRequestLike,
  requestHeader,
  resourceKeyOfCanonical,
  responseNotStorable,
  varyNames,
} from './http-cache-rules.js';

/** Requests a bound `CacheInterceptor` serves: a second one (global and controller-level) leaves them alone. */
const servedRequests = new WeakSet<object>();

/**
 * Serves `@Cacheable`, `@CacheEvict` and `@CachePut` on controller routes (HTTP and
 * microservice handlers) through the cache-aside engine. The decorators attach it; to change its
 * protected hooks, subclass it and give the subclass to the module (`interceptor` extra). On
 * Express, the stock interceptor's rules serve a cached route from its route handler, without
 * Nest's interceptor chain; a subclass always runs in the chain.
 *
 * HTTP, as a shared cache should: only GET and HEAD are read from the cache; only 2xx responses
 * without `Cache-Control: private | no-store | no-cache`, `Vary: *` or `Set-Cookie` are stored;
 * a request with a credential header or a cookie bypasses the cache unless the route puts the
 * caller in the key (`principal`), declares the response the same for everyone (`public`), or
 * lists the cookies that do not matter (`ignoreCookies`). The key is the route's path; its query
 * string, the principal and the values of the response's `Vary` headers select a variant of it,
 * and evicting the path evicts every variant. `X-Cache` says HIT, MISS, STALE or BYPASS.
 *
 * @example
 * @Injectable()
 * export class TenantCacheInterceptor extends CacheInterceptor {
 *   protected override isRequestCacheable(context: ExecutionContext) {
 *     return super.isRequestCacheable(context) && !context.switchToHttp().getRequest().query.preview;
 *   }
 * }
 * MemcachedModule.forRoot({ isGlobal: true, interceptor: TenantCacheInterceptor })
 */
@Injectable()
export class CacheInterceptor implements NestInterceptor {
  private readonly innermostRoutes = new WeakMap<Function, boolean>();

  constructor(protected readonly engine: CacheAsideEngine) {}

  /**
   * Bound by the app (`APP_INTERCEPTOR`, `@UseInterceptors(CacheInterceptor)`), as with
   * `@nestjs/cache-manager`: caches the GET and HEAD routes of its scope by URL, with the module's
   * TTL (or the class-level `@Cacheable`'s namespace and TTL), under the same HTTP rules as a
   * `@Cacheable()` route. A route with its own cache decorators is left to them, so it is served
   * once, by its own options; a request another cache interceptor already serves is left alone.
   */
  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (context.getType<string>() !== 'http') return next.handle();
    const classRef = context.getClass();
    const handler = context.getHandler();
    if (getCachePlan(classRef, handler) !== null || !this.isRequestCacheable(context)) return next.handle();
    const request = requestOf(context) as object;
    const plan = urlCachePlan(classRef, handler);
    if (plan === null || servedRequests.has(request)) return next.handle();
    servedRequests.add(request);
    // a hit is parsed: the route's own interceptors run inside this one, the app's may run outside
    return from(this.serveHttp(context, plan, () => next.handle(), false) as ObservableInput<unknown>);
  }

  /**
   * What the cache decorators' delegate calls for their routes: the route's own plan, on HTTP
   * and microservice handlers.
   */
  [SERVE_DECORATED](context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const type = context.getType<string>();
    if (type !== 'http' && type !== 'rpc') return next.handle();
    const handler = context.getHandler();
    const plan = getCachePlan(context.getClass(), handler);
    if (!plan) return next.handle();
    if (type === 'rpc') {
      const data = context.switchToRpc().getData();
      const site: CallSite = { keyArgs: [context], defaultKey: () => `${handler.name}:${stableKey(data)}` };
      return from(this.engine.execute(plan, site, async () => ({ value: await settle(next.handle()) })));
    }
    return from(
      this.serveHttp(context, plan, () => next.handle(), this.isInnermost(context)) as ObservableInput<unknown>,
    );
  }

  /**
   * What a route served from its handler calls (nest/route-handlers.ts): the same rules as
   * `intercept`, for an HTTP call without an interceptor chain around it.
   */
  [SERVE_ROUTE](context: ExecutionContext, plan: CachePlan, call: () => unknown, innermost: boolean): unknown {
    return this.serveHttp(context, plan, call, innermost);
  }

  /** Whether this request may be answered from, and stored in, the shared cache. */
  protected isRequestCacheable(context: ExecutionContext): boolean {
    const method = requestOf(context).method;
    return method === 'GET' || method === 'HEAD';
  }

  /**
   * Why this request must not share a cached response (a credential header, a cookie that is not
   * ignored), or undefined. Not consulted for routes with a `principal` or `public: true`.
   */
  protected credentialsOf(request: HttpRequestLike, options: CacheableOptions): string | undefined {
    return credentialIn(request, this.engine.httpPolicy, options.ignoreCookies);
  }

  protected setCacheHeader(response: unknown, outcome: CacheOutcome): void {
    const res = response as HeaderTarget & { headersSent?: boolean; sent?: boolean };
    if (res.headersSent || res.sent) return;
    setHeader(res, 'X-Cache', outcome);
  }

  /**
   * A cached JSON body goes out as the stored text: no parse, no re-serialisation. Under Express,
   * a near-cache entry's ETag (the one Express would compute for that text) is computed once.
   */
  protected sendRawJson(response: unknown, value: RawJson): string {
    const res = response as HeaderTarget;
    if (res.getHeader?.('content-type') === undefined)
      setHeader(res, 'Content-Type', 'application/json; charset=utf-8');
    const etag = expressEtag(res, value);
    if (etag !== undefined) setHeader(res, 'ETag', etag);
    return value.json;
  }

  /**
   * One HTTP call under its plan. `call` runs the handler: its result is returned as it is when
   * the plan's node is known down, else settled (an Observable's last value) inside the engine.
   * A JSON hit is returned as its stored text only when `innermost` (no interceptor of the app's
   * runs around this one to see it), else parsed, as a miss returns the handler's value.
   */
  private serveHttp(context: ExecutionContext, plan: CachePlan, call: () => unknown, innermost: boolean): unknown {
    const request = requestOf(context);
    const response = responseOf(context) as HttpResponseLike;
    const options = plan.cacheable;
    const readable = this.isRequestCacheable(context);
    const site = new HttpCall(context, request, options, readable);
    if (options && readable) site.bypass = this.bypassReason(context, options, site.principal);
    if (options && readable && this.engine.skipsDownCache(plan, site)) {
      // its node is known down and no near cache could answer: the handler's own result, with
      // nothing around it (a load of the engine would not be shared either: see Flights); a tracer
      // still sees the call, settled as every other cached route's result is
      this.setCacheHeader(response, 'MISS');
      if (!cacheChannel.hasSubscribers) return call();
      return traceAround(
        () => this.engine.namespaceOf(plan, options),
        async () => settle(call()),
        'MISS',
      );
    }
    if (options && !readable) this.setCacheHeader(response, 'BYPASS');
    const report: CallReport = {};
    const produce = async (keep: boolean): Promise<Produced<unknown>> => {
      const value = await settle(call());
      const storable = !(value instanceof StreamableFile) && storableResponse(response);
      return { value, storable, meta: storable && keep ? responseMeta(response, request) : undefined };
    };
    const served =
      readable || !options
        ? this.engine.execute(plan, site, produce, report)
        : traceAround(
            () => this.engine.namespaceOf(plan, options),
            () => this.engine.execute({ ...plan, cacheable: undefined }, site, produce, report),
          );
    return served.then((value) => {
      if (report.outcome !== undefined) this.setCacheHeader(response, report.outcome);
      if (report.ageSeconds !== undefined) setHeader(response, 'Age', String(report.ageSeconds));
      // a hit says what it varies on, as the response it was stored from did
      const vary = report.meta?.vary;
      if (vary && vary.length > 0 && response.getHeader?.('vary') === undefined)
        setHeader(response, 'Vary', vary.map(([name]) => name).join(', '));
      if (!(value instanceof RawJson)) return value;
      return innermost ? this.sendRawJson(response, value) : JSON.parse(value.json);
    });
  }

  /** Whether no interceptor runs around this one for the route (read once per route). */
  private isInnermost(context: ExecutionContext): boolean {
    const handler = context.getHandler();
    let innermost = this.innermostRoutes.get(handler);
    if (innermost === undefined) {
      innermost = !hasOuterInterceptors(context.getClass(), handler, globalInterceptorsOf(this));
      this.innermostRoutes.set(handler, innermost);
    }
    return innermost;
  }

  /** Why a readable request must not use the shared cache (a `@Res()` handler, credentials), or undefined. */
  private bypassReason(context: ExecutionContext, options: CacheableOptions, principal?: string): string | undefined {
    if (usesResponseObject(context)) return 'response-object';
    // marked before the handler runs (`@Header('Cache-Control', 'no-store')`, a middleware): it could
    // never be stored, so an entry stored before the mark must not answer it either
    const response = responseOf(context) as HeaderTarget;
    const marked = responseNotStorable((name) => response.getHeader?.(name));
    if (marked !== undefined) return `response not storable (${marked})`;
    if (options.public === true || principal !== undefined) return undefined;
    const credential = this.credentialsOf(requestOf(context), options);
    // a route with a principal function that found no caller still must not share a caller's response
    return credential === undefined ? undefined : `credentials (${credential})`;
  }
}

const appGlobalInterceptors = new WeakMap<object, boolean>();

/**
 * Records whether the app of this interceptor (one per app) has global interceptors, read from
 * Nest before it registers the routes. Unknown counts as yes: hits are then parsed.
 */
export function noteGlobalInterceptors(interceptor: object, present: boolean): void {
  appGlobalInterceptors.set(interceptor, present);
}

/** What `noteGlobalInterceptors` recorded for this interceptor's app (yes when nothing was). */
export function globalInterceptorsOf(interceptor: object): boolean {
  return appGlobalInterceptors.get(interceptor) ?? true;
}

/**
 * Whether an interceptor runs around the cache for a route, and would see a hit's value: the
 * app's global ones, the controller's, and the route's own listed before the cache's delegate
 * (all of them when the route has none: a route served from its handler).
 */
export function hasOuterInterceptors(classRef: Function, handler: Function, globals: boolean): boolean {
  if (globals) return true;
  if (interceptorsOf(classRef).some((i) => !isCacheInterceptor(i))) return true;
  const ofRoute = interceptorsOf(handler);
  const delegate = ofRoute.indexOf(CacheInterceptorDelegate);
  return ofRoute.slice(0, delegate === -1 ? ofRoute.length : delegate).some((i) => !isCacheInterceptor(i));
}

/**
 * A `CacheInterceptor` (its class or an instance) bound by the app: it leaves routes with cache
 * decorators to them, so it never sees their values.
 */
export function isCacheInterceptor(interceptor: unknown): boolean {
  return (
    interceptor instanceof CacheInterceptor ||
    (typeof interceptor === 'function' && interceptor.prototype instanceof CacheInterceptor) ||
    interceptor === CacheInterceptor
  );
}

/** A handler's result as a value: an Observable's last emission, a Promise's resolution. */
function settle(result: unknown): unknown {
  return isObservable(result) ? lastValueFrom(result, { defaultValue: undefined }) : result;
}

type HeaderTarget = {
  header?: (k: string, v: string) => void;
  setHeader?: (k: string, v: string) => void;
  getHeader?: (k: string) => unknown;
};

type HttpResponseLike = HeaderTarget & { statusCode?: number };

/** One HTTP request as the engine sees it: its keys, and what selects its response among a key's variants. */
class HttpCall implements CallSite, HttpRequestParts {
  readonly http: HttpRequestParts | undefined;
  readonly principal: string | undefined;
  readonly path: string | undefined;
  readonly query: string | undefined;
  bypass: string | undefined;
  private readonly canonicalPath: string;

  constructor(
    private readonly context: ExecutionContext,
    private readonly request: HttpRequestLike,
    options: CacheableOptions | undefined,
    readable: boolean,
  ) {
    const url = canonicalUrl(request.originalUrl ?? request.url ?? '/');
    this.canonicalPath = url.path;
    const defaultKeyed = options?.key === undefined;
    this.path = defaultKeyed ? url.path : undefined;
    this.query = defaultKeyed ? url.query : undefined;
    if (options?.principal && readable) {
      const caller = options.principal(request, context);
      this.principal = caller === undefined || caller === null || caller === '' ? undefined : String(caller);
    }
    this.http = readable && options !== undefined ? this : undefined;
  }

  /** What key functions receive: the ExecutionContext (built when one asks). */
  get keyArgs(): unknown[] {
    return [this.context];
  }

  defaultKey(): string {
    return resourceKeyOfCanonical(this.canonicalPath);
  }

  defaultEvictKey(): string {
    return resourceKeyOfCanonical(this.canonicalPath);
  }

  header(name: string): string {
    return requestHeader(this.request, name);
  }
}

/** A 2xx response a shared cache may keep. */
function storableResponse(response: HttpResponseLike): boolean {
  const status = response.statusCode ?? 200;
  return status >= 200 && status < 300 && responseNotStorable((name) => response.getHeader?.(name)) === undefined;
}

/** The response's `Vary` names with the request's values for them. */
function responseMeta(response: HttpResponseLike, request: HttpRequestLike): ResponseMeta | undefined {
  const names = varyNames(response.getHeader?.('vary'));
  return names === '*' || names.length === 0
    ? undefined
    : { vary: names.map((name) => [name, requestHeader(request, name)]) };
}

/**
 * Sets a response header: Node's `setHeader` where there is one (Express, plain Node), else the
 * adapter's `header` (a Fastify reply).
 */
function setHeader(res: HeaderTarget, name: string, value: string): void {
  if (typeof res.setHeader === 'function') res.setHeader(name, value);
  else res.header?.(name, value);
}

/** The HTTP request and response (`switchToHttp()` builds three closures per call; these do not). */
function requestOf(context: ExecutionContext): HttpRequestLike {
  return context.getArgByIndex(0);
}

function responseOf(context: ExecutionContext): unknown {
  return context.getArgByIndex(1);
}

type EtagFn = (body: string, encoding: string) => string | undefined;

/**
 * What Express's `res.send` would set as ETag for a shared body (the app's compiled ETag function, so
 * `etag: false` or a custom function is respected), kept with the body: a near-cache hit serves
 * the same `RawJson` again and again, and Express does not hash a body whose ETag is set.
 * Undefined (Express computes it, if at all) for a body read once, a response that is not
 * Express's or has an ETag already, or an app that computes none.
 */
function expressEtag(res: HeaderTarget, value: RawJson): string | undefined {
  if (!value.shared) return undefined;
  const fn = expressEtagFunction(res);
  if (typeof fn !== 'function' || res.getHeader?.('etag') !== undefined) return undefined;
  let derived = sharedEtags.get(value);
  if (derived?.by !== fn) {
    derived = { by: fn, etag: (fn as EtagFn)(value.json, 'utf8') || undefined };
    sharedEtags.set(value, derived);
  }
  return derived.etag;
}

/** The ETag computed for a shared body, and the app's function that computed it. */
const sharedEtags = new WeakMap<RawJson, { by: unknown; etag: string | undefined }>();

const responseObjectHandlers = new WeakMap<Function, boolean>();

/** Whether the handler takes `@Res()` or `@Next()` (read once per handler). */
function usesResponseObject(context: ExecutionContext): boolean {
  const handler = context.getHandler();
  let uses = responseObjectHandlers.get(handler);
  if (uses === undefined) {
    uses = takesResponseObject(context.getClass(), handler.name);
    responseObjectHandlers.set(handler, uses);
  }
  return uses;
}
