import type { ExecutionContext } from '@nestjs/common';

/**
 * How a decorated method's arguments become a key. On a service method the function receives the
 * method's arguments; on a controller handler it receives the `ExecutionContext`.
 */
export type CacheKeyFn<A extends unknown[]> = (...args: A) => string;

interface CacheTargetOptions<A extends unknown[]> {
  /**
   * Groups entries for `allEntries` eviction; `[A-Za-z0-9_.-]`. Default: the class default, else
   * the class name.
   */
  namespace?: string;
  /**
   * The entry's key within the namespace. Default: on a service, the method name plus a stable
   * encoding of the arguments; on a controller, the route path plus the sorted query string.
   */
  key?: string | CacheKeyFn<A>;
}

/** Options of `@Cacheable`. */
export interface CacheableOptions<A extends unknown[] = any[], R = any> extends CacheTargetOptions<A> {
  /** Seconds, or a function of the result. Default: the class default, else the module's `ttl`. */
  ttl?: number | ((result: Awaited<R>) => number);
  /** Checked before the call, on the arguments: `false` runs the method without the cache. */
  condition?: (...args: A) => boolean;
  /**
   * The entry's tags (up to 32 strings of 1 to 200 characters), or a function of the arguments (on
   * a controller, of the `ExecutionContext`). `@CacheEvict({ tags })` or `invalidateTags` with any
   * of them makes the entry miss, in every namespace and every service sharing the `tagPrefix`.
   *
   * @example
   * @Cacheable({ namespace: 'orders', tags: (id: string) => [`order:${id}`] })
   */
  tags?: string[] | ((...args: A) => string[]);
  /**
   * Tags learned from the result (the users a list shows), recorded with the entry; on a
   * controller the result is the response body.
   *
   * @example
   * @Cacheable({ namespace: 'orders', resultTags: (orders: Order[]) => orders.map((o) => `user:${o.userId}`) })
   */
  resultTags?: NoInfer<(result: Awaited<R>, ...args: A) => string[]>;
  /** Checked after a miss, on the result: `true` returns it without storing it. */
  unless?: NoInfer<(result: Awaited<R>, ...args: A) => boolean>;
  /**
   * Controllers only: the caller's identity (user id, tenant) taken from the request; each caller
   * gets their own variant of the entry. Without it (or when it returns undefined), a request
   * carrying a credential header or a cookie bypasses the cache, so no user is ever served
   * another user's response.
   */
  principal?: (request: any, context: ExecutionContext) => string | undefined;
  /**
   * Controllers only: the response is the same for every caller, so requests with credentials or
   * cookies are answered from (and fill) the shared entry. Default false.
   */
  public?: boolean;
  /**
   * Controllers only: cookies that do not change this route's response (names or patterns), on top
   * of the module's `http.ignoreCookies`; a request whose other cookies are all ignored is cached.
   */
  ignoreCookies?: Array<string | RegExp>;
  /**
   * Seconds an entry may still be served after its TTL while exactly one caller (across all
   * processes) refreshes it in the background; past TTL + this, it is a miss. HTTP: `X-Cache: STALE`.
   */
  staleWhileRevalidate?: number;
  /**
   * Seconds an entry is kept past its TTL (and `staleWhileRevalidate`) to answer when the method
   * fails or passes the module's `graceDeadline`: a caller past the TTL runs the method, and gets
   * the last good value if it throws or is too slow (HTTP: `X-Cache: STALE`, `Age`). Default: the
   * module's `grace` (0).
   *
   * @example
   * @Cacheable({ namespace: 'prices', ttl: 60, grace: 3600 })
   */
  grace?: number;
  /** `false` turns the lease protocol off for this method. Default: the module's `leases`. */
  lease?: boolean;
  /**
   * Serve hits from the module's near cache (in process, no round trip) while its bus is healthy.
   * Default: per the module's `nearCache.namespaces`; without a module `nearCache`, no effect.
   */
  nearCache?: boolean;
}

/** Options of `@CacheEvict`. */
export interface CacheEvictOptions<A extends unknown[] = any[]> extends CacheTargetOptions<A> {
  /** Several keys at once. */
  keys?: (...args: A) => string[];
  /** Evicts the whole namespace (one atomic increment of its generation). */
  allEntries?: boolean;
  /** Evicts before calling the method, so even a throwing method evicts. Default false. */
  beforeInvocation?: boolean;
  /**
   * Invalidates these tags (or a function of the arguments' tags): every entry carrying one misses,
   * in every namespace and every service sharing the `tagPrefix`. With `tags` and no `key`, `keys`
   * or `allEntries`, only the tags are invalidated.
   *
   * @example
   * @CacheEvict({ tags: (id: string) => [`user:${id}`] })
   */
  tags?: string[] | ((...args: A) => string[]);
}

/** Options of `@CachePut`. */
export interface CachePutOptions<A extends unknown[] = any[], R = any> extends CacheTargetOptions<A> {
  /** Seconds, or a function of the result. */
  ttl?: number | ((result: Awaited<R>) => number);
  /** Checked after the call: `true` skips the write. */
  unless?: NoInfer<(result: Awaited<R>, ...args: A) => boolean>;
  /** The entry's tags, as `@Cacheable`'s; stored under the versions they have at the write. */
  tags?: string[] | ((...args: A) => string[]);
  /** Tags learned from the result, as `@Cacheable`'s. */
  resultTags?: NoInfer<(result: Awaited<R>, ...args: A) => string[]>;
}

/** Everything the engine needs to know about one decorated method, read once from its decorators. */
export interface CachePlan {
  className: string;
  methodName: string;
  cacheable?: CacheableOptions;
  put?: CachePutOptions;
  evicts: CacheEvictOptions[];
  defaults: CacheClassDefaults;
}

/** Defaults a class-level decorator gives its methods. */
export interface CacheClassDefaults {
  namespace?: string;
  ttl?: number;
}

/** On a controller the key functions receive the ExecutionContext, not the handler's arguments. */
type MethodArgs<A extends unknown[]> = A extends [ExecutionContext, ...unknown[]] ? any[] : A;

// method syntax makes the parameters bivariant: a key function may take a wider or a narrower
// type than the method (string vs a union of literals), but not an unrelated one, and may use a
// prefix of the method's parameters
type FitsKey<A extends unknown[]> = { method(...args: [...MethodArgs<A>, ...any[]]): unknown }['method'];

/**
 * What `@Cacheable`, `@CacheEvict` and `@CachePut` return: a class decorator (defaults), or a
 * method decorator that only fits methods whose parameters match the key function's.
 */
export type CacheDecorator<A extends unknown[]> = ClassDecorator &
  (<T extends FitsKey<A>>(
    target: object,
    propertyKey: string | symbol,
    descriptor: TypedPropertyDescriptor<T>,
  ) => TypedPropertyDescriptor<T> | void);
