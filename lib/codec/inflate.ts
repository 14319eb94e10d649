import { deflateRawSync, deflateSync, inflateRawSync, inflateSync } from 'node:zlib';

/**
 * The most a compressed body may inflate to. An item is at most `maxItemSize` on the wire, but
 * anyone who can write to memcached can store a small body that inflates to gigabytes; reading it
 * must cost a bounded allocation, so a larger result is undecodable (a miss), and a body larger
 * than this is never compressed.
 */
export const MAX_INFLATED_BYTES = 64 * 1024 * 1024;

/**
 * `bytes` compressed (raw deflate, or zlib with `zlib`) when at least `threshold` long and when
 * that saves space; undefined to store them as they are.
 */
export function compress(bytes: Buffer, threshold: number, zlib = false): Buffer | undefined {
  if (threshold <= 0 || bytes.length < threshold || bytes.length > MAX_INFLATED_BYTES) return undefined;
  const compressed = zlib ? deflateSync(bytes, { level: 1 }) : deflateRawSync(bytes, { level: 1 });
  return compressed.length < bytes.length ? compressed : undefined;
}

/** Inflates what `compress` made; throws on bad bytes or a result over `MAX_INFLATED_BYTES`. */
export function inflate(bytes: Buffer, zlib = false): Buffer {
  return zlib
    ? inflateSync(bytes, { maxOutputLength: MAX_INFLATED_BYTES })
    : inflateRawSync(bytes, { maxOutputLength: MAX_INFLATED_BYTES });
}
