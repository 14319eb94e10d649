import type { FactoryProvider, InjectionToken } from '@nestjs/common';
import { MemcachedClient } from './client/memcached.client.js';
import type { MemcachedModuleOptions } from './interfaces/memcached-module-options.interface.js';

/** The client provider: options are validated here, so bad configuration fails at startup. */
export function createMemcachedClientProvider(
  token: string | typeof MemcachedClient,
  optionsToken: InjectionToken,
): FactoryProvider {
  return {
    provide: token,
    useFactory: (options: MemcachedModuleOptions) => new MemcachedClient(options),
    inject: [optionsToken],
  };
}
