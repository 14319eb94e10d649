import { Inject } from '@nestjs/common';
import { getMemcachedClientToken } from '../memcached.constants.js';

/**
 * Injects a named client (registered with `MemcachedModule.forRoot({ name, ... })`); without a
 * name, the default client (the same as injecting `MemcachedClient` by type).
 *
 * @example
 * constructor(@InjectMemcached('sessions') private readonly sessions: MemcachedClient) {}
 */
export const InjectMemcached = (name?: string): PropertyDecorator & ParameterDecorator =>
  Inject(getMemcachedClientToken(name));
