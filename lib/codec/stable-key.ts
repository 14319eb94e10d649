import { MemcachedUsageError } from '../memcached.errors.js';
import { keyFromCycle, keyFromFunction } from '../memcached.messages.js';
/**
 * A deterministic text for method arguments, used as the default cache key: object keys sorted,
 * types tagged so that `1`, `'1'` and `1n` differ. Throws on values with no stable identity
 * (functions, symbols, circular structures).
 */
export function stableKey(value: unknown): string {
  return encode(value, new Set());
}

function encode(value: unknown, seen: Set<object>): string {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'number':
      return Object.is(value, -0) ? '-0' : String(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'undefined':
      return 'undefined';
    case 'bigint':
      return `${value}n`;
    case 'function':
    case 'symbol':
      throw new MemcachedUsageError('KEY', keyFromFunction(typeof value));
  }
  if (value === null) return 'null';
  const obj = value as object;
  if (seen.has(obj)) throw new MemcachedUsageError('KEY', keyFromCycle());
  seen.add(obj);
  try {
    if (Array.isArray(obj)) return `[${obj.map((v) => encode(v, seen)).join(',')}]`;
    if (obj instanceof Date) return `Date(${Number.isNaN(obj.getTime()) ? 'invalid' : obj.toISOString()})`;
    if (Buffer.isBuffer(obj)) return `Buffer(${obj.toString('base64')})`;
    if (obj instanceof Map) {
      const entries = [...obj].map(([k, v]) => `${encode(k, seen)}=>${encode(v, seen)}`).sort();
      return `Map{${entries.join(',')}}`;
    }
    if (obj instanceof Set)
      return `Set{${[...obj]
        .map((v) => encode(v, seen))
        .sort()
        .join(',')}}`;
    const keys = Object.keys(obj).sort();
    const body = keys
      .filter((k) => (obj as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${encode((obj as Record<string, unknown>)[k], seen)}`);
    return `{${body.join(',')}}`;
  } finally {
    seen.delete(obj);
  }
}
