import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { OrdersModule } from './orders.module.js';

// The orders service: `npm run start:sample:orders`, beside `MEMCACHED_BUS_URL=nats://127.0.0.1:4222 npm run start:sample`.
async function bootstrap() {
  const app = await NestFactory.create(OrdersModule, { logger: ['error', 'warn', 'log'] });
  app.enableShutdownHooks();
  const port = Number(process.env.ORDERS_PORT ?? 3001);
  await app.listen(port, '127.0.0.1');
  new Logger('OrdersSample').log(`listening on http://127.0.0.1:${port} (try: curl http://127.0.0.1:${port}/orders/7)`);
}

void bootstrap();
