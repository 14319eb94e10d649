import {
  Body,
  Controller,
  DefaultValuePipe,
  Delete,
  Get,
  HttpCode,
  NotFoundException,
  Param,
  ParseIntPipe,
  Post,
  Put,
  Query,
} from '@nestjs/common';
import { Cacheable, CacheEvict } from '../../lib/index.js';
import { type User, type UserInput, UsersService } from './users.service.js';

@Controller()
export class UsersController {
  constructor(private readonly users: UsersService) {}

  /** Cached per path: `X-Cache: MISS`, then `HIT`. */
  @Get('users/:id')
  @Cacheable({ namespace: 'users', ttl: 300 })
  async findOne(@Param('id', ParseIntPipe) id: number): Promise<User> {
    const user = await this.users.findOne(id);
    if (!user) throw new NotFoundException(`user ${id} not found`);
    return user;
  }

  /** Cached per page (path + sorted query); every write bumps the whole namespace. */
  @Get('users')
  @Cacheable({ namespace: 'user-lists', ttl: 60 })
  list(
    @Query('page', new DefaultValuePipe(1), ParseIntPipe) page: number,
    @Query('limit', new DefaultValuePipe(20), ParseIntPipe) limit: number,
  ): Promise<User[]> {
    return this.users.list(Math.max(page, 1), Math.min(Math.max(limit, 1), 100));
  }

  @Post('users')
  @CacheEvict({ namespace: 'user-lists', allEntries: true })
  async create(@Body() input: UserInput): Promise<User> {
    const user = await this.users.create(input);
    await this.users.countriesChanged();
    return user;
  }

  /** Evicts `GET /users/:id` (its own path), the lists and the country counts. */
  @Put('users/:id')
  @CacheEvict({ namespace: 'users' })
  @CacheEvict({ namespace: 'user-lists', allEntries: true })
  async update(@Param('id', ParseIntPipe) id: number, @Body() patch: Partial<UserInput>): Promise<User> {
    const user = await this.users.update(id, patch);
    if (!user) throw new NotFoundException(`user ${id} not found`);
    if (patch.country) await this.users.countriesChanged();
    return user;
  }

  @Delete('users/:id')
  @HttpCode(204)
  @CacheEvict({ namespace: 'users' })
  @CacheEvict({ namespace: 'user-lists', allEntries: true })
  async remove(@Param('id', ParseIntPipe) id: number): Promise<void> {
    if (!(await this.users.remove(id))) throw new NotFoundException(`user ${id} not found`);
    await this.users.countriesChanged();
  }

  /** Served by a cached service method (the provider path). */
  @Get('stats/countries')
  countries(): Promise<Record<string, number>> {
    return this.users.countsByCountry();
  }
}
