import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { AppModule } from './app.module.js';
import { useDemoBusKeys } from './demo-bus-keys.js';
import { freeListenPort } from './listen-port.js';

async function bootstrap() {
  const logger = new Logger('SampleApp');
  const port = await freeListenPort('PORT', 3000);
  useDemoBusKeys();
  const app = await NestFactory.create(AppModule, {
    logger: process.env.LOG_LEVEL === 'debug' ? ['error', 'warn', 'log', 'debug'] : ['error', 'warn', 'log'],
  });
  app.enableShutdownHooks();
  await app.listen(port, '127.0.0.1');
  logger.log(`listening on http://127.0.0.1:${port} (try: curl -i http://127.0.0.1:${port}/users/1)`);
}

bootstrap().catch((error: Error) => {
  new Logger('SampleApp').error(error.message);
  process.exit(1);
});
