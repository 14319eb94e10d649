import { ConfigurableModuleBuilder } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { MemcachedClient } from './client/memcached.client.js';
import type { MemcachedModuleExtras, MemcachedModuleOptions } from './interfaces/memcached-module-options.interface.js';
import { getMemcachedClientToken } from './memcached.constants.js';
import { CACHE_EXPORTS, cacheProviders, createMemcachedClientProviders } from './memcached.providers.js';

/** Injection token of the options given to `forRoot` / `forRootAsync`. */
export const MEMCACHED_MODULE_OPTIONS = Symbol('MEMCACHED_MODULE_OPTIONS');

export const { ConfigurableModuleClass, OPTIONS_TYPE, ASYNC_OPTIONS_TYPE } =
  new ConfigurableModuleBuilder<MemcachedModuleOptions>({
    moduleName: 'Memcached',
    optionsInjectionToken: MEMCACHED_MODULE_OPTIONS,
  })
    .setClassMethodName('forRoot')
    .setFactoryMethodName('createMemcachedOptions')
    .setExtras<MemcachedModuleExtras>(
      { isGlobal: false, name: undefined, interceptor: undefined },
      (definition, extras) => {
        const token = getMemcachedClientToken(extras.name);
        const isDefault = token === MemcachedClient;
        return {
          ...definition,
          global: extras.isGlobal,
          imports: [...(definition.imports ?? []), ...(isDefault ? [DiscoveryModule] : [])],
          providers: [
            ...(definition.providers ?? []),
            ...createMemcachedClientProviders(token, MEMCACHED_MODULE_OPTIONS),
            ...(isDefault ? cacheProviders(MEMCACHED_MODULE_OPTIONS, extras.interceptor) : []),
          ],
          exports: [...(definition.exports ?? []), token, ...(isDefault ? CACHE_EXPORTS : [])],
        };
      },
    )
    .build();
