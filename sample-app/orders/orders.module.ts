import { Controller, Get, Module, NotFoundException, Param, ParseIntPipe } from '@nestjs/common';
import { readMemcachedEnv } from '../../lib/config/index.js';
import { MemcachedClient, MemcachedModule } from '../../lib/index.js';
import { DEMO_BUS_KEYS } from '../demo-bus-keys.js';

/**
 * A second, small service beside the users sample: orders, each showing its user's name, which
 * it asks the users service for over HTTP and caches. It shares the memcached pool under its own
 * key prefix, and follows the users service's `users` namespace over the bus: when the users
 * service evicts `users:/users/7` (an update, a delete), every orders process evicts
 * `user-names:/users/7`, so a renamed user shows up here at once, with no broker code.
 */
const USERS_URL = process.env.SAMPLE_USERS_URL ?? 'http://127.0.0.1:3000';
const USERS_KEY_PREFIX = process.env.SAMPLE_USERS_KEY_PREFIX ?? 'sample:';
const BUS_URL = process.env.MEMCACHED_BUS_URL ?? 'nats://127.0.0.1:4222';

interface Order {
  id: number;
  userId: number;
  total: number;
}

/** Demo orders: order n belongs to user ((n - 1) mod 20) + 1. */
function orderOf(id: number): Order | undefined {
  return id >= 1 && id <= 1000 ? { id, userId: ((id - 1) % 20) + 1, total: id * 10 } : undefined;
}

@Controller('orders')
export class OrdersController {
  constructor(private readonly cache: MemcachedClient) {}

  @Get(':id')
  async findOne(@Param('id', ParseIntPipe) id: number): Promise<Order & { userName: string }> {
    const order = orderOf(id);
    if (!order) throw new NotFoundException(`order ${id} not found`);
    // the same key as the users service's entry for this user, so a followed eviction finds it
    const userName = await this.cache.getOrSet(`/users/${order.userId}`, () => this.fetchUserName(order.userId), {
      namespace: 'user-names',
      ttl: 300,
    });
    return { ...order, userName };
  }

  private async fetchUserName(userId: number): Promise<string> {
    const response = await fetch(`${USERS_URL}/users/${userId}`);
    if (!response.ok) throw new NotFoundException(`user ${userId} not found`);
    return ((await response.json()) as { name: string }).name;
  }
}

@Module({
  imports: [
    MemcachedModule.forRoot({
      isGlobal: true,
      servers: process.env.MEMCACHED_SERVERS ?? '127.0.0.1:11211',
      keyPrefix: 'orders:',
      nearCache: { ttl: 30 },
      bus: {
        url: BUS_URL,
        follow: [{ keyPrefix: USERS_KEY_PREFIX, namespace: 'users', evict: 'user-names' }],
        // following needs keys: the users service signs with the same ones (the demo key by default)
        keys: readMemcachedEnv({
          MEMCACHED_BUS_URL: BUS_URL,
          MEMCACHED_BUS_KEYS: process.env.MEMCACHED_BUS_KEYS ?? DEMO_BUS_KEYS,
        }).bus!.keys,
      },
    }),
  ],
  controllers: [OrdersController],
})
export class OrdersModule {}
