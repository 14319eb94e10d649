/**
 * One broker connection on one channel, for the invalidation bus. Every process subscribes, so
 * every process receives every message (fan-out), its own included. An implementation reconnects
 * by itself and reports each change of its connection through `state`. Plug another broker by
 * implementing it (Kafka: a consumer group per process, so each one receives every message).
 *
 * @example
 * bus: { transport: new MyKafkaTransport({ brokers: ['kafka:9092'], groupId: `cache-${hostname()}` }) }
 */
export interface BusTransport {
  /** Connects and subscribes; resolves once subscribed, rejects when the first attempt fails. */
  start(deliver: (data: string | Uint8Array) => void, state: (up: boolean) => void): Promise<void>;
  /** Sends one message to every subscriber. */
  publish(data: string): Promise<void>;
  close(): Promise<void>;
}
