import { createHash } from 'node:crypto';

/** memcached's hard limit on key length, in bytes. */
export const MAX_KEY_LENGTH = 250;
/** Marks a key that was rewritten to head + hash; never left in a key sent as is. */
export const HASHED_KEY_MARK = '#';
const HASH_LENGTH = 43; // sha256, base64url, no padding
const MAX_HEAD_LENGTH = MAX_KEY_LENGTH - HASHED_KEY_MARK.length - HASH_LENGTH;
const NAMESPACE_PATTERN = /^[A-Za-z0-9_.-]+$/;

/**
 * Joins prefix, namespace and key as DESIGN.md lays them out: `prefix + namespace + ':' + key`.
 * The namespace is restricted to `[A-Za-z0-9_.-]`, so the split between namespace and key is
 * never ambiguous.
 */
export function composeKey(prefix: string, namespace: string | undefined, key: string): string {
  if (typeof key !== 'string') {
    throw new TypeError(`memcached key must be a string, got ${describe(key)}`);
  }
  if (namespace === undefined || namespace === '') return prefix + key;
  assertNamespace(namespace);
  return prefix + namespace + ':' + key;
}

const validNamespaces = new Set<string>();

export function assertNamespace(namespace: string): void {
  if (validNamespaces.has(namespace)) return;
  if (typeof namespace !== 'string' || !NAMESPACE_PATTERN.test(namespace)) {
    throw new TypeError(
      `Invalid cache namespace ${JSON.stringify(namespace)}: use letters, digits, '_', '.' or '-'`,
    );
  }
  if (validNamespaces.size < 10_000) validNamespaces.add(namespace);
}

/**
 * Turns any string into a key memcached accepts on every protocol: printable ASCII without
 * spaces, at most 250 bytes. Keys that already qualify (and hold no `#`) are sent unchanged;
 * any other key becomes a readable head, `#`, and the SHA-256 of the whole key. A key sent
 * unchanged never contains `#` and a rewritten key always does, so two distinct inputs cannot
 * meet on the wire (short of a SHA-256 collision).
 */
export function toWireKey(key: string): string {
  const length = key.length;
  if (length !== 0 && length <= MAX_KEY_LENGTH) {
    let plain = true;
    for (let i = 0; i < length; i++) {
      const c = key.charCodeAt(i);
      if (c <= 0x20 || c >= 0x7f || c === 0x23) {
        plain = false;
        break;
      }
    }
    if (plain) return key;
  }
  return hashedKey(key);
}

function hashedKey(key: string): string {
  const digest = createHash('sha256').update(key, 'utf8').digest('base64url');
  let head = '';
  for (let i = 0; i < key.length && head.length < MAX_HEAD_LENGTH; i++) {
    const c = key.charCodeAt(i);
    head += c <= 0x20 || c >= 0x7f || c === 0x23 ? '_' : key[i];
  }
  return head + HASHED_KEY_MARK + digest;
}

function describe(value: unknown): string {
  return value === null ? 'null' : typeof value;
}
