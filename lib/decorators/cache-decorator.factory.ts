import { CACHE_ENGINE, ORIGINAL_METHOD } from '../cache.constants.js';
import type { CacheAsideEngine } from '../engine/cache-aside.engine.js';
import { CacheInterceptor } from '../interceptors/cache.interceptor.js';

type AnyMethod = (...args: any[]) => any;

// @nestjs/common's INTERCEPTORS_METADATA, stable since Nest 5 (its constants subpath is not exported everywhere)
const INTERCEPTORS_METADATA = '__interceptors__';

/**
 * Records a cache decorator's options. On a class, they are defaults for its methods. On a method,
 * the method is replaced at decoration time by a trampoline that hands the call to the engine the
 * explorer bound to the instance at bootstrap (and simply calls the method before that, or on
 * instances Nest does not manage), and `CacheInterceptor` is attached once for controller routes.
 */
export function recordCacheMetadata(
  metadataKey: string,
  options: object,
  mode: 'single' | 'list',
): ClassDecorator & MethodDecorator {
  return ((target: object, propertyKey?: string | symbol, descriptor?: PropertyDescriptor) => {
    if (descriptor === undefined) {
      defineOptions(metadataKey, options, target, mode);
      return target;
    }
    if (typeof descriptor.value !== 'function') {
      throw new TypeError(`cache decorators apply to methods; ${String(propertyKey)} is not one`);
    }
    const trampoline = installTrampoline(descriptor, String(propertyKey));
    defineOptions(metadataKey, options, trampoline, mode);
    const interceptors = (Reflect.getMetadata(INTERCEPTORS_METADATA, trampoline) as unknown[] | undefined) ?? [];
    if (!interceptors.includes(CacheInterceptor)) {
      Reflect.defineMetadata(INTERCEPTORS_METADATA, [...interceptors, CacheInterceptor], trampoline);
    }
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

function installTrampoline(descriptor: PropertyDescriptor, methodName: string): AnyMethod {
  const current = descriptor.value as AnyMethod & { [ORIGINAL_METHOD]?: AnyMethod };
  if (current[ORIGINAL_METHOD]) return current;
  const original = current;
  const trampoline = function (this: { [CACHE_ENGINE]?: CacheAsideEngine } | undefined, ...args: unknown[]) {
    const engine = this?.[CACHE_ENGINE];
    if (engine === undefined) return original.apply(this, args);
    return engine.invokeMethod(this as object, methodName, original, trampoline, args);
  };
  Object.defineProperty(trampoline, 'name', { value: original.name });
  Object.defineProperty(trampoline, 'length', { value: original.length });
  Object.defineProperty(trampoline, ORIGINAL_METHOD, { value: original });
  // keep what decorators applied before this one recorded on the method (routes, guards, ...)
  for (const key of Reflect.getOwnMetadataKeys(original)) {
    Reflect.defineMetadata(key, Reflect.getOwnMetadata(key, original), trampoline);
  }
  descriptor.value = trampoline;
  return trampoline;
}
