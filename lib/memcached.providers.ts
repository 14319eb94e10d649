import { type InjectionToken, Logger, type NestInterceptor, type Provider, type Type } from '@nestjs/common';
import type { ModuleRef } from '@nestjs/core';
import { CacheAsideEngine } from './cache/cache-aside.engine.js';
import { MemcachedCache } from './cache/memcached-cache.js';
import { ClientCore } from './client/client-core.js';
import { MemcachedClient } from './client/memcached.client.js';
import { CacheExplorer } from './explorers/cache.explorer.js';
import { CacheInterceptor, isCacheInterceptor } from './interceptors/cache.interceptor.js';
import type { MemcachedModuleOptions } from './interfaces/memcached-module-options.interface.js';
import { CACHE_INTERCEPTOR } from './memcached.constants.js';
import { globalInterceptorsOfApp } from './nest/nest-internals.js';

/** The injection token of a client's parts (its `ClientCore`), beside the client's own token. */
export function coreTokenOf(token: string | typeof MemcachedClient): symbol {
  let core = coreTokens.get(token);
  if (core === undefined) {
    core = Symbol(`${typeof token === 'string' ? token : token.name}Core`);
    coreTokens.set(token, core);
  }
  return core;
}

const coreTokens = new Map<unknown, symbol>();

/**
 * The client's providers: its parts, built from the options (validated here, and a configured
 * bus's broker package loaded, so bad configuration or a missing optional package fails at
 * startup), and the client over them. The engine gets the same parts (see `cacheProviders`).
 */
export function createMemcachedClientProviders(
  token: string | typeof MemcachedClient,
  optionsToken: InjectionToken,
  createCore: (options: MemcachedModuleOptions) => ClientCore = (options) => new ClientCore(options),
  createClient: (core: ClientCore) => MemcachedClient = (core) => new MemcachedClient(core),
): Provider[] {
  const coreToken = coreTokenOf(token);
  return [
    {
      provide: coreToken,
      useFactory: async (options: MemcachedModuleOptions) => {
        const core = createCore(options);
        try {
          await core.ready;
        } catch (error) {
          core.close();
          throw error;
        }
        return core;
      },
      inject: [optionsToken],
    },
    { provide: token, useFactory: createClient, inject: [coreToken] },
  ];
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
      useFactory: (core: ClientCore, options: MemcachedModuleOptions) =>
        new CacheAsideEngine(core, options.logger === undefined ? new Logger('MemcachedCache') : options.logger),
      inject: [coreTokenOf(MemcachedClient), optionsToken],
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

/**
 * Whether the app has global interceptors (`useGlobalInterceptors`, `APP_INTERCEPTOR`) other than
 * a `CacheInterceptor` (which leaves decorated routes alone); undefined when they cannot be read.
 */
function hasGlobalInterceptors(moduleRef: ModuleRef): boolean | undefined {
  return globalInterceptorsOfApp(moduleRef)?.some((i) => !isCacheInterceptor(i));
}

/** What the module exports besides the client. */
export const CACHE_EXPORTS = [MemcachedCache, CACHE_INTERCEPTOR, CacheAsideEngine];
