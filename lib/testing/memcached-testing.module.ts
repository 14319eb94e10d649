import { type DynamicModule, Module } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { MemcachedClient } from '../client/memcached.client.js';
import { CacheAsideEngine } from '../engine/cache-aside.engine.js';
import type { MemcachedModuleOptions } from '../interfaces/memcached-module-options.interface.js';
import { cacheEngineProviders, MEMCACHED_MODULE_OPTIONS } from '../memcached.module-definition.js';
import { InMemoryMemcachedClient } from './in-memory-memcached.client.js';

/**
 * Replaces `MemcachedModule` in unit tests: a global module providing an
 * `InMemoryMemcachedClient` as `MemcachedClient`, and the same decorator engine, so
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
export class MemcachedTestingModule {
  static forRoot(options: MemcachedModuleOptions = {}): DynamicModule {
    return {
      module: MemcachedTestingModule,
      global: true,
      imports: [DiscoveryModule],
      providers: [
        { provide: MEMCACHED_MODULE_OPTIONS, useValue: { logger: false, ...options } },
        { provide: MemcachedClient, useFactory: () => new InMemoryMemcachedClient(options) },
        ...cacheEngineProviders(),
      ],
      exports: [MemcachedClient, CacheAsideEngine],
    };
  }
}
