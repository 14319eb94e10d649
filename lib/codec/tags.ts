import { randomBytes } from 'node:crypto';
import { MemcachedUsageError } from '../memcached.errors.js';
import { invalidTag, show, tagsNotList, tooManyTags } from '../memcached.messages.js';

/** Most tags one entry carries: each is one more key in the entry's read. */
export const MAX_TAGS = 32;
/** Longest tag, characters. */
export const MAX_TAG_LENGTH = 200;

/** A tag and the version an entry was stored under. */
export type TagStamp = [tag: string, version: number];

/**
 * A list of tags as given, checked: strings of 1 to `MAX_TAG_LENGTH` characters, at most
 * `MAX_TAGS` of them once repeats are dropped. Anything else is the caller's mistake.
 */
export function checkTags(tags: unknown): string[] {
  if (!Array.isArray(tags)) throw new MemcachedUsageError('TAGS', tagsNotList(show(tags)));
  const out: string[] = [];
  for (const tag of tags) {
    if (typeof tag !== 'string' || tag.length === 0 || tag.length > MAX_TAG_LENGTH)
      throw new MemcachedUsageError('TAGS', invalidTag(show(tag), MAX_TAG_LENGTH));
    if (!out.includes(tag)) out.push(tag);
  }
  if (out.length > MAX_TAGS) throw new MemcachedUsageError('TAGS', tooManyTags(out.length, MAX_TAGS));
  return out;
}

/** Two lists of tags together, repeats dropped (the first one's order first). */
export function unionTags(a: readonly string[], b: readonly string[]): string[] {
  if (b.length === 0) return a as string[];
  const out = [...a];
  for (const tag of b) if (!out.includes(tag)) out.push(tag);
  return out;
}

/**
 * A new version for a tag: random, never a successor of an old one, so a version key memcached
 * evicted and created again can never match what an invalidated entry recorded (48 bits: one
 * chance in 2^48 per entry that a new version equals its old one).
 */
export function freshTagVersion(): number {
  return randomBytes(6).readUIntBE(0, 6) + 1;
}

/** The stamps an entry records, as stored: compact JSON `[["tag",version],...]`. */
export function encodeStamps(stamps: readonly TagStamp[]): Buffer {
  return Buffer.from(JSON.stringify(stamps), 'utf8');
}

/** Stamps as read from memcached (untrusted bytes), or undefined when they are not what we write. */
export function decodeStamps(text: string): TagStamp[] | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!Array.isArray(parsed) || parsed.length > MAX_TAGS) return undefined;
  for (const stamp of parsed) {
    if (
      !Array.isArray(stamp) ||
      stamp.length !== 2 ||
      typeof stamp[0] !== 'string' ||
      stamp[0].length === 0 ||
      stamp[0].length > MAX_TAG_LENGTH ||
      !Number.isSafeInteger(stamp[1])
    )
      return undefined;
  }
  return parsed as TagStamp[];
}
