import { Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { DiscoveryService, MetadataScanner } from '@nestjs/core';
import { CACHE_ENGINE, ORIGINAL_METHOD } from '../cache.constants.js';
import { CacheAsideEngine } from '../engine/cache-aside.engine.js';
import { getCachePlan } from '../engine/cache-metadata.accessor.js';

/**
 * Finds providers with decorated methods at bootstrap and binds the engine to them, which turns
 * their methods' trampolines on. Request-scoped and transient providers get the engine on their
 * prototype, so every instance Nest creates later is served too.
 */
@Injectable()
export class CacheExplorer implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger('MemcachedCache');
  private readonly boundPrototypes: object[] = [];

  constructor(
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
    private readonly engine: CacheAsideEngine,
  ) {}

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
        bind(wrapper.instance as object, this.engine);
      } else {
        bind(proto, this.engine);
        this.boundPrototypes.push(proto);
        this.logger.debug(`${metatype.name} is not a singleton: its cached methods use the engine through the prototype`);
      }
    }
  }

  onApplicationShutdown(): void {
    for (const proto of this.boundPrototypes) {
      if ((proto as Record<symbol, unknown>)[CACHE_ENGINE] === this.engine) delete (proto as Record<symbol, unknown>)[CACHE_ENGINE];
    }
  }
}

function bind(target: object, engine: CacheAsideEngine): void {
  Object.defineProperty(target, CACHE_ENGINE, { value: engine, configurable: true, enumerable: false, writable: true });
}
