import { defer, from, isObservable, lastValueFrom, type Observable } from 'rxjs';
import type { CacheAsideEngine, CallSite, Produced } from '../cache/cache-aside.engine.js';
import { stableKey } from '../codec/stable-key.js';
import { getCachePlan } from '../decorators/cache-metadata.accessor.js';

import type { CacheInvoker } from '../decorators/cache-decorator.factory.js';

/**
 * The provider path: a decorated method's call, run through the engine under its plan. Async
 * methods keep returning Promises, Observable methods Observables (subscribed lazily), and a
 * cached sync method returns a Promise.
 */
export function cachedMethodInvoker(engine: CacheAsideEngine): CacheInvoker {
  return (instance, methodName, original, trampoline, args) => {
    const plan = getCachePlan(instance.constructor, trampoline, methodName);
    if (!plan) return original.apply(instance, args);
    const site: CallSite = { keyArgs: args, defaultKey: () => `${methodName}:${stableKey(args)}` };
    const produce = async (): Promise<Produced<unknown>> => ({
      value: await toPromise(original.apply(instance, args)),
    });
    if (returnsObservable(instance, methodName)) return defer(() => from(engine.execute(plan, site, produce)));
    return engine.execute(plan, site, produce);
  };
}

function toPromise<T>(value: T | Promise<T> | Observable<T>): Promise<T> {
  if (isObservable(value)) return lastValueFrom(value as Observable<T>, { defaultValue: undefined as T });
  return Promise.resolve(value);
}

const observableReturns = new WeakMap<object, Map<string, boolean>>();

function returnsObservable(instance: object, methodName: string): boolean {
  const proto = Object.getPrototypeOf(instance) as object;
  let byMethod = observableReturns.get(proto);
  if (!byMethod) observableReturns.set(proto, (byMethod = new Map()));
  let result = byMethod.get(methodName);
  if (result === undefined) {
    const type = Reflect.getMetadata('design:returntype', proto, methodName) as { name?: string } | undefined;
    result = type?.name === 'Observable';
    byMethod.set(methodName, result);
  }
  return result;
}
