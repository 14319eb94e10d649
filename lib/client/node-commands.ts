import { PENDING } from '../transport/node-connection.js';
import { buildRequest, Opcode, Status } from '../transport/protocol.js';
import type { Operations } from './operations.js';

// commands addressed to every node rather than to a key's node

export interface NodePing {
  node: string;
  ok: boolean;
  version?: string;
  latencyMs?: number;
  error?: string;
}

/** Removes every item on every node (`flush_all`). */
export async function flushAll(ops: Operations): Promise<void> {
  await Promise.all(
    ops.router.nodes.map((node) => {
      const seq = ops.nextSeq();
      return ops.send(node, 'flush', seq, buildRequest(Opcode.Flush, '', null, null, seq), {
        idempotent: true,
        onResponse: (res) => {
          if (res.header.status !== Status.Ok) throw ops.serverError('flush', '', res.header.status, node);
        },
      });
    }),
  );
}

/** memcached's own `stats`, per node. */
export async function serverStats(ops: Operations): Promise<Record<string, Record<string, string>>> {
  const entries = await Promise.all(
    ops.router.nodes.map(async (node) => {
      const seq = ops.nextSeq();
      const acc: Record<string, string> = {};
      const stats = await ops.send(node, 'serverStats', seq, buildRequest(Opcode.Stat, '', null, null, seq), {
        quiet: true,
        idempotent: true,
        onResponse(res) {
          if (res.header.keyLength === 0) return acc;
          acc[res.key.toString('latin1')] = res.val.toString('latin1');
          return PENDING;
        },
      });
      return [node.label, stats] as const;
    }),
  );
  return Object.fromEntries(entries);
}

/**
 * Asks every node for its version and for a `noop`, which (unlike `version`) needs SASL
 * authentication, so a node that refuses our credentials is reported as such. Never rejects.
 */
export function pingAll(ops: Operations): Promise<NodePing[]> {
  return Promise.all(
    ops.router.nodes.map(async (node): Promise<NodePing> => {
      const started = performance.now();
      const versionSeq = ops.nextSeq();
      const noopSeq = ops.nextSeq();
      const version = ops.send(node, 'ping', versionSeq, buildRequest(Opcode.Version, '', null, null, versionSeq), {
        idempotent: true,
        onResponse: (res) => res.val.toString('latin1'),
      });
      const noop = ops.send(node, 'ping', noopSeq, buildRequest(Opcode.Noop, '', null, null, noopSeq), {
        idempotent: true,
        onResponse: () => true,
      });
      const [v, n] = await Promise.allSettled([version, noop]);
      const failed = n.status === 'rejected' ? n : v.status === 'rejected' ? v : undefined;
      if (failed) return { node: node.label, ok: false, error: (failed.reason as Error).message };
      return {
        node: node.label,
        ok: true,
        version: (v as PromiseFulfilledResult<string>).value,
        latencyMs: performance.now() - started,
      };
    }),
  );
}
