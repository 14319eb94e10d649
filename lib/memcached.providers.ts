import {
  type FactoryProvider,
  type InjectionToken,
  Logger,
  type NestInterceptor,
  type Provider,
  type Type,
} from '@nestjs/common';
import type { ModuleRef } from '@nestjs/core';
import { CacheAsideEngine } from './cache/cache-aside.engine.js';
import { MemcachedCache } from './cache/memcached-cache.js';
import { clientInternals, MemcachedClient } from './client/memcached.client.js';
import { CacheExplorer } from './explorers/cache.explorer.js';
import { CacheInterceptor, isCacheInterceptor } from './interceptors/cache.interceptor.js';
import type { MemcachedModuleOptions } from './interfaces/memcached-module-options.interface.js';
import { CACHE_INTERCEPTOR } from './memcached.constants.js';

/**
 * The client provider: options are validated here, and a configured bus's broker package is
 * loaded, so bad configuration or a missing optional package fails at startup.
 */
export function createMemcachedClientProvider(
  token: string | typeof MemcachedClient,
  optionsToken: InjectionToken,
  create: (options: MemcachedModuleOptions) => MemcachedClient = (options) => new MemcachedClient(options),
): FactoryProvider {
  return {
    provide: token,
    useFactory: async (options: MemcachedModuleOptions) => {
      const client = create(options);
      try {
        await clientInternals(client).ready;
      } catch (error) {
        client.close();
        throw error;
      }
      return client;
    },
    inject: [optionsToken],
  };
}

/**
 * What the decorators need, registered with the default (unnamed) client: the engine, the
 * `MemcachedCache` facade over it, the explorer that turns provider methods on, and the
 * interceptor controller routes use (`interceptor`, or `CacheInterceptor`).
 */
export function cacheProviders(
  optionsToken: InjectionToken,
  interceptor: Type<NestInterceptor> = CacheInterceptor,
): Provider[] {
  return [
    {
      provide: CacheAsideEngine,
      useFactory: (client: MemcachedClient, options: MemcachedModuleOptions) =>
        new CacheAsideEngine(client, options.logger === undefined ? new Logger('MemcachedCache') : options.logger),
      inject: [MemcachedClient, optionsToken],
    },
    {
      provide: MemcachedCache,
      useFactory: (engine: CacheAsideEngine) => new MemcachedCache(engine),
      inject: [CacheAsideEngine],
    },
    { provide: CACHE_INTERCEPTOR, useClass: interceptor },
    CacheExplorer,
  ];
}

/**
 * What the modules' `configure` does (Nest runs it after creating the app's instances, before
 * registering its routes): the explorer of the module that has one prepares cached routes.
 * A named client's module has none.
 */
export function prepareCachedRoutes(moduleRef: ModuleRef): void {
  let explorer: CacheExplorer;
  try {
    explorer = moduleRef.get(CacheExplorer, { strict: true });
  } catch {
    return;
  }
  explorer.prepareRoutes(hasGlobalInterceptors(moduleRef));
}

type AppConfig = {
  getGlobalInterceptors?(): unknown[];
  getGlobalRequestInterceptors?(): Array<{ metatype?: unknown; instance?: unknown }>;
};

/**
 * Whether the app has global interceptors (`useGlobalInterceptors`, `APP_INTERCEPTOR`), from the
 * application config Nest's container holds; if that cannot be read, assume it has.
 */
function hasGlobalInterceptors(moduleRef: ModuleRef): boolean {
  const config = (moduleRef as unknown as { container?: { applicationConfig?: AppConfig } }).container
    ?.applicationConfig;
  if (typeof config?.getGlobalInterceptors !== 'function' || typeof config.getGlobalRequestInterceptors !== 'function')
    return true;
  // a CacheInterceptor bound globally leaves decorated routes alone: it does not count
  return (
    config.getGlobalInterceptors().some((i) => !isCacheInterceptor(i)) ||
    config.getGlobalRequestInterceptors().some((w) => !isCacheInterceptor(w.instance ?? w.metatype))
  );
}

/** What the module exports besides the client. */
export const CACHE_EXPORTS = [MemcachedCache, CACHE_INTERCEPTOR, CacheAsideEngine];
