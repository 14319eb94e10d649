import { MemcachedUsageError } from '../memcached.errors.js';
import { invalidNamespace } from '../memcached.messages.js';
import { createHash } from 'node:crypto';

/** memcached's hard limit on key length, in bytes. */
export const MAX_KEY_LENGTH = 250;
/** Marks a key that was rewritten to head + hash; never left in a key sent as is. */
export const HASHED_KEY_MARK = '#';
const HASH_LENGTH = 43; // sha256, base64url, no padding
/** The longest namespace: every per-namespace structure is charged by its name's length too. */
export const MAX_NAMESPACE_LENGTH = 200;
/** What a namespace may hold: never a separator the keyspace uses, at most `MAX_NAMESPACE_LENGTH` characters. */
export const NAMESPACE_PATTERN = /^[A-Za-z0-9_.-]{1,200}$/;
/** What a key prefix may hold: printable ASCII without spaces or `#`. */
export const KEY_PREFIX_PATTERN = /^[\x21-\x22\x24-\x7e]{0,128}$/;

/** Namespaces already checked, so the hot path skips the pattern; bounded, as every per-namespace structure. */
const validNamespaces = new Set<string>();
const CHECKED_NAMESPACES = 10_000;

/** Namespaces are 1 to 200 of `[A-Za-z0-9_.-]`, so a namespace can never end inside a key. */
export function assertNamespace(namespace: string): void {
  if (validNamespaces.has(namespace)) return;
  if (typeof namespace !== 'string' || !NAMESPACE_PATTERN.test(namespace)) {
    throw new MemcachedUsageError('NAMESPACE', invalidNamespace(namespace));
  }
  if (validNamespaces.size < CHECKED_NAMESPACES) validNamespaces.add(namespace);
}

/**
 * Turns any string into a key memcached accepts on every protocol: printable ASCII without
 * spaces, at most 250 bytes. Keys that already qualify (and hold no `#`) are sent unchanged;
 * any other key becomes a readable head, `#`, and the SHA-256 of the whole key: of its UTF-8
 * bytes, or, for a string that is not well-formed UTF-16 (a lone surrogate, which UTF-8 cannot
 * hold), of its UTF-16 code units, marked `#!` so the two digests never meet. A key sent
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

/**
 * `head` + `mark` + SHA-256 of the whole key (`mark` + `!` and the digest of its UTF-16 code units
 * when the string is not well-formed). Plain keys use `#`; other kinds their own mark (keyspace.ts).
 */
export function hashedKey(key: string, kindMark = HASHED_KEY_MARK): string {
  const wellFormed = key.isWellFormed();
  // utf8 would turn every lone surrogate into U+FFFD, so '\ud800' and '\udc00' would share a digest
  const digest = wellFormed
    ? createHash('sha256').update(key, 'utf8').digest('base64url')
    : createHash('sha256').update(key, 'utf16le').digest('base64url');
  const mark = wellFormed ? kindMark : kindMark + '!';
  let head = '';
  for (let i = 0; i < key.length && head.length < MAX_KEY_LENGTH - mark.length - HASH_LENGTH; i++) {
    const c = key.charCodeAt(i);
    head += c <= 0x20 || c >= 0x7f || c === 0x23 ? '_' : key[i];
  }
  return head + mark + digest;
}
