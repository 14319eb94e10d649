import { Logger } from '@nestjs/common';
import { registerAs } from '@nestjs/config';
import type { MemcachedModuleOptions } from '../interfaces/memcached-module-options.interface.js';
import { invalidEnv, unknownEnv } from '../memcached.messages.js';
import { MemcachedConfigError } from './memcached-options.js';

/** The environment variables `readMemcachedEnv` understands, and the option each one sets. */
export const MEMCACHED_ENV_VARIABLES = {
  MEMCACHED_SERVERS: 'servers',
  MEMCACHED_USERNAME: 'username',
  MEMCACHED_PASSWORD: 'password',
  MEMCACHED_KEY_PREFIX: 'keyPrefix',
  MEMCACHED_TTL: 'ttl',
  MEMCACHED_TIMEOUT: 'timeout',
  MEMCACHED_CONNECT_TIMEOUT: 'connectTimeout',
  MEMCACHED_RETRIES: 'retries',
  MEMCACHED_RETRY_DELAY: 'retryDelay',
  MEMCACHED_KEEP_ALIVE: 'keepAlive',
  MEMCACHED_COMPRESSION_THRESHOLD: 'compressionThreshold',
  MEMCACHED_MAX_ITEM_SIZE: 'maxItemSize',
  MEMCACHED_LEASES: 'leases',
  MEMCACHED_LEASE_TTL: 'leaseTtl',
  MEMCACHED_LEASE_WAIT: 'leaseWait',
  MEMCACHED_BREAKER_THRESHOLD: 'breakerThreshold',
  MEMCACHED_BREAKER_COOLDOWN: 'breakerCooldown',
  MEMCACHED_DEAD_NODE_POLICY: 'deadNodePolicy',
  MEMCACHED_HASHING: 'hashing',
} as const satisfies Record<string, keyof MemcachedModuleOptions>;

type EnvName = keyof typeof MEMCACHED_ENV_VARIABLES;

/**
 * Reads `MEMCACHED_*` variables into module options. Unset or empty variables are left out, so
 * the library defaults apply; a bad value throws an error naming the variable and the value.
 *
 * @example
 * MemcachedModule.forRoot(readMemcachedEnv(process.env))
 */
export function readMemcachedEnv(env: NodeJS.ProcessEnv = process.env): MemcachedModuleOptions {
  const options: Record<string, unknown> = {};
  const get = (name: EnvName) => {
    const value = env[name];
    return value === undefined || value.trim() === '' ? undefined : value.trim();
  };
  const int = (name: EnvName, min: number, unit: string) => {
    const raw = get(name);
    if (raw === undefined) return;
    if (!/^[0-9]+$/.test(raw) || Number(raw) < min) {
      throw new MemcachedConfigError(invalidEnv(name, raw, `a whole number of ${unit} >= ${min}`));
    }
    options[MEMCACHED_ENV_VARIABLES[name]] = Number(raw);
  };
  const size = (name: EnvName, min: number) => {
    const raw = get(name);
    if (raw === undefined) return;
    const match = /^([0-9]+)([kKmM]?)$/.exec(raw);
    const bytes = match ? Number(match[1]) * (match[2] === '' ? 1 : /k/i.test(match[2]) ? 1024 : 1024 * 1024) : NaN;
    if (!(bytes >= min)) {
      throw new MemcachedConfigError(invalidEnv(name, raw, `a size in bytes >= ${min}, optionally with k or m`));
    }
    options[MEMCACHED_ENV_VARIABLES[name]] = bytes;
  };

  for (const name of ['MEMCACHED_SERVERS', 'MEMCACHED_USERNAME'] as const) {
    const value = get(name);
    if (value !== undefined) options[MEMCACHED_ENV_VARIABLES[name]] = value;
  }
  // taken verbatim: a password or a prefix may begin or end with a space
  if (env.MEMCACHED_PASSWORD) options.password = env.MEMCACHED_PASSWORD;
  if (env.MEMCACHED_KEY_PREFIX) options.keyPrefix = env.MEMCACHED_KEY_PREFIX;
  int('MEMCACHED_TTL', 0, 'seconds (0 = no expiry)');
  int('MEMCACHED_TIMEOUT', 1, 'milliseconds');
  int('MEMCACHED_CONNECT_TIMEOUT', 1, 'milliseconds');
  int('MEMCACHED_RETRIES', 0, 'attempts');
  int('MEMCACHED_RETRY_DELAY', 0, 'milliseconds');
  size('MEMCACHED_COMPRESSION_THRESHOLD', 0);
  size('MEMCACHED_MAX_ITEM_SIZE', 1024);
  int('MEMCACHED_LEASE_TTL', 1, 'seconds');
  int('MEMCACHED_LEASE_WAIT', 0, 'milliseconds');
  int('MEMCACHED_BREAKER_THRESHOLD', 0, 'failures (0 = off)');
  int('MEMCACHED_BREAKER_COOLDOWN', 1, 'milliseconds');
  const choice = (name: EnvName, allowed: string[]) => {
    const raw = get(name);
    if (raw === undefined) return;
    if (!allowed.includes(raw)) throw new MemcachedConfigError(invalidEnv(name, raw, allowed.join(' or ')));
    options[MEMCACHED_ENV_VARIABLES[name]] = raw;
  };
  choice('MEMCACHED_DEAD_NODE_POLICY', ['miss', 'rehash']);
  choice('MEMCACHED_HASHING', ['ketama', 'ketama-spy']);
  const bool = (name: EnvName) => {
    const raw = get(name);
    if (raw === undefined) return;
    if (!/^(true|false|1|0|yes|no|on|off)$/i.test(raw)) {
      throw new MemcachedConfigError(invalidEnv(name, raw, 'true or false'));
    }
    options[MEMCACHED_ENV_VARIABLES[name]] = /^(true|1|yes|on)$/i.test(raw);
  };
  bool('MEMCACHED_KEEP_ALIVE');
  bool('MEMCACHED_LEASES');

  const unknown = Object.keys(env).filter(
    (name) => name.startsWith('MEMCACHED_') && !(name in MEMCACHED_ENV_VARIABLES),
  );
  if (unknown.length > 0) new Logger('MemcachedModule').warn(unknownEnv(unknown));
  return options as MemcachedModuleOptions;
}

/**
 * A `@nestjs/config` namespace reading `MEMCACHED_*` variables (see `readMemcachedEnv`).
 *
 * @example
 * imports: [ConfigModule.forRoot(), MemcachedModule.forRootAsync(memcachedConfig.asProvider())]
 */
export const memcachedConfig = registerAs('memcached', () => readMemcachedEnv(process.env));
