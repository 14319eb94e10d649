import type { INestApplication, ModuleMetadata } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { MemcachedModule, type MemcachedModuleExtras, type MemcachedModuleOptions } from '../../lib/index.js';
import { MemcachedDaemon } from './memcached-daemon.js';

/**
 * A real memcached daemon and an initialised Nest application that imports `MemcachedModule`
 * (global, silent, pointed at that daemon) beside the given module metadata.
 */
export async function startMemcachedApp(
  metadata: ModuleMetadata,
  options: Omit<MemcachedModuleOptions, 'servers'> & MemcachedModuleExtras = {},
): Promise<{ app: INestApplication; daemon: MemcachedDaemon }> {
  const daemon = await MemcachedDaemon.start();
  const moduleRef = await Test.createTestingModule({
    ...metadata,
    imports: [
      MemcachedModule.forRoot({ isGlobal: true, logger: false, ...options, servers: daemon.address }),
      ...(metadata.imports ?? []),
    ],
  }).compile();
  const app = moduleRef.createNestApplication({ logger: false });
  await app.init();
  return { app, daemon };
}
