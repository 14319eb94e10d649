import net from 'node:net';

/**
 * Sends one command over memcached's text protocol on a fresh connection and returns the reply,
 * so tests can look at the server without going through the client under test.
 */
export function textCommand(
  port: number,
  command: string | Buffer,
  terminator = /(END|STORED|NOT_STORED|EXISTS|NOT_FOUND|DELETED|OK|ERROR[^\r]*|VERSION [^\r]*)\r\n$/,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let reply = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no reply to ${JSON.stringify(String(command).slice(0, 40))}`));
    }, 2000);
    socket.on('data', (chunk) => {
      reply += chunk.toString('latin1');
      if (terminator.test(reply)) {
        clearTimeout(timer);
        socket.end();
        resolve(reply);
      }
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.write(command);
  });
}

/** The raw item as memcached holds it, or undefined: `{ flags, bytes }`. */
export async function rawGet(port: number, key: string): Promise<{ flags: number; bytes: Buffer } | undefined> {
  const reply = await textCommand(port, `get ${key}\r\n`);
  const match = /^VALUE \S+ (\d+) (\d+)\r\n/.exec(reply);
  if (!match) return undefined;
  const start = match[0].length;
  const bytes = Buffer.from(reply.slice(start, start + Number(match[2])), 'latin1');
  return { flags: Number(match[1]), bytes };
}

export async function rawSet(port: number, key: string, value: Buffer | string, flags = 0, ttl = 0): Promise<void> {
  const bytes = Buffer.isBuffer(value) ? value : Buffer.from(value);
  const reply = await textCommand(
    port,
    Buffer.concat([Buffer.from(`set ${key} ${flags} ${ttl} ${bytes.length}\r\n`), bytes, Buffer.from('\r\n')]),
  );
  if (!reply.startsWith('STORED')) throw new Error(`raw set failed: ${reply}`);
}

/**
 * The decoded entry a decorated method stored in `namespace` under `key` (the namespace's current
 * generation read from the server), or undefined. Looks at the server directly, over the text protocol.
 */
export async function rawEntry(port: number, prefix: string, namespace: string, key: string) {
  const generation = await rawGet(port, `${prefix}${namespace}#gen`);
  if (!generation) return undefined;
  const wireKey = `${prefix}${namespace}#${generation.bytes.toString().trim()}:${key}`;
  const item = await rawGet(port, wireKey);
  return item && { key: wireKey, ...item };
}
