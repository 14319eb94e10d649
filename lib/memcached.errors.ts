/**
 * What a `MemcachedUsageError` is about: `KEY` (a key that is not a string, or arguments that
 * cannot make one), `NAMESPACE`, `TTL`, `VALUE` (`undefined`), `COUNTER` (an amount or initial
 * value out of range), `KEY_FUNCTION` (a decorator's key function returned something else than a
 * key, or a list of them), `DECORATOR` (a decorator's option, or a decorator on something that is
 * not a method), `TAGS` (tags that are not a list of 1 to 200-character strings, or too many).
 */
export type MemcachedUsageErrorCode =
  'KEY' | 'NAMESPACE' | 'TTL' | 'VALUE' | 'COUNTER' | 'KEY_FUNCTION' | 'DECORATOR' | 'TAGS';

/**
 * A call the library cannot carry out as written; the message names the argument or option and
 * the value given. Nothing was sent to memcached. A `TypeError`, with a `code` to branch on.
 *
 * @example
 * try { await cache.set('k', value, { ttl }) } catch (e) { if (e instanceof MemcachedUsageError && e.code === 'TTL') ... }
 */
export class MemcachedUsageError extends TypeError {
  override readonly name = 'MemcachedUsageError';

  constructor(
    readonly code: MemcachedUsageErrorCode,
    message: string,
  ) {
    super(message);
  }
}
