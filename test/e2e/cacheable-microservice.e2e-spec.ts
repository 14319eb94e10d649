import { Controller, type INestApplication } from '@nestjs/common';
import { ClientProxyFactory, MessagePattern, type ClientProxy, Payload, Transport } from '@nestjs/microservices';
import { Test } from '@nestjs/testing';
import { firstValueFrom } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cacheable, CacheEvict, MemcachedModule } from '../../lib/index.js';
import { freePort, MemcachedDaemon, sleep } from '../support/memcached-daemon.js';

const calls: Record<string, number> = {};

@Controller()
class PricesController {
  @MessagePattern('price.get')
  @Cacheable({ namespace: 'prices' })
  price(@Payload() data: { sku: string }) {
    calls[data.sku] = (calls[data.sku] ?? 0) + 1;
    return { sku: data.sku, price: 10 * (calls[data.sku] ?? 0) };
  }

  @MessagePattern('price.reset')
  @CacheEvict({ namespace: 'prices', allEntries: true })
  reset() {
    return true;
  }
}

describe('@Cacheable on microservice message handlers (TCP transport)', () => {
  let daemon: MemcachedDaemon;
  let app: INestApplication;
  let client: ClientProxy;

  beforeAll(async () => {
    daemon = await MemcachedDaemon.start();
    const port = await freePort();
    const moduleRef = await Test.createTestingModule({
      imports: [MemcachedModule.forRoot({ isGlobal: true, servers: daemon.address, logger: false })],
      controllers: [PricesController],
    }).compile();
    app = moduleRef.createNestApplication({ logger: false });
    app.connectMicroservice(
      { transport: Transport.TCP, options: { host: '127.0.0.1', port } },
      { inheritAppConfig: true },
    );
    await app.startAllMicroservices();
    await app.init();
    client = ClientProxyFactory.create({ transport: Transport.TCP, options: { host: '127.0.0.1', port } });
    await client.connect();
  });
  afterAll(async () => {
    await client?.close();
    await app?.close();
    await daemon?.kill();
  });

  it('answers repeated messages with one payload from the cache, keyed by the payload', async () => {
    const first = await firstValueFrom(client.send('price.get', { sku: 'a' }));
    await sleep(15);
    const second = await firstValueFrom(client.send('price.get', { sku: 'a' }));
    const other = await firstValueFrom(client.send('price.get', { sku: 'b' }));
    expect(first).toStrictEqual({ sku: 'a', price: 10 });
    expect(second).toStrictEqual(first);
    expect(other).toStrictEqual({ sku: 'b', price: 10 });
    expect(calls).toStrictEqual({ a: 1, b: 1 });
  });

  it('evicts the namespace from another handler', async () => {
    await firstValueFrom(client.send('price.reset', {}));
    const fresh = await firstValueFrom(client.send('price.get', { sku: 'a' }));
    expect(fresh).toStrictEqual({ sku: 'a', price: 20 });
    expect(calls.a).toBe(2);
  });
});
