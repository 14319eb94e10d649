import {
  Body,
  Controller,
  Get,
  Headers,
  Injectable,
  NotFoundException,
  Param,
  Post,
  Put,
  Query,
  Res,
  StreamableFile,
} from '@nestjs/common';
import { Cacheable, CacheEvict } from '../../../lib/index.js';

@Injectable()
export class ItemsDb {
  readonly rows = new Map<string, { id: string; name: string }>([
    ['7', { id: '7', name: 'seven' }],
    ['8', { id: '8', name: 'eight' }],
  ]);
  calls: Record<string, number> = {};

  hit(name: string): void {
    this.calls[name] = (this.calls[name] ?? 0) + 1;
  }

  count(name: string): number {
    return this.calls[name] ?? 0;
  }
}

@Controller('items')
@Cacheable({ namespace: 'items', ttl: 60 })
export class ItemsController {
  constructor(private readonly db: ItemsDb) {}

  @Get()
  @Cacheable()
  list(@Query() query: Record<string, string>) {
    this.db.hit('list');
    return { items: [...this.db.rows.values()], query };
  }

  @Get('private/data')
  @Cacheable()
  privateData(@Headers('authorization') auth?: string) {
    this.db.hit('private');
    return { for: auth ?? 'anonymous' };
  }

  @Get('me/profile')
  @Cacheable({ principal: (req: { headers: Record<string, string> }) => req.headers['x-user-id'] })
  me(@Headers('x-user-id') user?: string) {
    this.db.hit('me');
    return { user: user ?? 'anonymous' };
  }

  @Get('files/report')
  @Cacheable()
  file() {
    this.db.hit('file');
    return new StreamableFile(Buffer.from('report body'));
  }

  @Get('raw/response')
  @Cacheable()
  raw(@Res() res: { status(code: number): { send(body: string): void } } & { send?: unknown }) {
    this.db.hit('raw');
    res.status(200).send('raw body');
  }

  @Get('rates/eur')
  @Cacheable({ ttl: 1, staleWhileRevalidate: 30 })
  rate() {
    this.db.hit('rate');
    return { rate: this.db.count('rate') };
  }

  @Get(':id')
  @Cacheable()
  findOne(@Param('id') id: string) {
    this.db.hit('findOne');
    const row = this.db.rows.get(id);
    if (!row) throw new NotFoundException(`item ${id} not found`);
    return row;
  }

  @Post()
  @Cacheable()
  create(@Body() body: { id: string; name: string }) {
    this.db.hit('create');
    this.db.rows.set(body.id, body);
    return body;
  }

  @Put(':id')
  @CacheEvict()
  update(@Param('id') id: string, @Body() body: { name: string }) {
    this.db.hit('update');
    const row = { id, name: body.name };
    this.db.rows.set(id, row);
    return row;
  }
}
