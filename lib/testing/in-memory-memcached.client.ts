import { ClientCore } from '../client/client-core.js';
import { MemcachedClient } from '../client/memcached.client.js';
import { resolveOptions } from '../config/memcached-options.js';
import type { MemcachedModuleOptions } from '../interfaces/memcached-module-options.interface.js';
import { InMemoryNode } from './in-memory-node.js';

/** A client's parts with its nodes in process memory. */
export class InMemoryClientCore extends ClientCore {
  readonly memoryNodes: InMemoryNode[];

  constructor(options: MemcachedModuleOptions = {}) {
    const nodes: InMemoryNode[] = [];
    const maxItemSize = resolveOptions(options).maxItemSize;
    super({ logger: false, ...options }, (address) => {
      const node = new InMemoryNode(address.label, maxItemSize);
      nodes.push(node);
      return node;
    });
    this.memoryNodes = nodes;
  }
}

/**
 * A `MemcachedClient` whose nodes live in process memory: the same API, key rules, value
 * encoding, TTLs, counters and item size limit, with no server. Used by `MemcachedTestingModule`.
 *
 * @example
 * const cache = new InMemoryMemcachedClient();
 * await cache.set('k', 0);
 * expect(await cache.get('k')).toBe(0);
 */
export class InMemoryMemcachedClient extends MemcachedClient {
  /** @param options see `MemcachedModuleOptions` */
  constructor(options: MemcachedModuleOptions | InMemoryClientCore = {}) {
    super(options instanceof InMemoryClientCore ? options : new InMemoryClientCore(options));
  }

  /** Every key currently stored (as on the wire: prefix, namespace and generation included). */
  storedKeys(): string[] {
    return (this.core as InMemoryClientCore).memoryNodes.flatMap((node) => node.keys());
  }

  override onApplicationBootstrap(): void {}
}
