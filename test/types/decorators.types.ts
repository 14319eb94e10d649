// Compile-time checks (run by `tsc --noEmit` in test/e2e/package.e2e-spec.ts): the decorators'
// key functions must fit the decorated method's parameters.
import { type ExecutionContext, Get } from '@nestjs/common';
import { Cacheable, CacheEvict, CachePut, type MemcachedModuleOptions } from '../../lib/index.js';
import type { OPTION_TABLE } from '../../lib/config/option-table.js';

export class TypedService {
  @Cacheable({ namespace: 'users', key: (id: string) => id, unless: (result) => result === null })
  find(id: string): Promise<string | null> {
    return Promise.resolve(id);
  }

  // @ts-expect-error the key function takes a number, the method a string
  @Cacheable({ key: (id: number) => String(id) })
  wrongKey(id: string): Promise<string> {
    return Promise.resolve(id);
  }

  // @ts-expect-error keys() must take the method's arguments
  @CacheEvict({ keys: (a: number) => [String(a)] })
  wrongKeys(a: string): Promise<void> {
    return Promise.resolve();
  }

  @CachePut({ key: (user: { id: string }) => user.id })
  save(user: { id: string }): Promise<{ id: string }> {
    return Promise.resolve(user);
  }
}

@Cacheable({ namespace: 'defaults', ttl: 30 })
export class TypedController {
  @Get(':id')
  @Cacheable({ key: (ctx: ExecutionContext) => ctx.switchToHttp().getRequest<{ url: string }>().url })
  findOne(id: string): string {
    return id;
  }
}

// the module's options and the option table name the same options
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
export const optionsMatchTheTable: Same<keyof MemcachedModuleOptions, keyof typeof OPTION_TABLE> = true;
