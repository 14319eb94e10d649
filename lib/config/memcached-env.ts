import { Logger } from '@nestjs/common';
import { readFileSync } from 'node:fs';
import type { MemcachedModuleOptions } from '../interfaces/memcached-module-options.interface.js';
import { invalidEnv, unknownEnv } from '../memcached.messages.js';
import { redact, transportOfUrl } from './near-options.js';
import { describeBound, MemcachedConfigError, withinBound } from './memcached-options.js';
import { OPTION_TABLE, type OptionKind, type OptionName, type OptionRow } from './option-table.js';

/** The environment variables `readMemcachedEnv` understands, and the option each one sets (from the option table). */
export const MEMCACHED_ENV_VARIABLES = Object.fromEntries(
  Object.entries(OPTION_TABLE as Record<string, OptionRow>).flatMap(([name, row]) =>
    (row.env ?? []).map((variable) => [variable, name]),
  ),
) as Readonly<Record<string, OptionName>>;

type EnvName = string;

/** A plain option's value from its variable, checked as the option is. */
function plainFromEnv(name: EnvName, raw: string, kind: OptionKind): unknown {
  switch (kind.type) {
    case 'number': {
      const bound = kind.bound;
      if (kind.size) {
        const match = /^([0-9]{1,15})([kKmM]?)$/.exec(raw);
        const bytes = match ? Number(match[1]) * (match[2] === '' ? 1 : /k/i.test(match[2]) ? 1024 : 1024 * 1024) : NaN;
        if (!withinBound(bytes, bound)) {
          throw new MemcachedConfigError(invalidEnv(name, raw, `${describeBound(bound)}, optionally with k or m`));
        }
        return bytes;
      }
      // whole decimal numbers only, checked against the same bounds as the option
      if (!/^[0-9]{1,15}$/.test(raw) || !withinBound(Number(raw), bound)) {
        throw new MemcachedConfigError(invalidEnv(name, raw, describeBound({ ...bound, integer: true })));
      }
      return Number(raw);
    }
    case 'boolean':
      return envBoolean(name, raw);
    case 'choice':
      if (!kind.choices.includes(raw)) throw new MemcachedConfigError(invalidEnv(name, raw, kind.choices.join(' or ')));
      return raw;
    default:
      return raw;
  }
}

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
  // the plain options, each from its one variable
  for (const [name, row] of Object.entries(OPTION_TABLE as Record<string, OptionRow>)) {
    if (row.kind.type === 'structured' || row.env === undefined) continue;
    const variable = row.env[0];
    // taken verbatim: a password or a prefix may begin or end with a space
    const raw = row.kind.type === 'text' && row.kind.verbatim ? env[variable] || undefined : get(variable);
    if (raw !== undefined) options[name] = plainFromEnv(variable, raw, row.kind);
  }
  const servers = get('MEMCACHED_SERVERS');
  if (servers !== undefined) options.servers = servers;
  const serializer = get('MEMCACHED_SERIALIZER');
  if (serializer !== undefined) {
    options.serializer = plainFromEnv('MEMCACHED_SERIALIZER', serializer, {
      type: 'choice',
      choices: ['auto', 'json', 'structured'],
    });
  }
  // comma-separated names; the module checks them as it checks the option
  const list = (name: EnvName, field: 'credentialHeaders' | 'ignoreCookies') => {
    const raw = get(name);
    if (raw === undefined) return;
    const names = raw
      .split(',')
      .map((n) => n.trim())
      .filter((n) => n !== '');
    if (names.length === 0 || names.some((n) => !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(n))) {
      throw new MemcachedConfigError(invalidEnv(name, raw, 'a comma-separated list of names'));
    }
    options.http = { ...(options.http as object), [field]: names };
  };
  list('MEMCACHED_HTTP_CREDENTIAL_HEADERS', 'credentialHeaders');
  list('MEMCACHED_HTTP_IGNORE_COOKIES', 'ignoreCookies');
  // the bus's transport follows the URL's scheme; the module checks URL and channel as options
  const busUrl = get('MEMCACHED_BUS_URL');
  if (busUrl !== undefined) {
    const transport = transportOfUrl(busUrl);
    if (transport === undefined)
      throw new MemcachedConfigError(
        invalidEnv('MEMCACHED_BUS_URL', String(redact(busUrl)), 'a nats://, redis:// or amqp:// URL'),
      );
    options.bus = { transport, url: busUrl };
  }
  const channel = get('MEMCACHED_BUS_CHANNEL');
  if (channel !== undefined) options.bus = { ...(options.bus as object), channel };
  const busKeys = get('MEMCACHED_BUS_KEYS');
  if (busKeys !== undefined) {
    if (busUrl === undefined)
      throw new MemcachedConfigError(invalidEnv('MEMCACHED_BUS_KEYS', '***', 'MEMCACHED_BUS_URL set as well'));
    options.bus = { ...(options.bus as object), keys: keyList('MEMCACHED_BUS_KEYS', busKeys) };
  }
  // whole numbers; the module checks their range as it checks the option
  for (const [variable, field] of [
    ['MEMCACHED_METRICS_NAMESPACES', 'namespaces'],
    ['MEMCACHED_METRICS_FAMILIES', 'families'],
  ] as const) {
    const raw = get(variable);
    if (raw === undefined) continue;
    if (!/^[0-9]{1,7}$/.test(raw)) throw new MemcachedConfigError(invalidEnv(variable, raw, 'a whole number'));
    options.metrics = { ...(options.metrics as object), [field]: Number(raw) };
  }
  const nearTtl = get('MEMCACHED_NEAR_CACHE_TTL');
  if (nearTtl !== undefined) {
    if (!/^[0-9]{1,5}(\.[0-9]{1,3})?$/.test(nearTtl) || Number(nearTtl) <= 0 || Number(nearTtl) > 86_400) {
      throw new MemcachedConfigError(
        invalidEnv(
          'MEMCACHED_NEAR_CACHE_TTL',
          nearTtl,
          'a number of seconds from 0.001 to 86400 (turns the near cache on; needs MEMCACHED_BUS_URL)',
        ),
      );
    }
    options.nearCache = { ttl: Number(nearTtl) };
  }

  readSecurityEnv(get, options);

  const unknown = Object.keys(env).filter(
    (name) => name.startsWith('MEMCACHED_') && !(name in MEMCACHED_ENV_VARIABLES),
  );
  if (unknown.length > 0) new Logger('MemcachedModule').warn(unknownEnv(unknown));
  return options as MemcachedModuleOptions;
}

/** An env variable's true / false (also 1/0, yes/no, on/off); undefined when unset. */
function envBoolean(name: EnvName, raw: string | undefined): boolean | undefined {
  if (raw === undefined) return undefined;
  if (!/^(true|false|1|0|yes|no|on|off)$/i.test(raw))
    throw new MemcachedConfigError(invalidEnv(name, raw, 'true or false'));
  return /^(true|1|yes|on)$/i.test(raw);
}

/**
 * TLS from files (any of them turns TLS on, as `MEMCACHED_TLS=true` does) and encryption keys as
 * `id:base64,id:base64`, the current key first. A key's value never appears in an error.
 */
function readSecurityEnv(get: (name: EnvName) => string | undefined, options: Record<string, unknown>): void {
  const file = (name: EnvName) => {
    const path = get(name);
    if (path === undefined) return undefined;
    try {
      return readFileSync(path);
    } catch (error) {
      throw new MemcachedConfigError(
        invalidEnv(name, path, `a readable PEM file (${(error as NodeJS.ErrnoException).code ?? 'unreadable'})`),
      );
    }
  };
  const flag = get('MEMCACHED_TLS');
  const on = envBoolean('MEMCACHED_TLS', flag);
  const tls: Record<string, unknown> = {};
  const ca = file('MEMCACHED_TLS_CA_FILE');
  const cert = file('MEMCACHED_TLS_CERT_FILE');
  const key = file('MEMCACHED_TLS_KEY_FILE');
  const servername = get('MEMCACHED_TLS_SERVERNAME');
  if (ca) tls.ca = ca;
  if (cert) tls.cert = cert;
  if (key) tls.key = key;
  if (servername) tls.servername = servername;
  if (on === false) {
    if (Object.keys(tls).length > 0)
      throw new MemcachedConfigError(
        invalidEnv('MEMCACHED_TLS', String(flag), 'true, or unset, when MEMCACHED_TLS_* files are given'),
      );
    options.tls = false;
  } else if (on || Object.keys(tls).length > 0) {
    options.tls = Object.keys(tls).length > 0 ? tls : true;
  }
  const keys = get('MEMCACHED_ENCRYPTION_KEYS');
  if (keys !== undefined) options.encryption = { keys: keyList('MEMCACHED_ENCRYPTION_KEYS', keys) };
}

/** `id:base64,id:base64`, the current key first (encryption and bus keys). A key never appears in an error. */
function keyList(name: EnvName, raw: string): Array<{ id: number; key: string }> {
  const entries = raw.split(',').map((entry) => /^\s*([0-9]{1,3})\s*:\s*([A-Za-z0-9+/]+={0,2})\s*$/.exec(entry));
  if (entries.some((m) => m === null)) {
    throw new MemcachedConfigError(
      invalidEnv(
        name,
        '***',
        'id:base64key pairs, comma-separated, the current key first (e.g. 2:<base64>,1:<base64>)',
      ),
    );
  }
  return entries.map((m) => ({ id: Number(m![1]), key: m![2] }));
}
