import { ConfigurableModuleBuilder, Logger, type Provider } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { MemcachedClient } from './client/memcached.client.js';
import { CacheAsideEngine } from './engine/cache-aside.engine.js';
import { CacheExplorer } from './explorer/cache.explorer.js';
import type {
  MemcachedModuleExtras,
  MemcachedModuleOptions,
} from './interfaces/memcached-module-options.interface.js';
import { getMemcachedClientToken } from './memcached.constants.js';
import { createMemcachedClientProvider } from './memcached.providers.js';

/** Injection token of the options given to `forRoot` / `forRootAsync`. */
export const MEMCACHED_MODULE_OPTIONS = Symbol('MEMCACHED_MODULE_OPTIONS');

/** The decorators' engine and its explorer, registered with the default (unnamed) client. */
export function cacheEngineProviders(): Provider[] {
  return [
    {
      provide: CacheAsideEngine,
      useFactory: (client: MemcachedClient, options: MemcachedModuleOptions) =>
        new CacheAsideEngine(client, options.logger === undefined ? new Logger('MemcachedCache') : options.logger),
      inject: [MemcachedClient, MEMCACHED_MODULE_OPTIONS],
    },
    CacheExplorer,
  ];
}

export const { ConfigurableModuleClass, OPTIONS_TYPE, ASYNC_OPTIONS_TYPE } = new ConfigurableModuleBuilder<MemcachedModuleOptions>({
  moduleName: 'Memcached',
  optionsInjectionToken: MEMCACHED_MODULE_OPTIONS,
})
  .setClassMethodName('forRoot')
  .setFactoryMethodName('createMemcachedOptions')
  .setExtras<MemcachedModuleExtras>({ isGlobal: false, name: undefined }, (definition, extras) => {
    const token = getMemcachedClientToken(extras.name);
    const isDefault = token === MemcachedClient;
    return {
      ...definition,
      global: extras.isGlobal,
      imports: [...(definition.imports ?? []), ...(isDefault ? [DiscoveryModule] : [])],
      providers: [
        ...(definition.providers ?? []),
        createMemcachedClientProvider(token, MEMCACHED_MODULE_OPTIONS),
        ...(isDefault ? cacheEngineProviders() : []),
      ],
      exports: [...(definition.exports ?? []), token, ...(isDefault ? [CacheAsideEngine] : [])],
    };
  })
  .build();
