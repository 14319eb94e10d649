export const invalidOption = (name: string, value: unknown, expected: string) =>
  `Invalid MemcachedModule option "${name}": ${show(value)} (expected ${expected})`;

export const invalidEnv = (name: string, value: string, expected: string) =>
  `Invalid ${name}=${JSON.stringify(value)} (expected ${expected})`;

export const unknownOption = (name: string) =>
  `Unknown MemcachedModule option "${name}": see the README's configuration table for the supported options`;

export const unknownEnv = (names: string[]) =>
  `Ignoring unknown environment variable(s) ${names.join(', ')}: not a MemcachedModule setting (typo?)`;

export const oversizeSkipped = (pattern: string, size: number, limit: number) =>
  `Not caching "${pattern}…": item of ${size} bytes exceeds the item size limit of ${limit} bytes ` +
  `(memcached -I / maxItemSize); the key was deleted instead. Further skips for this pattern are only counted.`;

export const reachable = (node: string, version: string) => `memcached ${node} is reachable (version ${version})`;

export const unreachable = (node: string, reason: string) =>
  `memcached ${node} is not reachable (${reason}); the application runs with this node's cache degraded`;

export function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'function') return 'a function';
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
