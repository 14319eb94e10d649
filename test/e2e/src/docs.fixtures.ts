import {
  type CanActivate,
  Controller,
  type ExecutionContext,
  Get,
  Header,
  Injectable,
  NotFoundException,
  Param,
  Put,
  Req,
  UseGuards,
} from '@nestjs/common';
import { Cacheable, CacheEvict } from '../../../lib/index.js';

type AnyRequest = { headers: Record<string, string | string[] | undefined>; user?: { id: string } };

/** Who the caller is: `Authorization: Bearer <user>` (a test stand-in for a real auth guard). */
@Injectable()
export class BearerGuard implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    const request = context.switchToHttp().getRequest<AnyRequest>();
    const auth = request.headers.authorization;
    if (typeof auth === 'string' && auth.startsWith('Bearer ')) request.user = { id: auth.slice(7) };
    return true;
  }
}

@Injectable()
export class DocsDb {
  version = 1;
  calls = 0;
}

/** Everything a request carries that could make a response personal, echoed back. */
function echo(request: AnyRequest) {
  const {
    host: _h,
    connection: _c,
    'content-length': _l,
    'user-agent': _u,
    'accept-encoding': _e,
    accept: _a,
    ...rest
  } = request.headers;
  return rest;
}

@Controller()
@UseGuards(BearerGuard)
@Cacheable({ namespace: 'docs', ttl: 60 })
export class DocsController {
  constructor(private readonly db: DocsDb) {}

  /** A private document: each caller gets their own cached variant. */
  @Get('docs/:id')
  @Cacheable({ principal: (request: AnyRequest) => request.user?.id })
  doc(@Param('id') id: string, @Req() request: AnyRequest) {
    this.db.calls++;
    if (id === '404') throw new NotFoundException();
    const owner = request.user?.id ?? 'anonymous';
    return { id, owner, body: `${owner}'s copy of doc ${id}`, version: this.db.version };
  }

  @Put('docs/:id')
  @CacheEvict()
  update(@Param('id') id: string) {
    this.db.version++;
    return { id, version: this.db.version };
  }

  /** No principal: the response echoes the request, so a shared entry would leak it. */
  @Get('echo/:id')
  @Cacheable()
  echo(@Param('id') id: string, @Req() request: AnyRequest) {
    this.db.calls++;
    return { id, saw: echo(request) };
  }

  @Get('shared/:id')
  @Cacheable({ public: true })
  shared(@Param('id') id: string) {
    this.db.calls++;
    return { id, version: this.db.version };
  }

  @Get('tracked/:id')
  @Cacheable({ ignoreCookies: ['_ga', /^_pk_/] })
  tracked(@Param('id') id: string, @Req() request: AnyRequest) {
    this.db.calls++;
    return { id, saw: echo(request) };
  }

  @Get('i18n/:id')
  @Header('Vary', 'Accept-Language')
  @Cacheable()
  greeting(@Param('id') id: string, @Req() request: AnyRequest) {
    this.db.calls++;
    const lang = String(request.headers['accept-language'] ?? 'en');
    return { id, text: lang.startsWith('fr') ? 'Bonjour' : lang.startsWith('de') ? 'Hallo' : 'Hello' };
  }

  @Get('vary-star')
  @Header('Vary', '*')
  @Cacheable()
  varyStar() {
    this.db.calls++;
    return { n: this.db.calls };
  }

  @Get('cc-private')
  @Header('Cache-Control', 'private, max-age=60')
  @Cacheable()
  ccPrivate() {
    this.db.calls++;
    return { n: this.db.calls };
  }

  @Get('cc-no-store')
  @Header('Cache-Control', 'no-store')
  @Cacheable()
  ccNoStore() {
    this.db.calls++;
    return { n: this.db.calls };
  }

  @Get('sets-cookie')
  @Header('Set-Cookie', 'sid=abc; HttpOnly')
  @Cacheable()
  setsCookie() {
    this.db.calls++;
    return { n: this.db.calls };
  }
}
