import type { ExecutionContext, Type } from '@nestjs/common';
import { IncomingMessage } from 'node:http';
import { CacheInterceptorDelegate } from '../decorators/cache-interceptor.delegate.js';
import { getCachePlan } from '../decorators/cache-metadata.accessor.js';
import type { CachePlan } from '../interfaces/cache-decorator-options.interface.js';
import {
  type CacheInterceptor,
  globalInterceptorsOf,
  hasOuterInterceptors,
  serveCachedRoute,
  takesResponseObject,
} from '../interceptors/cache.interceptor.js';
import {
  NEST_INTERCEPTORS_METADATA as INTERCEPTORS_METADATA,
  NEST_ROUTE_ARGS_METADATA as ROUTE_ARGS_METADATA,
  NEST_SSE_METADATA,
  ORIGINAL_METHOD,
  ROUTE_REQUEST_INDEX,
} from '../memcached.constants.js';

// @nestjs/common's route path key and REQUEST route param type, stable since Nest 5
const PATH_METADATA = 'path';
const REQUEST_PARAM = '0';
/** Routes whose result Nest does not send as it is (SSE, a template, a redirect) or that also answer messages. */
const KEPT_IN_CHAIN = [NEST_SSE_METADATA, '__renderTemplate__', '__redirect__', 'microservices:pattern'];

/** A controller as Nest's container holds it (an `InstanceWrapper`). */
export interface ControllerWrapper {
  metatype: unknown;
  instance: unknown;
  isDependencyTreeStatic(): boolean;
}

type Trampoline = Function & { [ORIGINAL_METHOD]?: Function; [ROUTE_REQUEST_INDEX]?: number };

/**
 * Serves a static controller's cached Express routes from their handlers, run before Nest
 * registers the app's routes: each route's method on the instance becomes a function that carries
 * the route's metadata without the cache interceptor, and receives the request as an extra
 * argument. Nest then calls it with no interceptor chain around it (unless the route has other
 * interceptors), which makes a hit cost less than a route that returns a constant object.
 *
 * Only with the stock `CacheInterceptor` (a subclass's hooks run in the chain), and only for GET
 * and friends that Nest sends as they are: `@Res()`, `@Next()`, SSE, `@Render`, `@Redirect` and
 * message-pattern handlers keep the interceptor. Guards run before the handler as before; pipes
 * now run before a hit too. Returns the number of routes served this way.
 */
export function serveRoutesFromHandlers(
  controllers: Iterable<ControllerWrapper>,
  interceptor: CacheInterceptor,
  methodNames: (proto: object) => string[],
): number {
  let served = 0;
  for (const wrapper of controllers) {
    const metatype = wrapper.metatype as Type | undefined;
    const instance = wrapper.instance as Record<string, unknown> | undefined;
    if (
      typeof metatype !== 'function' ||
      !metatype.prototype ||
      !instance ||
      typeof instance !== 'object' ||
      !wrapper.isDependencyTreeStatic()
    )
      continue;
    for (const name of methodNames(metatype.prototype)) {
      const trampoline = (metatype.prototype as Record<string, unknown>)[name] as Trampoline | undefined;
      const original = trampoline?.[ORIGINAL_METHOD];
      if (!trampoline || !original || Object.hasOwn(instance, name) || instance[name] !== trampoline) continue;
      const plan = getCachePlan(metatype, trampoline, name);
      if (!plan || !servableFromHandler(metatype, trampoline, name)) continue;
      const index = requestParamIndex(metatype, trampoline, name);
      Object.defineProperty(instance, name, {
        value: cachedRoute(trampoline, original, index, plan, metatype, interceptor),
        configurable: true,
        writable: true,
        enumerable: false,
      });
      served++;
    }
  }
  return served;
}

function servableFromHandler(metatype: Type, trampoline: Trampoline, name: string): boolean {
  if (Reflect.getMetadata(PATH_METADATA, trampoline) === undefined) return false;
  if (KEPT_IN_CHAIN.some((key) => Reflect.getMetadata(key, trampoline) !== undefined)) return false;
  return !takesResponseObject(metatype, name);
}

/**
 * Where Nest passes the request to the route: a request parameter after the handler's own ones,
 * added once to the class's route arguments (every app built later sees it; the trampoline drops it).
 */
function requestParamIndex(metatype: Type, trampoline: Trampoline, name: string): number {
  const args = (Reflect.getMetadata(ROUTE_ARGS_METADATA, metatype, name) ?? {}) as Record<string, { index: number }>;
  let index = trampoline[ROUTE_REQUEST_INDEX];
  if (index === undefined) {
    index = Object.values(args).reduce((max, arg) => Math.max(max, arg.index + 1), 0);
    Object.defineProperty(trampoline, ROUTE_REQUEST_INDEX, { value: index, configurable: true });
  }
  const key = `${REQUEST_PARAM}:${index}`;
  if (!Object.hasOwn(args, key) || !Reflect.hasOwnMetadata(ROUTE_ARGS_METADATA, metatype, name)) {
    Reflect.defineMetadata(
      ROUTE_ARGS_METADATA,
      { ...args, [key]: { index, data: undefined, pipes: [] } },
      metatype,
      name,
    );
  }
  return index;
}

/**
 * The function Nest calls for the route: the trampoline's metadata, without the cache interceptor.
 * Whether an interceptor runs around it is fixed once its metadata is (the app's global ones were
 * noted before).
 */
function cachedRoute(
  trampoline: Trampoline,
  original: Function,
  index: number,
  plan: CachePlan,
  metatype: Type,
  interceptor: CacheInterceptor,
): Function {
  let innermost = false;
  const route = function (this: unknown, ...args: unknown[]): unknown {
    const request = args[index];
    // called by code other than Nest's router: the method as it always was
    if (args.length !== index + 1 || !(request instanceof IncomingMessage)) return trampoline.apply(this, args);
    args.length = index;
    return serveCachedRoute(
      interceptor,
      new RouteContext(request, metatype, route),
      plan,
      () => original.apply(this, args),
      innermost,
    );
  };
  Object.defineProperty(route, 'name', { value: trampoline.name });
  Object.defineProperty(route, 'length', { value: trampoline.length });
  for (const key of Reflect.getOwnMetadataKeys(trampoline)) {
    let value = Reflect.getOwnMetadata(key, trampoline);
    if (key === INTERCEPTORS_METADATA) value = (value as unknown[]).filter((i) => i !== CacheInterceptorDelegate);
    Reflect.defineMetadata(key, value, route);
  }
  innermost = !hasOuterInterceptors(metatype, route, globalInterceptorsOf(interceptor));
  return route;
}

/** The ExecutionContext of an HTTP call served from the handler, for the interceptor's rules and key functions. */
class RouteContext implements ExecutionContext {
  private readonly args: [IncomingMessage, unknown, undefined];

  constructor(
    request: IncomingMessage & { res?: unknown },
    private readonly metatype: Type,
    private readonly handler: Function,
  ) {
    this.args = [request, request.res, undefined];
  }

  getClass<T = unknown>(): Type<T> {
    return this.metatype as Type<T>;
  }

  getHandler(): Function {
    return this.handler;
  }

  getArgs<T extends unknown[] = unknown[]>(): T {
    return this.args as unknown as T;
  }

  getArgByIndex<T = unknown>(index: number): T {
    return this.args[index] as T;
  }

  getType<T extends string = 'http'>(): T {
    return 'http' as T;
  }

  switchToHttp() {
    const [request, response, next] = this.args;
    return { getRequest: <T>() => request as T, getResponse: <T>() => response as T, getNext: <T>() => next as T };
  }

  switchToRpc() {
    const [data, context] = this.args;
    return { getData: <T>() => data as T, getContext: <T>() => context as T };
  }

  switchToWs() {
    const [client, data] = this.args;
    return { getClient: <T>() => client as T, getData: <T>() => data as T, getPattern: () => '' };
  }
}
