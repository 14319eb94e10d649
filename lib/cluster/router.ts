import type { LoggerService } from '@nestjs/common';
import type { MemcachedNodeAddress } from '../config/server-list.js';
import type { ConnectionOptions, NodeTransportFactory } from '../transport/node-connection.js';
import { BreakerNode, type NodeStatus } from './breaker-node.js';
import { KetamaRing } from './ketama.js';

export interface RouterOptions {
  hashing: 'ketama' | 'ketama-spy' | 'ketama-plain';
  deadNodePolicy: 'miss' | 'rehash';
  breakerThreshold: number;
  breakerCooldown: number;
  logger: LoggerService | false;
}

/**
 * Owns the nodes and decides which one serves a key: libmemcached's ketama over several nodes,
 * each behind its circuit breaker; while a key's node is down, `miss` keeps the key there (it
 * reads as down) and `rehash` moves it to the next live node on the ring.
 */
export class NodeRouter {
  readonly nodes: BreakerNode[];
  private readonly ring?: KetamaRing;
  private readonly single?: Array<[BreakerNode, undefined]>;

  constructor(
    addresses: readonly MemcachedNodeAddress[],
    transport: NodeTransportFactory,
    connection: ConnectionOptions,
    private readonly options: RouterOptions,
  ) {
    const breaker = { threshold: options.breakerThreshold, cooldown: options.breakerCooldown, logger: options.logger };
    this.nodes = addresses.map((address) => new BreakerNode(transport(address, connection), breaker));
    if (this.nodes.length > 1)
      this.ring = new KetamaRing(addresses, {
        spy: options.hashing === 'ketama-spy',
        plain: options.hashing === 'ketama-plain',
      });
    else this.single = [[this.nodes[0], undefined]];
  }

  /** The node that serves a wire key now. */
  nodeFor(wire: string): BreakerNode {
    if (this.ring === undefined) return this.nodes[0];
    const owner = this.nodes[this.ring.locate(wire)];
    if (!owner.isOpen || this.options.deadNodePolicy === 'miss') return owner;
    const next = this.ring.locate(wire, (index) => this.nodes[index].isOpen);
    return next < 0 ? owner : this.nodes[next];
  }

  /**
   * True while `rehash` sends some node's keys elsewhere: an invalidation made now misses what
   * that node holds, and a debt paid now would land on the stand-in, not on it.
   */
  get rehashing(): boolean {
    if (this.options.deadNodePolicy !== 'rehash') return false;
    for (const node of this.nodes) if (node.isOpen) return true;
    return false;
  }

  /** True when `rehash` sends this wire key to another node than its own, which is down. */
  rehashed(wire: string): boolean {
    if (this.options.deadNodePolicy !== 'rehash' || this.ring === undefined) return false;
    return this.nodes[this.ring.locate(wire)].isOpen;
  }

  /** True when every node answers (its breaker is closed). */
  get allUp(): boolean {
    for (const node of this.nodes) if (node.isOpen) return false;
    return true;
  }

  /** True when a wire key's node is down and no other node serves it: skip the cache at once. */
  isDown(wire: string): boolean {
    return this.nodeFor(wire).isOpen;
  }

  /** Wire keys grouped by the node that serves them, as positions in `wires`. */
  group(wires: readonly string[]): Array<[BreakerNode, number[] | undefined]> {
    // one node: every position, without building an index list (or any list)
    if (this.single !== undefined) return this.single;
    const byNode = new Map<BreakerNode, number[]>();
    for (let i = 0; i < wires.length; i++) {
      const node = this.nodeFor(wires[i]);
      const positions = byNode.get(node);
      if (positions) positions.push(i);
      else byNode.set(node, [i]);
    }
    return [...byNode];
  }

  status(): NodeStatus[] {
    return this.nodes.map((node) => node.status());
  }

  close(): void {
    for (const node of this.nodes) node.close();
  }
}
