import { ConfigurableModuleBuilder } from '@nestjs/common';
import type {
  MemcachedModuleExtras,
  MemcachedModuleOptions,
} from './interfaces/memcached-module-options.interface.js';
import { createMemcachedClientProvider } from './memcached.providers.js';
import { getMemcachedClientToken } from './memcached.constants.js';

/** Injection token of the options given to `forRoot` / `forRootAsync`. */
export const MEMCACHED_MODULE_OPTIONS = Symbol('MEMCACHED_MODULE_OPTIONS');

export const { ConfigurableModuleClass, OPTIONS_TYPE, ASYNC_OPTIONS_TYPE } = new ConfigurableModuleBuilder<MemcachedModuleOptions>({
  moduleName: 'Memcached',
  optionsInjectionToken: MEMCACHED_MODULE_OPTIONS,
})
  .setClassMethodName('forRoot')
  .setFactoryMethodName('createMemcachedOptions')
  .setExtras<MemcachedModuleExtras>({ isGlobal: false, name: undefined }, (definition, extras) => {
    const token = getMemcachedClientToken(extras.name);
    return {
      ...definition,
      global: extras.isGlobal,
      providers: [...(definition.providers ?? []), createMemcachedClientProvider(token, MEMCACHED_MODULE_OPTIONS)],
      exports: [...(definition.exports ?? []), token],
    };
  })
  .build();
