import { type CallHandler, type ExecutionContext, Inject, Injectable, type NestInterceptor } from '@nestjs/common';
import type { Observable } from 'rxjs';
import { CACHE_INTERCEPTOR, SERVE_DECORATED } from '../memcached.constants.js';

/**
 * What the cache decorators attach to controller routes: it hands every call to the interceptor
 * registered under `CACHE_INTERCEPTOR` (`CacheInterceptor`, or the subclass given to the module as
 * its `interceptor` extra), so a subclass replaces the default instead of running beside it.
 */
@Injectable()
export class CacheInterceptorDelegate implements NestInterceptor {
  constructor(@Inject(CACHE_INTERCEPTOR) private readonly interceptor: NestInterceptor) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const interceptor = this.interceptor as NestInterceptor & { [SERVE_DECORATED]?: NestInterceptor['intercept'] };
    const serve = interceptor[SERVE_DECORATED];
    // a CacheInterceptor serves the route's own plan; any other interceptor given to the module, its intercept
    if (typeof serve === 'function') return serve.call(interceptor, context, next) as Observable<unknown>;
    return interceptor.intercept(context, next) as Observable<unknown>;
  }
}
