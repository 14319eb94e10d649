import { Injectable, Module } from '@nestjs/common';
import { ConfigModule, ConfigService } from '@nestjs/config';
import { Test } from '@nestjs/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { InjectMemcached, MemcachedClient, MemcachedModule, type MemcachedModuleOptions } from '../../lib/index.js';
import { memcachedConfig } from '../../lib/config/index.js';
import { freePort, MemcachedDaemon, sleep } from '../support/memcached-daemon.js';
import { rawGet, textCommand } from '../support/text-protocol.js';

const silent = { log() {}, error() {}, warn() {} };

describe('MemcachedModule', () => {
  let daemon: MemcachedDaemon;
  const savedEnv = { ...process.env };

  beforeAll(async () => {
    daemon = await MemcachedDaemon.start();
  });
  afterAll(async () => {
    await daemon?.kill();
  });
  afterEach(() => {
    process.env = { ...savedEnv };
  });

  async function roundTrip(client: MemcachedClient, key = 'probe') {
    await client.set(key, { at: key });
    return client.get(key);
  }

  it('forRoot provides a working MemcachedClient', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [MemcachedModule.forRoot({ servers: daemon.address, keyPrefix: 'fr:', logger: silent })],
    }).compile();
    const client = moduleRef.get(MemcachedClient);
    await expect(roundTrip(client)).resolves.toStrictEqual({ at: 'probe' });
    await expect(rawGet(daemon.port, 'fr:probe')).resolves.toBeDefined();
    await moduleRef.close();
  });

  it('forRootAsync with useFactory and ConfigService', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [
        ConfigModule.forRoot({ ignoreEnvFile: true, load: [() => ({ CACHE_ADDR: daemon.address })] }),
        MemcachedModule.forRootAsync({
          imports: [ConfigModule],
          inject: [ConfigService],
          useFactory: (config: ConfigService) => ({
            servers: config.getOrThrow<string>('CACHE_ADDR'),
            keyPrefix: 'cfg:',
            logger: silent,
          }),
        }),
      ],
    }).compile();
    await expect(roundTrip(moduleRef.get(MemcachedClient))).resolves.toStrictEqual({ at: 'probe' });
    await expect(rawGet(daemon.port, 'cfg:probe')).resolves.toBeDefined();
    await moduleRef.close();
  });

  it('forRootAsync(memcachedConfig.asProvider()) reads MEMCACHED_* variables', async () => {
    process.env.MEMCACHED_SERVERS = daemon.address;
    process.env.MEMCACHED_KEY_PREFIX = 'env:';
    process.env.MEMCACHED_TTL = '120';
    const moduleRef = await Test.createTestingModule({
      imports: [
        ConfigModule.forRoot({ ignoreEnvFile: true }),
        MemcachedModule.forRootAsync(memcachedConfig.asProvider()),
      ],
    }).compile();
    const client = moduleRef.get(MemcachedClient);
    await expect(roundTrip(client, 'asprovider')).resolves.toStrictEqual({ at: 'asprovider' });
    await expect(rawGet(daemon.port, 'env:asprovider')).resolves.toBeDefined();
    await moduleRef.close();
  });

  it('forRootAsync with useClass and useExisting', async () => {
    @Injectable()
    class CacheConfig {
      createMemcachedOptions(): MemcachedModuleOptions {
        return { servers: daemon.address, keyPrefix: 'cls:', logger: silent };
      }
    }
    @Module({ providers: [CacheConfig], exports: [CacheConfig] })
    class CacheConfigModule {}

    const viaClass = await Test.createTestingModule({
      imports: [MemcachedModule.forRootAsync({ useClass: CacheConfig })],
    }).compile();
    await expect(roundTrip(viaClass.get(MemcachedClient), 'cls')).resolves.toStrictEqual({ at: 'cls' });
    await viaClass.close();

    const viaExisting = await Test.createTestingModule({
      imports: [MemcachedModule.forRootAsync({ imports: [CacheConfigModule], useExisting: CacheConfig })],
    }).compile();
    await expect(roundTrip(viaExisting.get(MemcachedClient), 'existing')).resolves.toStrictEqual({ at: 'existing' });
    await expect(rawGet(daemon.port, 'cls:existing')).resolves.toBeDefined();
    await viaExisting.close();
  });

  it('isGlobal makes the client injectable in modules that do not import MemcachedModule; named clients are separate', async () => {
    @Injectable()
    class Consumer {
      constructor(
        readonly cache: MemcachedClient,
        @InjectMemcached('sessions') readonly sessions: MemcachedClient,
        @InjectMemcached() readonly sameAsDefault: MemcachedClient,
      ) {}
    }
    @Module({ providers: [Consumer] })
    class FeatureModule {}

    const moduleRef = await Test.createTestingModule({
      imports: [
        MemcachedModule.forRoot({ isGlobal: true, servers: daemon.address, keyPrefix: 'main:', logger: silent }),
        MemcachedModule.forRoot({
          isGlobal: true,
          name: 'sessions',
          servers: daemon.address,
          keyPrefix: 'sess:',
          logger: silent,
        }),
        FeatureModule,
      ],
    }).compile();
    const consumer = moduleRef.get(Consumer);
    expect(consumer.cache).not.toBe(consumer.sessions);
    expect(consumer.sameAsDefault).toBe(consumer.cache);
    await consumer.cache.set('who', 'main');
    await consumer.sessions.set('who', 'sessions');
    await expect(consumer.cache.get('who')).resolves.toBe('main');
    await expect(consumer.sessions.get('who')).resolves.toBe('sessions');
    await expect(rawGet(daemon.port, 'sess:who')).resolves.toBeDefined();
    await moduleRef.close();
  });

  it.each([
    [{ ttl: -1 }, /option "ttl": -1/],
    [{ timeout: 0 }, /option "timeout": 0/],
    [{ servers: 'localhost:99999' }, /option "servers": "localhost:99999".*port/],
    [{ servers: 'cache-1:11211:heavy' }, /weight "heavy"/],
    [{ servers: [] }, /option "servers"/],
    [{ maxItemSize: 10 }, /option "maxItemSize": 10/],
    [{ timeOut: 100 }, /Unknown MemcachedModule option "timeOut"/],
  ])('fails at startup on %j, naming the option and the value', async (options, message) => {
    await expect(
      Test.createTestingModule({ imports: [MemcachedModule.forRoot(options as MemcachedModuleOptions)] }).compile(),
    ).rejects.toThrow(message);
  });

  it.each([
    ['MEMCACHED_TIMEOUT', 'soon', /Invalid MEMCACHED_TIMEOUT="soon"/],
    ['MEMCACHED_TTL', '-5', /Invalid MEMCACHED_TTL="-5"/],
    ['MEMCACHED_SERVERS', 'a:1,b:x', /"b:x".*port "x"/],
    ['MEMCACHED_KEEP_ALIVE', 'maybe', /Invalid MEMCACHED_KEEP_ALIVE="maybe"/],
    ['MEMCACHED_MAX_ITEM_SIZE', '1g', /Invalid MEMCACHED_MAX_ITEM_SIZE="1g"/],
  ])('fails at startup when %s=%s, naming the variable and the value', async (name, value, message) => {
    process.env[name] = value;
    await expect(
      Test.createTestingModule({
        imports: [
          ConfigModule.forRoot({ ignoreEnvFile: true }),
          MemcachedModule.forRootAsync(memcachedConfig.asProvider()),
        ],
      }).compile(),
    ).rejects.toThrow(message);
  });

  it('boots quickly with no memcached listening, and reports it once', async () => {
    const port = await freePort();
    const warnings: string[] = [];
    const started = performance.now();
    const moduleRef = await Test.createTestingModule({
      imports: [
        MemcachedModule.forRoot({
          servers: `127.0.0.1:${port}`,
          logger: { ...silent, warn: (m: string) => warnings.push(m) },
        }),
      ],
    }).compile();
    const app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    expect(performance.now() - started).toBeLessThan(2000);
    await sleep(100);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(new RegExp(`memcached 127.0.0.1:${port} is not reachable`));
    await expect(app.get(MemcachedClient).getOrSet('k', () => 'fallback')).resolves.toBe('fallback');
    await app.close();
  });

  it('an app closed right after it started says nothing of nodes it never failed to reach', async () => {
    const warnings: string[] = [];
    const moduleRef = await Test.createTestingModule({
      imports: [
        MemcachedModule.forRoot({
          servers: daemon.address,
          logger: { ...silent, warn: (m: string) => warnings.push(m) },
        }),
      ],
    }).compile();
    const app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    await app.close();
    await sleep(200);
    expect(warnings).toStrictEqual([]);
  });

  it('closes its sockets on application shutdown', async () => {
    const connections = async () =>
      Number(/STAT curr_connections (\d+)/.exec(await textCommand(daemon.port, 'stats\r\n'))![1]);
    const before = await connections();
    const moduleRef = await Test.createTestingModule({
      imports: [MemcachedModule.forRoot({ servers: daemon.address, logger: silent })],
    }).compile();
    const app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    await app.get(MemcachedClient).set('x', 1);
    expect(await connections()).toBe(before + 1);
    await app.close();
    await sleep(100);
    expect(await connections()).toBe(before);
    await expect(app.get(MemcachedClient).get('x')).rejects.toMatchObject({ code: 'CLOSED' });
  });
});
