import { MemcachedConfigError } from '../config/memcached-options.js';
import type { BusTransport } from '../interfaces/bus-transport.interface.js';
import { peerMissing } from '../memcached.messages.js';

/** A broker address and channel, as the options give them. */
export interface BrokerTarget {
  url: string;
  channel: string;
}

/** The transport named in the options; its broker client is loaded only now (an optional peer). */
export async function createBusTransport(
  name: 'nats' | 'redis' | 'rabbitmq',
  target: BrokerTarget,
): Promise<BusTransport> {
  switch (name) {
    case 'nats':
      return new NatsTransport(
        await load<typeof import('@nats-io/transport-node')>('@nats-io/transport-node', name),
        target,
      );
    case 'redis':
      return new RedisTransport(await load<typeof import('ioredis')>('ioredis', name), target);
    case 'rabbitmq':
      return new RabbitTransport(await load<typeof import('amqplib')>('amqplib', name), target);
  }
}

async function load<T>(pkg: string, transport: string): Promise<T> {
  try {
    return (await import(pkg)) as T;
  } catch (error) {
    throw new MemcachedConfigError(peerMissing(`The "${transport}" bus transport`, pkg), { cause: error });
  }
}

/** NATS core: a plain subscription (every subscriber gets every message); the client reconnects. */
export class NatsTransport implements BusTransport {
  private connection: import('@nats-io/transport-node').NatsConnection | undefined;
  private closing = false;

  constructor(
    private readonly nats: typeof import('@nats-io/transport-node'),
    private readonly target: BrokerTarget,
  ) {}

  async start(deliver: (data: string | Uint8Array) => void, state: (up: boolean) => void): Promise<void> {
    const url = new URL(this.target.url);
    const nc = await this.nats.connect({
      servers: `${url.hostname}:${url.port || 4222}`,
      user: url.username ? decodeURIComponent(url.username) : undefined,
      pass: url.password ? decodeURIComponent(url.password) : undefined,
      name: 'nestjs-memcached',
      reconnect: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      pingInterval: 10_000,
    });
    this.connection = nc;
    nc.subscribe(this.target.channel, {
      callback: (error, msg) => {
        if (error === null) deliver(msg.data);
      },
    });
    await nc.flush();
    void (async () => {
      for await (const status of nc.status()) {
        if (status.type === 'disconnect') state(false);
        else if (status.type === 'reconnect') state(true);
      }
    })().catch(() => undefined);
    void nc.closed().then(() => state(false));
    state(true);
  }

  async publish(data: string): Promise<void> {
    if (this.connection === undefined || this.connection.isClosed()) throw new Error('not connected');
    this.connection.publish(this.target.channel, data);
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    await this.connection?.close().catch(() => undefined);
  }
}

/** Redis pub/sub: one connection subscribes, one publishes; ioredis reconnects and resubscribes. */
export class RedisTransport implements BusTransport {
  private subscriber: import('ioredis').Redis | undefined;
  private publisher: import('ioredis').Redis | undefined;

  constructor(
    private readonly ioredis: typeof import('ioredis'),
    private readonly target: BrokerTarget,
  ) {}

  async start(deliver: (data: string | Uint8Array) => void, state: (up: boolean) => void): Promise<void> {
    const Redis = this.ioredis.Redis;
    const options = {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      retryStrategy: (n: number) => Math.min(50 * n, 1000),
    };
    const sub = (this.subscriber = new Redis(this.target.url, options));
    const pub = (this.publisher = new Redis(this.target.url, options));
    for (const connection of [sub, pub]) connection.on('error', () => undefined);
    sub.on('message', (channel: string, message: string) => channel === this.target.channel && deliver(message));
    sub.on('close', () => state(false));
    try {
      await Promise.all([sub.connect(), pub.connect()]);
      await sub.subscribe(this.target.channel);
    } catch (error) {
      sub.disconnect();
      pub.disconnect();
      throw error;
    }
    // after a reconnect, ioredis subscribes again before it reports ready
    sub.on('ready', () => state(true));
    state(true);
  }

  async publish(data: string): Promise<void> {
    if (this.publisher === undefined) throw new Error('not connected');
    await this.publisher.publish(this.target.channel, data);
  }

  async close(): Promise<void> {
    this.subscriber?.disconnect();
    this.publisher?.disconnect();
  }
}

/**
 * RabbitMQ: a fanout exchange named after the channel and one exclusive, auto-deleted queue per
 * process bound to it (a queue shared by replicas would give each message to one of them only).
 * amqplib does not reconnect, so this does, every 500 ms while the broker is away.
 */
export class RabbitTransport implements BusTransport {
  private connection: import('amqplib').ChannelModel | undefined;
  private channel: import('amqplib').Channel | undefined;
  private closing = false;
  private retry: NodeJS.Timeout | undefined;

  constructor(
    private readonly amqp: typeof import('amqplib'),
    private readonly target: BrokerTarget,
  ) {}

  async start(deliver: (data: string | Uint8Array) => void, state: (up: boolean) => void): Promise<void> {
    await this.open(deliver, state);
  }

  private async open(deliver: (data: string | Uint8Array) => void, state: (up: boolean) => void): Promise<void> {
    const connection = await this.amqp.connect(this.target.url);
    try {
      const channel = await connection.createChannel();
      await channel.assertExchange(this.target.channel, 'fanout', { durable: false });
      const { queue } = await channel.assertQueue('', { exclusive: true, autoDelete: true, durable: false });
      await channel.bindQueue(queue, this.target.channel, '');
      await channel.consume(queue, (msg) => msg && deliver(msg.content), { noAck: true });
      this.connection = connection;
      this.channel = channel;
    } catch (error) {
      await connection.close().catch(() => undefined);
      throw error;
    }
    connection.on('error', () => undefined);
    connection.on('close', () => {
      this.channel = undefined;
      state(false);
      this.reconnect(deliver, state);
    });
    state(true);
  }

  private reconnect(deliver: (data: string | Uint8Array) => void, state: (up: boolean) => void): void {
    if (this.closing) return;
    this.retry = setTimeout(() => {
      this.open(deliver, state).catch(() => this.reconnect(deliver, state));
    }, 500);
    this.retry.unref();
  }

  async publish(data: string): Promise<void> {
    if (this.channel === undefined) throw new Error('not connected');
    this.channel.publish(this.target.channel, '', Buffer.from(data));
  }

  async close(): Promise<void> {
    this.closing = true;
    if (this.retry) clearTimeout(this.retry);
    await this.connection?.close().catch(() => undefined);
  }
}
