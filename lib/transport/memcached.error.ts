/**
 * Why an operation failed: `TIMEOUT` (no answer within the deadline), `CONNECTION` (the socket
 * failed or closed), `PROTOCOL` (the server sent bytes that are not a valid response; the socket
 * was dropped), `AUTH` (SASL authentication failed or is required), `TLS` (the TLS handshake
 * failed: the server's certificate did not verify, or it does not speak TLS), `SERVER` (memcached answered
 * with an error status), `UNAVAILABLE` (the node's circuit breaker is open: it was skipped
 * without waiting), `CLOSED` (the client was shut down).
 */
export type MemcachedErrorCode =
  'TIMEOUT' | 'CONNECTION' | 'PROTOCOL' | 'AUTH' | 'TLS' | 'SERVER' | 'UNAVAILABLE' | 'CLOSED';

/**
 * A failed memcached operation, naming the operation and the node. Never carries credentials.
 *
 * @example
 * try { await cache.get('k') } catch (e) { if (e instanceof MemcachedError && e.code === 'TIMEOUT') ... }
 */
export class MemcachedError extends Error {
  override readonly name = 'MemcachedError';

  constructor(
    /** The client method, e.g. `get`, `set`, `getMulti`. */
    readonly operation: string,
    /** The node as `host:port`. */
    readonly node: string,
    readonly code: MemcachedErrorCode,
    /** What went wrong, without the operation and node (the message's tail). */
    readonly detail: string,
    /** The binary protocol status, for `SERVER` errors. */
    readonly status?: number,
    options?: { cause?: unknown },
  ) {
    super(`memcached ${operation} on ${node} failed: ${detail}`, options);
  }
}
