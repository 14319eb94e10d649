import { type DynamicModule, Module, type NestModule } from '@nestjs/common';
import { DiscoveryModule, ModuleRef } from '@nestjs/core';
import { MemcachedClient } from '../client/memcached.client.js';
import type { MemcachedModuleOptions } from '../interfaces/memcached-module-options.interface.js';
import { MEMCACHED_MODULE_OPTIONS } from '../memcached.module-definition.js';
import {
  CACHE_EXPORTS,
  cacheProviders,
  createMemcachedClientProviders,
  prepareCachedRoutes,
} from '../memcached.providers.js';
import { InMemoryClientCore, InMemoryMemcachedClient } from './in-memory-memcached.client.js';

/**
 * Replaces `MemcachedModule` in unit tests: a global module providing an
 * `InMemoryMemcachedClient` as `MemcachedClient`, the same decorator engine and `MemcachedCache`, so
 * `@Cacheable`, `@CacheEvict` and `@CachePut` behave as in production, without a server.
 *
 * @example
 * const moduleRef = await Test.createTestingModule({
 *   imports: [MemcachedTestingModule.forRoot()],
 *   providers: [UsersService],
 * }).compile();
 * await moduleRef.init();
 */
@Module({})
export class MemcachedTestingModule implements NestModule {
  constructor(private readonly moduleRef: ModuleRef) {}

  /** Prepares cached routes as `MemcachedModule` does (Nest calls this before registering routes). */
  configure(): void {
    prepareCachedRoutes(this.moduleRef);
  }

  static forRoot(options: MemcachedModuleOptions = {}): DynamicModule {
    return {
      module: MemcachedTestingModule,
      global: true,
      imports: [DiscoveryModule],
      providers: [
        { provide: MEMCACHED_MODULE_OPTIONS, useValue: { logger: false, ...options } },
        ...createMemcachedClientProviders(
          MemcachedClient,
          MEMCACHED_MODULE_OPTIONS,
          () => new InMemoryClientCore(options),
          (core) => new InMemoryMemcachedClient(core as InMemoryClientCore),
        ),
        // injectable by its own class too, for its test helpers (`storedKeys()`)
        { provide: InMemoryMemcachedClient, useExisting: MemcachedClient },
        ...cacheProviders(MEMCACHED_MODULE_OPTIONS),
      ],
      exports: [MemcachedClient, InMemoryMemcachedClient, ...CACHE_EXPORTS],
    };
  }
}
