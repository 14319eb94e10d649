import {
  type CallHandler,
  type ExecutionContext,
  Injectable,
  type NestInterceptor,
  StreamableFile,
} from '@nestjs/common';
import { from, lastValueFrom, type Observable } from 'rxjs';
import { CacheAsideEngine, type CacheOutcome, type CallHooks, type CallSite } from '../engine/cache-aside.engine.js';
import { type CachePlan, getCachePlan } from '../engine/cache-metadata.accessor.js';
import { stableKey } from '../engine/stable-key.js';
import { RawJson } from '../codec/value.codec.js';

// @nestjs/common's ROUTE_ARGS_METADATA and the RESPONSE / NEXT route param types
const ROUTE_ARGS_METADATA = '__routeArguments__';
const RESPONSE_PARAM_TYPES = new Set(['1', '2']);
const SESSION_COOKIE = /(?:^|;)\s*[^=;]*(?:sess|sid|token|auth|jwt|login)[^=;]*=/i;

/**
 * Serves `@Cacheable`, `@CacheEvict` and `@CachePut` on controller routes (HTTP and
 * microservice handlers) through the cache-aside engine. The decorators attach it; subclass it to
 * change the protected hooks.
 *
 * HTTP: only GET and HEAD are read from the cache, only 2xx results are stored, the key defaults
 * to the route path plus the sorted query string, `X-Cache` says HIT, MISS, STALE or BYPASS.
 * `StreamableFile` results and `@Res()` handlers bypass the cache, and so does a request with an
 * `Authorization` header or a session cookie unless the decorator's `principal` puts the caller
 * in the key.
 */
@Injectable()
export class CacheInterceptor implements NestInterceptor {
  constructor(protected readonly engine: CacheAsideEngine) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const type = context.getType<string>();
    if (type !== 'http' && type !== 'rpc') return next.handle();
    const handler = context.getHandler();
    const plan = getCachePlan(context.getClass(), handler);
    if (!plan) return next.handle();
    if (type === 'http' && this.engine.skipsDownCache(plan, () => this.isRequestCacheable(context) && this.cacheBypass(context, plan) === undefined)) {
      // its node is known down: the handler's own Observable, with nothing around it
      this.setCacheHeader(responseOf(context), 'MISS');
      return next.handle();
    }
    const load = () => lastValueFrom(next.handle(), { defaultValue: undefined });
    if (type === 'rpc') {
      const data = context.switchToRpc().getData();
      const site: CallSite = { keyArgs: [context], defaultKey: () => `${handler.name}:${stableKey(data)}` };
      return from(this.engine.execute(plan, site, load));
    }
    return from(this.executeHttp(context, plan, load));
  }

  /** Whether this request may be answered from, and stored in, the shared cache. */
  protected isRequestCacheable(context: ExecutionContext): boolean {
    const method = requestOf(context).method;
    return method === 'GET' || method === 'HEAD';
  }

  /** Whether the request carries credentials, so a shared entry must not answer it. */
  protected hasCredentials(request: { headers?: Record<string, string | string[] | undefined> }): boolean {
    const headers = request.headers ?? {};
    if (headers.authorization) return true;
    const cookie = headers.cookie;
    return typeof cookie === 'string' && SESSION_COOKIE.test(cookie);
  }

  /** The default key: the route path plus the query string with its parameters sorted. */
  protected trackBy(request: { originalUrl?: string; url?: string }): string {
    const url = request.originalUrl ?? request.url ?? '/';
    const mark = url.indexOf('?');
    if (mark < 0) return url;
    const params = [...new URLSearchParams(url.slice(mark + 1))].sort(([a, x], [b, y]) =>
      a < b ? -1 : a > b ? 1 : x < y ? -1 : x > y ? 1 : 0,
    );
    const query = new URLSearchParams(params).toString();
    return query === '' ? url.slice(0, mark) : `${url.slice(0, mark)}?${query}`;
  }

  protected setCacheHeader(response: unknown, outcome: CacheOutcome): void {
    const res = response as HeaderTarget & { headersSent?: boolean; sent?: boolean };
    if (res.headersSent || res.sent) return;
    setHeader(res, 'X-Cache', outcome);
  }

  private executeHttp(context: ExecutionContext, plan: CachePlan, load: () => Promise<unknown>): Promise<unknown> {
    const request = requestOf(context);
    const response = responseOf(context);
    const readable = this.isRequestCacheable(context);
    const effective = readable ? plan : { ...plan, cacheable: undefined };
    let bypass: string | undefined;
    let keySuffix: string | undefined;
    if (plan.cacheable && readable) {
      const principal = plan.cacheable.principal?.(request, context);
      if (principal !== undefined && principal !== '') keySuffix = `~principal=${principal}`;
      bypass = this.cacheBypass(context, plan, keySuffix !== undefined);
    }
    const path = () => this.trackBy(request).split('?', 1)[0];
    const site: CallSite = {
      keyArgs: [context],
      defaultKey: () => this.trackBy(request),
      defaultEvictKey: path,
      keySuffix,
      bypass,
    };
    let unstorable = false;
    const hooks: CallHooks = {
      storable: (value) => {
        const status = (response as { statusCode?: number }).statusCode ?? 200;
        unstorable = value instanceof StreamableFile || status < 200 || status >= 300;
        return !unstorable;
      },
      onOutcome: (outcome) => this.setCacheHeader(response, unstorable && outcome === 'MISS' ? 'BYPASS' : outcome),
    };
    if (plan.cacheable && !readable) this.setCacheHeader(response, 'BYPASS');
    hooks.rawJson = readable && plan.cacheable !== undefined;
    return this.engine.execute(effective, site, load, hooks).then((value) => (value instanceof RawJson ? this.sendRawJson(response, value) : value));
  }

  /**
   * Why a readable request must not use the shared cache (`@Res()` handler, credentials without
   * a `principal` in the key), or undefined.
   */
  private cacheBypass(context: ExecutionContext, plan: CachePlan, hasPrincipal = plan.cacheable?.principal !== undefined): string | undefined {
    if (usesResponseObject(context)) return 'response-object';
    if (!hasPrincipal && this.hasCredentials(requestOf(context))) return 'credentials';
    return undefined;
  }

  /** A cached JSON body goes out as the stored text: no parse, no re-serialisation. */
  protected sendRawJson(response: unknown, value: RawJson): string {
    const res = response as HeaderTarget & { getHeader?: (k: string) => unknown };
    if (res.getHeader?.('content-type') === undefined) setHeader(res, 'Content-Type', 'application/json; charset=utf-8');
    return value.json;
  }
}

type HeaderTarget = { header?: (k: string, v: string) => void; setHeader?: (k: string, v: string) => void };

/**
 * Sets a response header: Node's `setHeader` where there is one (Express, plain Node), else the
 * adapter's `header` (a Fastify reply).
 */
function setHeader(res: HeaderTarget, name: string, value: string): void {
  if (typeof res.setHeader === 'function') res.setHeader(name, value);
  else res.header?.(name, value);
}

/** The HTTP request and response (`switchToHttp()` builds three closures per call; these do not). */
function requestOf(context: ExecutionContext): { method?: string; headers?: Record<string, string | string[] | undefined>; originalUrl?: string; url?: string } {
  return context.getArgByIndex(0);
}

function responseOf(context: ExecutionContext): unknown {
  return context.getArgByIndex(1);
}

const responseObjectHandlers = new WeakMap<Function, boolean>();

/** Whether the handler takes `@Res()` or `@Next()` (read once per handler). */
function usesResponseObject(context: ExecutionContext): boolean {
  const handler = context.getHandler();
  let uses = responseObjectHandlers.get(handler);
  if (uses === undefined) {
    const args = Reflect.getMetadata(ROUTE_ARGS_METADATA, context.getClass(), handler.name) as Record<string, unknown> | undefined;
    uses = args !== undefined && Object.keys(args).some((key) => RESPONSE_PARAM_TYPES.has(key.split(':')[0]));
    responseObjectHandlers.set(handler, uses);
  }
  return uses;
}
