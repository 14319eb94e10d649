import { Module } from '@nestjs/common';
import { ConfigurableModuleClass } from './memcached.module-definition.js';

/**
 * Provides `MemcachedClient`. Configure it with `forRoot(options)` or `forRootAsync({ imports,
 * inject, useFactory | useClass | useExisting })`; add `isGlobal: true` to use it everywhere and
 * `name` to register a second, named client.
 *
 * @example
 * MemcachedModule.forRootAsync({ isGlobal: true, ...memcachedConfig.asProvider() })
 */
@Module({})
export class MemcachedModule extends ConfigurableModuleClass {}
