export interface MemcachedNodeAddress {
  host: string;
  port: number;
  weight: number;
  /** `host:port`, how logs and errors name the node. */
  label: string;
}

export interface ParsedServerList {
  nodes: MemcachedNodeAddress[];
  username?: string;
  password?: string;
}

/** The port memcached (and libmemcached's ketama point names) assume when none is given. */
export const DEFAULT_PORT = 11211;
export const MAX_WEIGHT = 10_000;

const HOST = /^[A-Za-z0-9._%-]+$|^[0-9A-Fa-f:.%]*:[0-9A-Fa-f:.%]*$/;

/** A host name, an IPv4 address, or an IPv6 address (without brackets). */
export function isHostName(host: string): boolean {
  return host.length > 0 && host.length <= 253 && HOST.test(host);
}

/**
 * Parses `host[:port[:weight]]` entries (comma-separated). IPv6 hosts go in brackets:
 * `[::1]:11211:2`. A `user:pass@` in front of an entry is accepted, as memjs does, and the
 * credentials are taken out of the node so they never reach a log. Throws a message built by
 * `fail(entry, why)`, which receives the entry with any password masked.
 */
export function parseServerList(input: string, fail: (entry: string, why: string) => Error): ParsedServerList {
  const entries = input.split(',').map((e) => e.trim());
  const result: ParsedServerList = { nodes: [] };
  for (const raw of entries) {
    let entry = raw;
    const at = entry.lastIndexOf('@');
    if (at >= 0) {
      const creds = entry.slice(0, at);
      entry = entry.slice(at + 1);
      const colon = creds.indexOf(':');
      result.username = colon >= 0 ? creds.slice(0, colon) : creds;
      result.password = colon >= 0 ? creds.slice(colon + 1) : undefined;
    }
    const shown = at >= 0 ? `${result.username}:***@${entry}` : entry;
    if (entry === '') throw fail(shown, 'an empty entry');
    result.nodes.push(parseEntry(entry, (why) => fail(shown, why)));
  }
  return result;
}

export function parseEntry(entry: string, fail: (why: string) => Error): MemcachedNodeAddress {
  let host: string;
  let rest: string[];
  if (entry.startsWith('[')) {
    const close = entry.indexOf(']');
    if (close < 0) throw fail('an unclosed "[" in an IPv6 address');
    host = entry.slice(1, close);
    const tail = entry.slice(close + 1);
    if (tail !== '' && !tail.startsWith(':')) throw fail('text after "]" that is not ":port"');
    rest = tail === '' ? [] : tail.slice(1).split(':');
  } else {
    const parts = entry.split(':');
    host = parts[0];
    rest = parts.slice(1);
  }
  if (!isHostName(host)) throw fail('no valid host name');
  if (rest.length > 2) throw fail('too many ":" (expected host:port:weight)');
  // decimal digits only: Number() would also take "0x2bcb", "+11211" or "1e4"
  const port =
    rest[0] === undefined || rest[0] === '' ? DEFAULT_PORT : /^[1-9][0-9]{0,4}$/.test(rest[0]) ? Number(rest[0]) : NaN;
  if (!(port >= 1 && port <= 65535))
    throw fail(`port ${JSON.stringify(rest[0])} is not a decimal number from 1 to 65535`);
  const weight = rest[1] === undefined ? 1 : /^[1-9][0-9]{0,4}$/.test(rest[1]) ? Number(rest[1]) : NaN;
  if (!(weight >= 1 && weight <= MAX_WEIGHT))
    throw fail(`weight ${JSON.stringify(rest[1])} is not a whole number from 1 to ${MAX_WEIGHT}`);
  return toNode(host, port, weight);
}

export function toNode(host: string, port: number, weight: number): MemcachedNodeAddress {
  const label = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  return { host, port, weight, label };
}
