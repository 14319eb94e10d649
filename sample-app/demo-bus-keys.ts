import { Logger } from '@nestjs/common';

/**
 * The key both sample services sign their bus messages with when `MEMCACHED_BUS_KEYS` is not set,
 * so that the two-service demo runs as it is. It is public: never use it outside this demo.
 */
export const DEMO_BUS_KEYS = '1:bmVzdGpzLW1lbWNhY2hlZCBzYW1wbGUgZGVtbyBrZXk=';

/** Gives a sample service with a bus the demo key, unless `MEMCACHED_BUS_KEYS` names one, and says so. */
export function useDemoBusKeys(env: NodeJS.ProcessEnv = process.env): void {
  if (env.MEMCACHED_BUS_URL === undefined || env.MEMCACHED_BUS_KEYS !== undefined) return;
  env.MEMCACHED_BUS_KEYS = DEMO_BUS_KEYS;
  new Logger('Sample').log("bus messages are signed with the sample's public demo key (set MEMCACHED_BUS_KEYS)");
}
