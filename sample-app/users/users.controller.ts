import { Body, Controller, Get, NotFoundException, Param, ParseIntPipe, Put } from '@nestjs/common';
import type { User } from './users.repository.js';
import { UsersService } from './users.service.js';

@Controller('users')
export class UsersController {
  constructor(private readonly users: UsersService) {}

  @Get(':id')
  async findOne(@Param('id', ParseIntPipe) id: number): Promise<User> {
    const user = await this.users.findOne(id);
    if (!user) throw new NotFoundException(`user ${id} not found`);
    return user;
  }

  @Put(':id')
  async update(@Param('id', ParseIntPipe) id: number, @Body() patch: Partial<Omit<User, 'id'>>): Promise<User> {
    const user = await this.users.update(id, patch);
    if (!user) throw new NotFoundException(`user ${id} not found`);
    return user;
  }
}
