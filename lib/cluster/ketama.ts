import * as crypto from 'node:crypto';
import { DEFAULT_PORT } from '../config/server-list.js';

export interface KetamaNode {
  host: string;
  port: number;
  weight: number;
}

export interface KetamaOptions {
  /** libmemcached's KETAMA_SPY point names (`/host:port-i`). Default false. */
  spy?: boolean;
  /**
   * libmemcached's unweighted ketama (`MEMCACHED_BEHAVIOR_KETAMA`, pylibmc's `{"ketama": True}`):
   * 100 points per server, each the one-at-a-time hash of its name, keys hashed the same way;
   * weights are ignored. Default false (weighted MD5 ketama).
   */
  plain?: boolean;
}

const POINTS_PER_SERVER = 160;
const POINTS_PER_HASH = 4;
const PLAIN_POINTS_PER_SERVER = 100;

/**
 * A weighted ketama continuum, byte-compatible with libmemcached's weighted ketama
 * (`update_continuum`): per server `floor(float(w/W) * 160/4 * N + 1e-10) * 4` points, named
 * `host-i` (port left out when it is 11211) or `/host:port-i` in SPY mode, four points per MD5
 * digest read little-endian, ties to the lower server index, lookups wrapping around.
 */
export class KetamaRing {
  private readonly points: Uint32Array;
  private readonly owners: Uint16Array;
  private readonly hash: (key: string) => number;

  constructor(nodes: readonly KetamaNode[], options: KetamaOptions = {}) {
    if (nodes.length === 0) throw new RangeError('a ketama ring needs at least one node');
    const total = nodes.reduce((sum, n) => sum + n.weight, 0);
    const entries: Array<{ point: number; owner: number }> = [];
    this.hash = options.plain ? oneAtATime : ketamaHash;
    nodes.forEach((node, index) => {
      if (options.plain) {
        for (let i = 0; i < PLAIN_POINTS_PER_SERVER; i++)
          entries.push({ point: oneAtATime(pointName(node, i, options.spy)), owner: index });
        return;
      }
      const pct = Math.fround(node.weight / total);
      const scaled = Math.fround(Math.fround(Math.fround(pct * POINTS_PER_SERVER) / 4) * Math.fround(nodes.length));
      const count = Math.floor(scaled + 0.0000000001) * POINTS_PER_HASH;
      for (let i = 0; i < count / POINTS_PER_HASH; i++) {
        const digest = crypto
          .createHash('md5')
          .update(pointName(node, i, options.spy))
          .digest();
        for (let h = 0; h < POINTS_PER_HASH; h++) {
          entries.push({ point: digest.readUInt32LE(h * 4), owner: index });
        }
      }
    });
    entries.sort((a, b) => a.point - b.point || a.owner - b.owner);
    this.points = Uint32Array.from(entries, (e) => e.point);
    this.owners = Uint16Array.from(entries, (e) => e.owner);
  }

  /** How many points the ring holds. */
  get size(): number {
    return this.points.length;
  }

  /**
   * The node index owning `key`. With `skip`, the first node clockwise on the ring that is not
   * skipped (libmemcached's behaviour when a server is ejected); -1 when every node is skipped.
   */
  locate(key: string, skip?: (index: number) => boolean): number {
    const start = this.pointIndex(this.hash(key));
    const owner = this.owners[start];
    if (!skip || !skip(owner)) return owner;
    for (let i = 1; i < this.points.length; i++) {
      const candidate = this.owners[(start + i) % this.points.length];
      if (!skip(candidate)) return candidate;
    }
    return -1;
  }

  /** The index of the first point at or after `hash`, wrapping to 0 past the last one. */
  pointIndex(hash: number): number {
    const points = this.points;
    let lo = 0;
    let hi = points.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (points[mid] < hash) lo = mid + 1;
      else hi = mid;
    }
    return lo === points.length ? 0 : lo;
  }

  pointAt(index: number): number {
    return this.points[index];
  }
}

/** A point's name: `host-i` (port left out when it is 11211), `host:port-i`, or SPY's `/host:port-i`. */
function pointName(node: KetamaNode, i: number, spy = false): string {
  if (spy) return `/${node.host}:${node.port}-${i}`;
  return node.port === DEFAULT_PORT ? `${node.host}-${i}` : `${node.host}:${node.port}-${i}`;
}

/**
 * libhashkit's one-at-a-time hash over the UTF-8 bytes, each read as a C `char` (signed on
 * x86-64 and on the builds the vectors come from), as libmemcached does.
 */
export function oneAtATime(text: string): number {
  const bytes = Buffer.from(text, 'utf8');
  let value = 0;
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i];
    value = (value + (byte < 0x80 ? byte : byte | 0xffffff00)) >>> 0;
    value = (value + (value << 10)) >>> 0;
    value = (value ^ (value >>> 6)) >>> 0;
  }
  value = (value + (value << 3)) >>> 0;
  value = (value ^ (value >>> 11)) >>> 0;
  value = (value + (value << 15)) >>> 0;
  return value;
}

// crypto.hash (Node 20.12+, 21.7+) hashes without creating a Hash object per key, several times faster
const oneShot = (crypto as { hash?: (algorithm: string, data: string, encoding: 'hex') => string }).hash;

/** libmemcached's MD5 key hash: the first four digest bytes, little-endian. */
export function ketamaHash(key: string): number {
  if (oneShot === undefined) return crypto.createHash('md5').update(key).digest().readUInt32LE(0);
  const bigEndian = parseInt(oneShot('md5', key, 'hex').slice(0, 8), 16);
  return (
    (((bigEndian & 0xff) << 24) | ((bigEndian & 0xff00) << 8) | ((bigEndian >>> 8) & 0xff00) | (bigEndian >>> 24)) >>> 0
  );
}
