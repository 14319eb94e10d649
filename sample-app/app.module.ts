import { Module } from '@nestjs/common';
import { ConfigModule } from '@nestjs/config';
import { memcachedConfig } from '../lib/config/index.js';
import { MemcachedModule } from '../lib/index.js';
import { DatabaseModule } from './database/database.module.js';
import { ObservabilityModule } from './observability/observability.module.js';
import { UsersModule } from './users/users.module.js';

@Module({
  imports: [
    ConfigModule.forRoot({ isGlobal: true, envFilePath: ['.env'] }),
    MemcachedModule.forRootAsync({ isGlobal: true, ...memcachedConfig.asProvider() }),
    DatabaseModule,
    UsersModule,
    ObservabilityModule,
  ],
})
export class AppModule {}
