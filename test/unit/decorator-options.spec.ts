import { describe, expect, it } from 'vitest';
import { Cacheable, CacheEvict, CachePut } from '../../lib/index.js';

const apply = (decorator: MethodDecorator & ClassDecorator, onClass = false) => {
  if (onClass) {
    class Target {}
    decorator(Target);
    return;
  }
  class Target {
    method() {}
  }
  decorator(Target.prototype, 'method', Object.getOwnPropertyDescriptor(Target.prototype, 'method')!);
};

describe('decorator options are checked when the decorator is applied', () => {
  it.each([
    ['@Cacheable', () => Cacheable({ ttl: -1 }), /Invalid @Cacheable option "ttl" on Target.method: -1/],
    ['@Cacheable', () => Cacheable({ ttl: Number.NaN }), /option "ttl" on Target.method: NaN/],
    ['@Cacheable', () => Cacheable({ ttl: null as never }), /option "ttl" on Target.method: null/],
    ['@Cacheable', () => Cacheable({ ttl: 2 ** 40 }), /option "ttl".*from 0 to 315360000/],
    ['@Cacheable', () => Cacheable({ namespace: 'a b' }), /option "namespace".*"a b"/],
    ['@Cacheable', () => Cacheable({ staleWhileRevalidate: -5 }), /option "staleWhileRevalidate"/],
    ['@Cacheable', () => Cacheable({ grace: -1 }), /option "grace"/],
    ['@CachePut', () => CachePut({ grace: 60 } as never), /option "grace"/],
    ['@Cacheable', () => Cacheable({ lease: 'no' as never }), /option "lease"/],
    ['@Cacheable', () => Cacheable({ tll: 5 } as never), /option "tll".*a known option/],
    ['@CachePut', () => CachePut({ ttl: '60' as never }), /Invalid @CachePut option "ttl"/],
    ['@CacheEvict', () => CacheEvict({ allEntries: 1 as never }), /Invalid @CacheEvict option "allEntries"/],
    ['@CacheEvict', () => CacheEvict({ ttl: 5 } as never), /@CacheEvict option "ttl".*a known option/],
  ])('%s on a method: %s', (_, make, message) => {
    expect(() => apply(make() as never)).toThrow(message);
  });

  it.each([
    [() => Cacheable({ ttl: -1 }), /Invalid @Cacheable option "ttl" on Target: -1/],
    [() => Cacheable({ ttl: Number.NaN }), /on Target: NaN/],
    [() => Cacheable({ condition: () => true }), /option "condition" on Target.*only namespace and ttl apply/],
  ])('on a class (the defaults of its methods): %s', (make, message) => {
    expect(() => apply(make() as never, true)).toThrow(message);
  });

  it('accepts what it documents', () => {
    expect(() =>
      apply(Cacheable({ namespace: 'users.v2', key: 'k', ttl: 0, staleWhileRevalidate: 30, lease: false }) as never),
    ).not.toThrow();
    expect(() => apply(Cacheable({ namespace: 'users', ttl: 30 }) as never, true)).not.toThrow();
    expect(() => apply(CacheEvict({ allEntries: true, beforeInvocation: true }) as never)).not.toThrow();
  });
});
