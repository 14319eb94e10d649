import { Module, type NestModule } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { prepareCachedRoutes } from './memcached.providers.js';
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
export class MemcachedModule extends ConfigurableModuleClass implements NestModule {
  constructor(private readonly moduleRef: ModuleRef) {
    super();
  }

  /** No middleware: Nest calls this before it registers routes, when cached routes are prepared. */
  configure(): void {
    prepareCachedRoutes(this.moduleRef);
  }
}
