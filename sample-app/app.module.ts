import { Module } from '@nestjs/common';
import { ConfigModule } from '@nestjs/config';
import { MemcachedModule, memcachedConfig } from '../lib/index.js';
import { UsersModule } from './users/users.module.js';

@Module({
  imports: [
    ConfigModule.forRoot({ isGlobal: true, envFilePath: ['.env'] }),
    MemcachedModule.forRootAsync({ isGlobal: true, ...memcachedConfig.asProvider() }),
    UsersModule,
  ],
})
export class AppModule {}
