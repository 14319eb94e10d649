import { Injectable, Logger } from '@nestjs/common';
import { MemcachedClient } from '../../lib/index.js';
import { type User, UsersRepository } from './users.repository.js';

@Injectable()
export class UsersService {
  private readonly logger = new Logger(UsersService.name);

  constructor(
    private readonly cache: MemcachedClient,
    private readonly repo: UsersRepository,
  ) {}

  async findOne(id: number): Promise<User | null> {
    let miss = false;
    const user = await this.cache.getOrSet(
      String(id),
      () => {
        miss = true;
        return this.repo.findOne(id);
      },
      { namespace: 'users', ttl: 300 },
    );
    this.logger.debug(`GET user ${id}: cache ${miss ? 'MISS' : 'HIT'}`);
    return user;
  }

  async update(id: number, patch: Partial<Omit<User, 'id'>>): Promise<User | null> {
    const user = await this.repo.update(id, patch);
    await this.cache.delete(String(id), { namespace: 'users' }).catch(() => undefined);
    return user;
  }
}
