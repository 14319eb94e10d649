import { checkTags, MAX_TAG_LENGTH, MAX_TAGS } from '../codec/tags.js';
import { MemcachedUsageError } from '../memcached.errors.js';
import { MAX_TTL } from '../codec/ttl.js';
import { NAMESPACE_PATTERN } from '../codec/key.codec.js';
import {
  CACHE_EVICT_METADATA,
  CACHE_INVOKER,
  CACHE_PUT_METADATA,
  CACHEABLE_METADATA,
  ORIGINAL_METHOD,
  ROUTE_REQUEST_INDEX,
} from '../memcached.constants.js';
import { invalidDecoratorOption, notAMethod, show } from '../memcached.messages.js';
import type {
  CacheableOptions,
  CacheEvictOptions,
  CachePutOptions,
} from '../interfaces/cache-decorator-options.interface.js';
import { CacheInterceptorDelegate } from './cache-interceptor.delegate.js';
import { appendInterceptor, copyHandlerMetadata, isPassedRequest } from '../nest/nest-internals.js';

type AnyMethod = (...args: any[]) => any;

/**
 * Records a cache decorator's options. On a class, they are defaults for its methods. On a method,
 * the method is replaced at decoration time by a trampoline that hands the call to the invoker the
 * explorer bound to the instance at bootstrap (and simply calls the method before that, or on
 * instances Nest does not manage), and the cache interceptor is attached once for controller
 * routes (through a delegate, so the module can replace it).
 */
export function recordCacheMetadata(
  metadataKey: string,
  options: object,
  mode: 'single' | 'list',
): ClassDecorator & MethodDecorator {
  return ((target: object, propertyKey?: string | symbol, descriptor?: PropertyDescriptor) => {
    if (descriptor === undefined) {
      validateOptions(metadataKey, options, (target as Function).name, undefined);
      defineOptions(metadataKey, options, target, mode);
      return target;
    }
    validateOptions(metadataKey, options, (target as object).constructor?.name, String(propertyKey));
    if (typeof descriptor.value !== 'function') {
      throw new MemcachedUsageError('DECORATOR', notAMethod(String(propertyKey)));
    }
    const trampoline = installTrampoline(descriptor, String(propertyKey));
    defineOptions(metadataKey, options, trampoline, mode);
    appendInterceptor(trampoline, CacheInterceptorDelegate);
    return descriptor;
  }) as ClassDecorator & MethodDecorator;
}

function defineOptions(metadataKey: string, options: object, target: object, mode: 'single' | 'list'): void {
  if (mode === 'list') {
    const list = (Reflect.getOwnMetadata(metadataKey, target) as object[] | undefined) ?? [];
    Reflect.defineMetadata(metadataKey, [...list, options], target);
  } else {
    Reflect.defineMetadata(metadataKey, options, target);
  }
}

/** What the explorer binds to an instance: its decorated methods' trampolines hand their calls to it. */
export type CacheInvoker = (
  instance: object,
  methodName: string,
  original: Function,
  trampoline: Function,
  args: unknown[],
) => unknown;

/** Explorers of apps compiled but not initialised yet: each finds (and binds) the invoker of an instance it manages. */
/** What binds an instance of its app late (the explorer), held weakly: an app never closed is not kept alive by it. */
export interface LateBinder {
  bindLate(instance: object): CacheInvoker | undefined;
}

const lateBinders = new Set<WeakRef<LateBinder>>();

/**
 * Lets a trampoline called before its app's `init()` (a test that stops at `compile()` and
 * `get()`) find its invoker; returns the function that removes the binder.
 */
export function addLateBinder(binder: LateBinder): () => void {
  const ref = new WeakRef(binder);
  lateBinders.add(ref);
  return () => lateBinders.delete(ref);
}

function bindLate(instance: object): CacheInvoker | undefined {
  for (const ref of lateBinders) {
    const binder = ref.deref();
    if (binder === undefined) {
      lateBinders.delete(ref);
      continue;
    }
    const invoker = binder.bindLate(instance);
    if (invoker !== undefined) return invoker;
  }
  return undefined;
}

function installTrampoline(descriptor: PropertyDescriptor, methodName: string): AnyMethod {
  const current = descriptor.value as AnyMethod & { [ORIGINAL_METHOD]?: AnyMethod };
  if (current[ORIGINAL_METHOD]) return current;
  const original = current;
  const trampoline = function (this: { [CACHE_INVOKER]?: CacheInvoker } | undefined, ...args: unknown[]) {
    // a route served from its handler in another app asked Nest for the request (nest/route-handlers.ts)
    if (isPassedRequest(args, (trampoline as { [ROUTE_REQUEST_INDEX]?: number })[ROUTE_REQUEST_INDEX]))
      args.length -= 1;
    let invoke = this?.[CACHE_INVOKER];
    if (invoke === undefined && lateBinders.size > 0 && typeof this === 'object' && this !== null) {
      invoke = bindLate(this);
    }
    if (invoke === undefined) return original.apply(this, args);
    return invoke(this as object, methodName, original, trampoline, args);
  };
  Object.defineProperty(trampoline, 'name', { value: original.name });
  Object.defineProperty(trampoline, 'length', { value: original.length });
  Object.defineProperty(trampoline, ORIGINAL_METHOD, { value: original });
  // keep what decorators applied before this one recorded on the method (routes, guards, ...)
  copyHandlerMetadata(original, trampoline);
  descriptor.value = trampoline;
  return trampoline;
}

type Check = (value: unknown) => string | undefined;

const isFunction: Check = (v) => (typeof v === 'function' ? undefined : 'a function');
const isBoolean: Check = (v) => (typeof v === 'boolean' ? undefined : 'true or false');
const seconds: Check = (v) =>
  typeof v === 'number' && Number.isFinite(v) && v >= 0 && v <= MAX_TTL
    ? undefined
    : `a number of seconds from 0 to ${MAX_TTL}`;
type DecoratorName = '@Cacheable' | '@CachePut' | '@CacheEvict';
type DecoratorOption = keyof CacheableOptions | keyof CachePutOptions | keyof CacheEvictOptions;

/**
 * Every decorator option in one table: how its value is checked, which decorators take it, and
 * whether a class-level decorator may set it. The decorators' option types and this table name the
 * same options (a compile error otherwise).
 */
const TAGS_EXPECTED = `a list of up to ${MAX_TAGS} strings of 1 to ${MAX_TAG_LENGTH} characters, or a function`;

function tagsAccepted(v: unknown): boolean {
  try {
    checkTags(v);
    return true;
  } catch {
    return false;
  }
}

const DECORATOR_OPTIONS = {
  namespace: {
    check: (v) =>
      typeof v === 'string' && NAMESPACE_PATTERN.test(v) ? undefined : "1 to 200 letters, digits, '_', '.' or '-'",
    on: ['@Cacheable', '@CachePut', '@CacheEvict'],
    onClass: true,
  },
  key: {
    check: (v) => (typeof v === 'string' || typeof v === 'function' ? undefined : 'a string or a function'),
    on: ['@Cacheable', '@CachePut', '@CacheEvict'],
  },
  ttl: {
    check: (v) =>
      typeof v === 'function' ? undefined : seconds(v) && `${seconds(v)} (0 = no expiry), or a function of the result`,
    on: ['@Cacheable', '@CachePut'],
    onClass: true,
  },
  condition: { check: isFunction, on: ['@Cacheable'] },
  unless: { check: isFunction, on: ['@Cacheable', '@CachePut'] },
  principal: { check: isFunction, on: ['@Cacheable'] },
  staleWhileRevalidate: { check: seconds, on: ['@Cacheable'] },
  grace: { check: seconds, on: ['@Cacheable'] },
  lease: { check: isBoolean, on: ['@Cacheable'] },
  nearCache: { check: isBoolean, on: ['@Cacheable'] },
  public: { check: isBoolean, on: ['@Cacheable'] },
  ignoreCookies: {
    check: (v) =>
      Array.isArray(v) && v.every((c) => (typeof c === 'string' && c !== '') || c instanceof RegExp)
        ? undefined
        : 'a list of cookie names or regular expressions',
    on: ['@Cacheable'],
  },
  tags: {
    check: (v) => (typeof v === 'function' || tagsAccepted(v) ? undefined : TAGS_EXPECTED),
    on: ['@Cacheable', '@CachePut', '@CacheEvict'],
  },
  resultTags: { check: isFunction, on: ['@Cacheable', '@CachePut'] },
  keys: { check: isFunction, on: ['@CacheEvict'] },
  allEntries: { check: isBoolean, on: ['@CacheEvict'] },
  beforeInvocation: { check: isBoolean, on: ['@CacheEvict'] },
} satisfies Record<DecoratorOption, { check: Check; on: readonly DecoratorName[]; onClass?: boolean }>;

const DECORATORS: Record<string, DecoratorName> = {
  [CACHEABLE_METADATA]: '@Cacheable',
  [CACHE_PUT_METADATA]: '@CachePut',
  [CACHE_EVICT_METADATA]: '@CacheEvict',
};
type OptionRow = { check: Check; on: readonly DecoratorName[]; onClass?: boolean };
const rows = Object.entries(DECORATOR_OPTIONS as Record<string, OptionRow>);
const allowedOn = (name: DecoratorName) => rows.filter(([, row]) => row.on.includes(name)).map(([option]) => option);
const CLASS_OPTIONS = rows.filter(([, row]) => row.onClass).map(([option]) => option);

/**
 * Checks a decorator's options when it is applied (at import, so at startup): a bad value, an
 * unknown option or an option that has no effect where it is written fails with an error naming
 * the decorator, the class and method, the option and the value.
 */
function validateOptions(
  metadataKey: string,
  options: object,
  className: string | undefined,
  method: string | undefined,
): void {
  const name = DECORATORS[metadataKey];
  const allowed = allowedOn(name);
  const where = method === undefined ? (className ?? 'a class') : `${className ?? '?'}.${method}`;
  if (options === null || typeof options !== 'object') {
    throw new MemcachedUsageError(
      'DECORATOR',
      invalidDecoratorOption(name, where, 'options', show(options), 'an object'),
    );
  }
  for (const [option, value] of Object.entries(options)) {
    if (value === undefined) continue;
    const permitted = method === undefined ? CLASS_OPTIONS : allowed;
    if (!permitted.includes(option)) {
      const expected =
        method === undefined ? `on a class, only ${CLASS_OPTIONS.join(' and ')} apply` : `one of ${allowed.join(', ')}`;
      throw new MemcachedUsageError(
        'DECORATOR',
        invalidDecoratorOption(name, where, option, show(value), `a known option: ${expected}`),
      );
    }
    const problem = (DECORATOR_OPTIONS as Record<string, OptionRow>)[option].check(value);
    if (problem !== undefined)
      throw new MemcachedUsageError('DECORATOR', invalidDecoratorOption(name, where, option, show(value), problem));
  }
}
