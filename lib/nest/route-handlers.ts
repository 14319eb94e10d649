import type { Type } from '@nestjs/common';
import { CacheInterceptorDelegate } from '../decorators/cache-interceptor.delegate.js';
import { getCachePlan } from '../decorators/cache-metadata.accessor.js';
import type { CachePlan } from '../interfaces/cache-decorator-options.interface.js';
import {
  type CacheInterceptor,
  globalInterceptorsOf,
  hasOuterInterceptors,
} from '../interceptors/cache.interceptor.js';
import { ORIGINAL_METHOD, ROUTE_REQUEST_INDEX, SERVE_ROUTE } from '../memcached.constants.js';
import {
  copyHandlerMetadata,
  isHttpRequest,
  isRouteSentAsIs,
  routeResponseOf,
  passRequestAt,
  RouteContext,
  routeArgumentCount,
  takesResponseObject,
} from './nest-internals.js';

/** A controller as Nest's container holds it (an `InstanceWrapper`). */
export interface ControllerWrapper {
  metatype: unknown;
  instance: unknown;
  isDependencyTreeStatic(): boolean;
}

type Trampoline = Function & { [ORIGINAL_METHOD]?: Function; [ROUTE_REQUEST_INDEX]?: number };

/**
 * Serves a static controller's cached routes (Express or Fastify) from their handlers, run before
 * Nest registers the app's routes: each route's method on the instance becomes a function that
 * carries the route's metadata without the cache interceptor, and receives the request as an
 * extra argument (on Fastify, whose routes get no way to the reply, `linkFastifyReplies` notes
 * each request's reply). Nest then calls it with no interceptor chain around it (unless the route
 * has other interceptors), which makes a hit cost less than a route that returns a constant object.
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
  return isRouteSentAsIs(trampoline) && !takesResponseObject(metatype, name);
}

/**
 * Where Nest passes the request to the route: after the handler's own arguments, asked for once
 * (on the class: every app built later passes it too, and the trampoline drops it there).
 */
function requestParamIndex(metatype: Type, trampoline: Trampoline, name: string): number {
  let index = trampoline[ROUTE_REQUEST_INDEX];
  if (index === undefined) {
    index = routeArgumentCount(metatype, name);
    Object.defineProperty(trampoline, ROUTE_REQUEST_INDEX, { value: index, configurable: true });
  }
  passRequestAt(metatype, name, index);
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
    if (args.length !== index + 1 || !isHttpRequest(request)) return trampoline.apply(this, args);
    args.length = index;
    const response = routeResponseOf(request);
    // a Fastify app whose replies are not linked (not one this module prepared): the method, uncached
    if (response === undefined) return original.apply(this, args);
    return interceptor[SERVE_ROUTE](
      new RouteContext(request, response, metatype, route),
      plan,
      () => original.apply(this, args),
      innermost,
    );
  };
  Object.defineProperty(route, 'name', { value: trampoline.name });
  Object.defineProperty(route, 'length', { value: trampoline.length });
  copyHandlerMetadata(trampoline, route, CacheInterceptorDelegate);
  innermost = !hasOuterInterceptors(metatype, route, globalInterceptorsOf(interceptor));
  return route;
}
