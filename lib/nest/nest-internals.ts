import { Get, Next, Redirect, Render, Req, Res, Sse, UseInterceptors } from '@nestjs/common';
import type { ExecutionContext, Type } from '@nestjs/common';
import { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';

/**
 * The only place that names NestJS's or Express's internals: metadata keys Nest's decorators write
 * (not exported by every Nest version), its route parameter types, the application config its
 * container holds, and how Express passes the request. Everything else asks these functions.
 *
 * `checkNestContract()` proves, with Nest's own public decorators, that the keys are still the
 * ones written here; the route-handler path (route-handlers.ts) runs only when it holds, and
 * otherwise routes keep Nest's interceptor chain.
 */
const KEYS = {
  path: 'path',
  interceptors: '__interceptors__',
  routeArguments: '__routeArguments__',
  sse: '__sse__',
  render: '__renderTemplate__',
  redirect: '__redirect__',
  // @nestjs/microservices (an optional package): its handlers have no route path anyway
  messagePattern: 'microservices:pattern',
} as const;

/** Nest's `RouteParamtypes`: REQUEST, RESPONSE, NEXT. */
const PARAM = { request: '0', response: '1', next: '2' } as const;

/** Routes whose result Nest does not send as it is (SSE, a template, a redirect) or that also answer messages. */
const NOT_SENT_AS_IS = [KEYS.sse, KEYS.render, KEYS.redirect, KEYS.messagePattern];

/** The interceptors `@UseInterceptors` bound to a class or a handler (empty when none). */
export function interceptorsOf(target: Function): unknown[] {
  return (Reflect.getMetadata(KEYS.interceptors, target) as unknown[] | undefined) ?? [];
}

const ATTACHED = Symbol('nestjs-memcached:attached-interceptors');

/**
 * Binds an interceptor to a handler after the ones it has, once, with Nest's own
 * `@UseInterceptors` (so it holds whatever key a Nest release uses).
 */
export function appendInterceptor(handler: Function, interceptor: Type | Function): void {
  let attached = (handler as { [ATTACHED]?: unknown[] })[ATTACHED];
  if (attached === undefined) {
    attached = [];
    Object.defineProperty(handler, ATTACHED, { value: attached });
  }
  if (attached.includes(interceptor)) return;
  attached.push(interceptor);
  UseInterceptors(interceptor as Type)({}, '', { value: handler });
}

/** A copy of a handler's metadata on another function, without one interceptor. */
export function copyHandlerMetadata(from: Function, to: Function, without?: unknown): void {
  for (const key of Reflect.getOwnMetadataKeys(from)) {
    let value = Reflect.getOwnMetadata(key, from);
    if (key === KEYS.interceptors && without !== undefined) value = (value as unknown[]).filter((i) => i !== without);
    Reflect.defineMetadata(key, value, to);
  }
}

/** Whether the handler is a server-sent events route (`@Sse()`): its result is a stream, never a value. */
export function isEventStream(handler: Function): boolean {
  return Reflect.getMetadata(KEYS.sse, handler) !== undefined;
}

/** Whether Nest sends the HTTP route's result as it is: a route, and not SSE, `@Render`, `@Redirect` or a message handler. */
export function isRouteSentAsIs(handler: Function): boolean {
  if (Reflect.getMetadata(KEYS.path, handler) === undefined) return false;
  return !NOT_SENT_AS_IS.some((key) => Reflect.getMetadata(key, handler) !== undefined);
}

/** Whether the method takes `@Res()` or `@Next()`, from its route arguments. */
export function takesResponseObject(classRef: Function, methodName: string): boolean {
  const args = Reflect.getMetadata(KEYS.routeArguments, classRef, methodName) as Record<string, unknown> | undefined;
  if (args === undefined) return false;
  return Object.keys(args).some((key) => {
    const type = key.split(':')[0];
    return type === PARAM.response || type === PARAM.next;
  });
}

/**
 * Asks Nest to pass the request to the route at `index`, after the handler's own arguments, by
 * adding a request parameter to the class's route arguments. This is on the class, so every app
 * built later passes it too (`isPassedRequest` lets the method's wrapper drop it there).
 */
export function passRequestAt(metatype: Type, name: string, index: number): void {
  const args = (Reflect.getMetadata(KEYS.routeArguments, metatype, name) ?? {}) as Record<string, unknown>;
  const key = `${PARAM.request}:${index}`;
  if (Object.hasOwn(args, key) && Reflect.hasOwnMetadata(KEYS.routeArguments, metatype, name)) return;
  Reflect.defineMetadata(
    KEYS.routeArguments,
    { ...args, [key]: { index, data: undefined, pipes: [] } },
    metatype,
    name,
  );
}

/** The index after the handler's own route arguments (where `passRequestAt` puts the request). */
export function routeArgumentCount(metatype: Type, name: string): number {
  const args = (Reflect.getMetadata(KEYS.routeArguments, metatype, name) ?? {}) as Record<string, { index: number }>;
  return Object.values(args).reduce((max, arg) => Math.max(max, arg.index + 1), 0);
}

/** Whether `args` ends, at `index`, with the request `passRequestAt` asked for (Express's, or Fastify's). */
export function isPassedRequest(args: unknown[], index: number | undefined): boolean {
  return index !== undefined && args.length === index + 1 && isHttpRequest(args[index]);
}

/**
 * Whether `value` is an HTTP request as a route receives it: Node's (Express), or Fastify's, whose
 * `raw` is Node's request, HTTP/2's, or the one `inject()` makes (all readable streams).
 */
export function isHttpRequest(value: unknown): value is HttpRequest {
  return (
    value instanceof IncomingMessage ||
    (typeof value === 'object' && value !== null && (value as { raw?: unknown }).raw instanceof Readable)
  );
}

/** A request as a route receives it: Node's (Express) or Fastify's. */
export type HttpRequest = (IncomingMessage & { res?: unknown }) | { raw: Readable };

/**
 * Where a Fastify request of an app whose routes are served from their handlers keeps its reply:
 * a request decoration (so every request has it from construction, and keeps one shape), not a
 * WeakMap (an entry per request is costly for the garbage collector).
 */
const REPLY = Symbol.for('nestjs-memcached:reply');

/**
 * The response of a request a route received: Express's own `res`, or the Fastify reply that
 * `linkFastifyReplies` noted; undefined when there is neither.
 */
export function routeResponseOf(request: HttpRequest): unknown {
  return request instanceof IncomingMessage ? request.res : ((request as { [REPLY]?: unknown })[REPLY] ?? undefined);
}

type FastifyLike = {
  addHook(name: 'onRequest', hook: (request: object, reply: unknown, done: () => void) => void): void;
  decorateRequest(name: symbol, value: null): void;
  hasRequestDecorator(name: symbol): boolean;
};

/** Whether `instance` decorates and hooks requests as Fastify's does. */
export function hooksRequests(instance: unknown): instance is FastifyLike {
  const fastify = instance as Partial<FastifyLike> | null;
  return (
    typeof fastify?.addHook === 'function' &&
    typeof fastify.decorateRequest === 'function' &&
    typeof fastify.hasRequestDecorator === 'function'
  );
}

/**
 * Notes each request's reply in a Fastify app (a Fastify route, unlike Express's, receives no
 * way to it), with Fastify's public `decorateRequest` and `onRequest` hook. Once per instance.
 */
export function linkFastifyReplies(instance: FastifyLike): void {
  if (instance.hasRequestDecorator(REPLY)) return;
  instance.decorateRequest(REPLY, null);
  instance.addHook('onRequest', (request, reply, done) => {
    (request as { [REPLY]?: unknown })[REPLY] = reply;
    done();
  });
}

/** The ETag function Express compiled from the app's `etag` setting, if the response has one. */
export function expressEtagFunction(response: unknown): unknown {
  return (response as { app?: { get?(name: string): unknown } }).app?.get?.('etag fn');
}

type AppConfig = {
  getGlobalInterceptors?(): unknown[];
  getGlobalRequestInterceptors?(): Array<{ metatype?: unknown; instance?: unknown }>;
};

/**
 * The app's global interceptors (`useGlobalInterceptors`, and `APP_INTERCEPTOR` instances or
 * classes), from the application config Nest's container holds; undefined when it cannot be read.
 */
export function globalInterceptorsOfApp(moduleRef: object): unknown[] | undefined {
  const config = (moduleRef as { container?: { applicationConfig?: AppConfig } }).container?.applicationConfig;
  if (typeof config?.getGlobalInterceptors !== 'function' || typeof config.getGlobalRequestInterceptors !== 'function')
    return undefined;
  return [
    ...config.getGlobalInterceptors(),
    ...config.getGlobalRequestInterceptors().map((wrapper) => wrapper.instance ?? wrapper.metatype),
  ];
}

/**
 * Whether this Nest still writes what the route-handler path reads: undefined when it does,
 * else what changed. Checked once, with Nest's own public decorators on a probe class. The
 * object is exported so a test can simulate a Nest that changed.
 */
export const nestContract = {
  check: (): string | undefined => (probed ??= probe()) || undefined,
};
let probed: string | undefined;

function probe(): string {
  try {
    class Marker {}
    class Probe {
      route(_request?: unknown, _response?: unknown, _next?: unknown): void {}
      sse(): void {}
      render(): void {}
      redirect(): void {}
    }
    const proto = Probe.prototype as unknown as Record<string, Function>;
    const method = (name: string) => Object.getOwnPropertyDescriptor(proto, name)!;
    Get('probe')(proto, 'route', method('route'));
    UseInterceptors(Marker)(proto, 'route', method('route'));
    UseInterceptors(Marker)(Probe);
    Req()(proto, 'route', 0);
    Res()(proto, 'route', 1);
    Next()(proto, 'route', 2);
    Sse('probe')(proto, 'sse', method('sse'));
    Render('probe')(proto, 'render', method('render'));
    Redirect('/probe')(proto, 'redirect', method('redirect'));
    const args = (Reflect.getMetadata(KEYS.routeArguments, Probe, 'route') ?? {}) as Record<string, { index?: number }>;
    const broken: string[] = [];
    if (Reflect.getMetadata(KEYS.path, proto.route) !== 'probe') broken.push(`@Get() path (${KEYS.path})`);
    if (!interceptorsOf(proto.route).includes(Marker) || !interceptorsOf(Probe).includes(Marker))
      broken.push(`@UseInterceptors() (${KEYS.interceptors})`);
    for (const [type, index] of [
      [PARAM.request, 0],
      [PARAM.response, 1],
      [PARAM.next, 2],
    ] as const) {
      if (args[`${type}:${index}`]?.index !== index)
        broken.push(`route parameter ${type}:${index} (${KEYS.routeArguments})`);
    }
    if (!isEventStream(proto.sse)) broken.push(`@Sse() (${KEYS.sse})`);
    if (Reflect.getMetadata(KEYS.render, proto.render) === undefined) broken.push(`@Render() (${KEYS.render})`);
    if (Reflect.getMetadata(KEYS.redirect, proto.redirect) === undefined) broken.push(`@Redirect() (${KEYS.redirect})`);
    return broken.join(', ');
  } catch (error) {
    return `the probe failed: ${(error as Error).message}`;
  }
}

/**
 * The `ExecutionContext` of an HTTP call served from its route handler, for the interceptor's
 * rules and key functions, built as Nest builds one for the same call.
 */
export class RouteContext implements ExecutionContext {
  private readonly args: [HttpRequest, unknown, undefined];

  constructor(
    request: HttpRequest,
    response: unknown,
    private readonly metatype: Type,
    private readonly handler: Function,
  ) {
    this.args = [request, response, undefined];
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

  // as Nest's own ExecutionContextHost: the views read the same arguments (guards and key
  // functions that check getType() first never use them)
  switchToRpc() {
    const [data, context] = this.args;
    return { getData: <T>() => data as T, getContext: <T>() => context as T };
  }

  switchToWs() {
    const [client, data] = this.args;
    return { getClient: <T>() => client as T, getData: <T>() => data as T, getPattern: () => '' };
  }
}
