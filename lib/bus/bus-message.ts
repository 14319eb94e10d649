/**
 * Invalidation messages on the bus: compact, versioned JSON. Every message carries its source
 * (a random id per process and bus) and that source's sequence number, so a receiver notices a
 * lost message (a gap), a restarted source (a new id) and a silent channel (its own heartbeats
 * stop coming back).
 *
 * `{"v":1,"s":"<source>","q":<seq>,"t":"k"|"n"|"h"|"b","x":["<name>", ...],"d":1}`
 * - `k`: keys changed (evicted or overwritten); `x` holds their families (`prefix\0namespace\0key`).
 * - `n`: namespaces got a new generation (every entry evicted); `x` holds `prefix\0namespace`.
 * - `h`: a heartbeat; `x` is empty.
 * - `b`: the source is closing (it sends nothing more); `x` is empty.
 * - `d` (optional): the change was itself caused by a followed change (`bus.follow`); receivers do
 *   not follow it further, so two services that follow each other cannot loop.
 */
export type BusMessageType = 'k' | 'n' | 'h' | 'b';

export interface BusMessage {
  source: string;
  seq: number;
  type: BusMessageType;
  names: string[];
  derived?: boolean;
}

export const BUS_VERSION = 1;

/** Longest message accepted from the bus (a bigger one is treated as a lost message). */
export const MAX_BUS_MESSAGE = 1 << 20;

export function encodeBusMessage(message: BusMessage): string {
  const body: Record<string, unknown> = {
    v: BUS_VERSION,
    s: message.source,
    q: message.seq,
    t: message.type,
    x: message.names,
  };
  if (message.derived) body.d = 1;
  return JSON.stringify(body);
}

/**
 * Reads a message from the bus; every byte is untrusted. Returns undefined for anything that is
 * not a well-formed message of this version (the caller counts it as a possibly lost message).
 */
export function decodeBusMessage(data: string | Uint8Array): BusMessage | undefined {
  if (data.length > MAX_BUS_MESSAGE) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(
      typeof data === 'string' ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8'),
    );
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return undefined;
  const { v, s, q, t, x, d } = parsed as Record<string, unknown>;
  if (v !== BUS_VERSION) return undefined;
  if (typeof s !== 'string' || s.length === 0 || s.length > 64) return undefined;
  if (typeof q !== 'number' || !Number.isSafeInteger(q) || q < 1) return undefined;
  if (t !== 'k' && t !== 'n' && t !== 'h' && t !== 'b') return undefined;
  if (!Array.isArray(x) || !x.every((name) => typeof name === 'string')) return undefined;
  if (t === 'h' || t === 'b' ? x.length !== 0 : x.length === 0) return undefined;
  if (d !== undefined && d !== 1) return undefined;
  return d === 1
    ? { source: s, seq: q, type: t, names: x as string[], derived: true }
    : { source: s, seq: q, type: t, names: x as string[] };
}
