import { viaPrototype } from '../memcached.messages.js';
import { Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { DiscoveryService, MetadataScanner } from '@nestjs/core';
import { CacheAsideEngine } from '../cache/cache-aside.engine.js';
import { getCachePlan } from '../decorators/cache-metadata.accessor.js';
import { CACHE_INVOKER, ORIGINAL_METHOD } from '../memcached.constants.js';
import { type CachedMethodInvoker, cachedMethodInvoker } from './cached-method.invoker.js';

/**
 * Finds providers with decorated methods at bootstrap and binds the cached-method invoker to
 * them, which turns their methods' trampolines on. Request-scoped and transient providers get it
 * on their prototype, so every instance Nest creates later is served too.
 */
@Injectable()
export class CacheExplorer implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger('MemcachedCache');
  private readonly boundPrototypes: object[] = [];
  private readonly invoker: CachedMethodInvoker;

  constructor(
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
    engine: CacheAsideEngine,
  ) {
    this.invoker = cachedMethodInvoker(engine);
  }

  onModuleInit(): void {
    for (const wrapper of this.discovery.getProviders()) {
      const metatype = wrapper.metatype as Function | undefined;
      if (wrapper.isAlias || typeof metatype !== 'function' || !metatype.prototype) continue;
      const proto = metatype.prototype as Record<string, unknown>;
      const decorated = this.scanner.getAllMethodNames(proto).filter((name) => {
        const method = proto[name] as (Function & { [ORIGINAL_METHOD]?: Function }) | undefined;
        return typeof method === 'function' && method[ORIGINAL_METHOD] !== undefined && getCachePlan(metatype, method, name) !== null;
      });
      if (decorated.length === 0) continue;
      if (wrapper.isDependencyTreeStatic() && wrapper.instance && typeof wrapper.instance === 'object') {
        bind(wrapper.instance as object, this.invoker);
      } else {
        bind(proto, this.invoker);
        this.boundPrototypes.push(proto);
        this.logger.debug(viaPrototype(metatype.name));
      }
    }
  }

  onApplicationShutdown(): void {
    for (const proto of this.boundPrototypes) {
      if ((proto as Record<symbol, unknown>)[CACHE_INVOKER] === this.invoker) delete (proto as Record<symbol, unknown>)[CACHE_INVOKER];
    }
  }
}

function bind(target: object, invoker: CachedMethodInvoker): void {
  Object.defineProperty(target, CACHE_INVOKER, { value: invoker, configurable: true, enumerable: false, writable: true });
}
