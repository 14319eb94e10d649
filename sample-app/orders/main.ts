import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { freeListenPort } from '../listen-port.js';
import { OrdersModule } from './orders.module.js';

// The orders service: `npm run start:sample:orders`, beside `MEMCACHED_BUS_URL=nats://127.0.0.1:4222 npm run start:sample`.
// ORDERS_PORT (default 3001), SAMPLE_USERS_URL (the users service, default http://127.0.0.1:3000).
async function bootstrap() {
  const port = await freeListenPort('ORDERS_PORT', 3001);
  const app = await NestFactory.create(OrdersModule, { logger: ['error', 'warn', 'log'] });
  app.enableShutdownHooks();
  await app.listen(port, '127.0.0.1');
  new Logger('OrdersSample').log(`listening on http://127.0.0.1:${port} (try: curl http://127.0.0.1:${port}/orders/7)`);
}

bootstrap().catch((error: Error) => {
  new Logger('OrdersSample').error(error.message);
  process.exit(1);
});
