import { registerAs } from '@nestjs/config';
import { readMemcachedEnv } from './memcached-env.js';

/**
 * A `@nestjs/config` namespace reading `MEMCACHED_*` variables (see `readMemcachedEnv`). From
 * `nestjs-memcached/config`; needs the optional peer `@nestjs/config`.
 *
 * @example
 * imports: [ConfigModule.forRoot(), MemcachedModule.forRootAsync(memcachedConfig.asProvider())]
 */
export const memcachedConfig = registerAs('memcached', () => readMemcachedEnv(process.env));
