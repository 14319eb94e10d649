import { routeHandlersOff, routesFromHandlers, viaPrototype } from '../memcached.messages.js';
import {
  Inject,
  Injectable,
  Logger,
  type NestInterceptor,
  type OnApplicationShutdown,
  type OnModuleInit,
} from '@nestjs/common';
import { DiscoveryService, HttpAdapterHost, MetadataScanner } from '@nestjs/core';
import { CacheAsideEngine } from '../cache/cache-aside.engine.js';
import { getCachePlan } from '../decorators/cache-metadata.accessor.js';
import { CacheInterceptor, noteGlobalInterceptors } from '../interceptors/cache.interceptor.js';
import { CACHE_INTERCEPTOR, CACHE_INVOKER, ORIGINAL_METHOD } from '../memcached.constants.js';
import { addLateBinder, type CacheInvoker, type LateBinder } from '../decorators/cache-decorator.factory.js';
import { cachedMethodInvoker } from './cached-method.invoker.js';
import { hooksRequests, linkFastifyReplies, nestContract } from '../nest/nest-internals.js';
import { serveRoutesFromHandlers } from '../nest/route-handlers.js';

/**
 * Finds providers with decorated methods at bootstrap and binds the cached-method invoker to
 * them, which turns their methods' trampolines on. Request-scoped and transient providers get it
 * on their prototype, so every instance Nest creates later is served too. Before Nest registers
 * an Express or Fastify app's routes, it serves cached controller routes from their handlers.
 */
@Injectable()
export class CacheExplorer implements OnModuleInit, OnApplicationShutdown, LateBinder {
  private readonly logger = new Logger('MemcachedCache');
  private readonly boundPrototypes: object[] = [];
  private readonly invoker: CacheInvoker;
  private readonly stopLateBinding: () => void;

  constructor(
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
    private readonly engine: CacheAsideEngine,
    @Inject(CACHE_INTERCEPTOR) private readonly interceptor: NestInterceptor,
    private readonly adapterHost: HttpAdapterHost,
  ) {
    this.invoker = cachedMethodInvoker(engine);
    // until onModuleInit binds every provider, a call on one of ours binds it (tests often stop at compile())
    this.stopLateBinding = addLateBinder(this);
  }

  /**
   * Called by the module's `configure`, which Nest runs after creating the app's instances and
   * before registering its routes, with whether the app has global interceptors (undefined: they
   * cannot be read, taken as yes): serves cached Express and Fastify routes from their handlers when the interceptor is the
   * stock one, `routeHandlers` is on and this Nest still writes what that path reads (see
   * `nest/route-handlers.ts`); else, says why once and leaves routes in the chain.
   */
  prepareRoutes(globalInterceptors: boolean | undefined): void {
    const broken = nestContract.check();
    // with the contract broken, whether interceptors run around the cache cannot be read: a hit
    // is then always handed on parsed, as a miss is
    noteGlobalInterceptors(this.interceptor, broken !== undefined || (globalInterceptors ?? true));
    const platform = this.adapterHost.httpAdapter?.getType();
    if ((platform !== 'express' && platform !== 'fastify') || this.interceptor.constructor !== CacheInterceptor) return;
    if (!this.engine.routeHandlers) return;
    if (broken !== undefined) return void this.logger.warn(routeHandlersOff(broken));
    // a Fastify route gets no way to its reply: each request's is noted (else routes stay in the chain)
    const fastify = platform === 'fastify' ? this.adapterHost.httpAdapter.getInstance<unknown>() : undefined;
    if (fastify !== undefined && !hooksRequests(fastify)) return;
    const methodNames = (proto: object) => this.scanner.getAllMethodNames(proto);
    const served = serveRoutesFromHandlers(
      this.discovery.getControllers(),
      this.interceptor as CacheInterceptor,
      methodNames,
    );
    if (served === 0) return;
    if (fastify !== undefined) linkFastifyReplies(fastify);
    this.logger.debug(routesFromHandlers(served));
  }

  onModuleInit(): void {
    this.stopLateBinding();
    this.declareNamespaces();
    for (const wrapper of this.discovery.getProviders()) {
      if (!this.hasCachedMethods(wrapper)) continue;
      const proto = (wrapper.metatype as Function).prototype as object;
      if (wrapper.isDependencyTreeStatic() && wrapper.instance && typeof wrapper.instance === 'object') {
        bind(wrapper.instance as object, this.invoker);
      } else {
        bind(proto, this.invoker);
        this.boundPrototypes.push(proto);
        this.logger.debug(viaPrototype((wrapper.metatype as Function).name));
      }
    }
  }

  /**
   * The namespaces every decorator of the app names (or defaults to), told to the counters before
   * the first call: each is counted and labelled by itself from the start, however many other
   * namespaces the app meets at run time.
   */
  private declareNamespaces(): void {
    for (const wrapper of [...this.discovery.getProviders(), ...this.discovery.getControllers()]) {
      const metatype = wrapper.metatype as Function | undefined;
      if (wrapper.isAlias || typeof metatype !== 'function' || !metatype.prototype) continue;
      const proto = metatype.prototype as Record<string, unknown>;
      for (const name of this.scanner.getAllMethodNames(proto)) {
        const method = proto[name];
        if (typeof method !== 'function') continue;
        const plan = getCachePlan(metatype, method, name);
        if (plan !== null) this.engine.declarePlan(plan);
      }
    }
  }

  /** A provider of a class with cached methods (what `onModuleInit` binds), not an alias. */
  private hasCachedMethods(wrapper: ProviderWrapper): boolean {
    const metatype = wrapper.metatype as Function | undefined;
    if (wrapper.isAlias || typeof metatype !== 'function' || !metatype.prototype) return false;
    const proto = metatype.prototype as Record<string, unknown>;
    return this.scanner.getAllMethodNames(proto).some((name) => {
      const method = proto[name] as (Function & { [ORIGINAL_METHOD]?: Function }) | undefined;
      return (
        typeof method === 'function' &&
        method[ORIGINAL_METHOD] !== undefined &&
        getCachePlan(metatype, method, name) !== null
      );
    });
  }

  /**
   * Before `onModuleInit`: the invoker for an instance that `onModuleInit` would bind (a singleton
   * of a class with cached methods this app manages), bound to it now; undefined for any other.
   */
  bindLate(instance: object): CacheInvoker | undefined {
    const managed = this.discovery
      .getProviders()
      .some(
        (wrapper) =>
          wrapper.instance === instance && wrapper.isDependencyTreeStatic() && this.hasCachedMethods(wrapper),
      );
    if (!managed) return undefined;
    bind(instance, this.invoker);
    return this.invoker;
  }

  onApplicationShutdown(): void {
    this.stopLateBinding();
    for (const proto of this.boundPrototypes) {
      if ((proto as Record<symbol, unknown>)[CACHE_INVOKER] === this.invoker)
        delete (proto as Record<symbol, unknown>)[CACHE_INVOKER];
    }
  }
}

/** A provider as Nest's container holds it (an `InstanceWrapper`). */
interface ProviderWrapper {
  metatype: unknown;
  isAlias: boolean;
}

function bind(target: object, invoker: CacheInvoker): void {
  // not enumerable: inspecting or serialising the instance shows nothing of ours
  Object.defineProperty(target, CACHE_INVOKER, {
    value: invoker,
    configurable: true,
    enumerable: false,
    writable: true,
  });
}
