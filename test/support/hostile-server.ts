import net from 'node:net';

/** A request frame as the hostile server sees it. */
export interface SeenRequest {
  opcode: number;
  opaque: number;
  key: string;
}

/** What the server does with one request: bytes to send back, or close the connection. */
export type Reply = Buffer | 'close' | 'ignore';

/**
 * A TCP peer that speaks just enough of memcached's binary protocol to receive requests, and
 * answers them with whatever the test scripts: crafted frames, garbage, a half frame then a close.
 * Each connection gets the behaviour current when it opened (`onRequest` may change it between
 * connections), and `onConnect` can push bytes before any request.
 */
export class HostileServer {
  private server?: net.Server;
  readonly sockets = new Set<net.Socket>();
  connections = 0;
  port = 0;
  onRequest: (req: SeenRequest, connection: number) => Reply = (req) =>
    response({ opcode: req.opcode, opaque: req.opaque });
  onConnect?: (socket: net.Socket, connection: number) => void;

  async start(): Promise<this> {
    this.server = net.createServer((socket) => {
      const connection = ++this.connections;
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      socket.on('error', () => undefined);
      this.onConnect?.(socket, connection);
      let buffered = Buffer.alloc(0);
      socket.on('data', (chunk) => {
        buffered = Buffer.concat([buffered, chunk]);
        while (buffered.length >= 24) {
          const total = 24 + buffered.readUInt32BE(8);
          if (buffered.length < total) break;
          const frame = buffered.subarray(0, total);
          buffered = buffered.subarray(total);
          const keyStart = 24 + frame[4];
          const req = {
            opcode: frame[1],
            opaque: frame.readUInt32BE(12),
            key: frame.toString('latin1', keyStart, keyStart + frame.readUInt16BE(2)),
          };
          const reply = this.onRequest(req, connection);
          if (reply === 'close') {
            socket.destroy();
            return;
          }
          if (reply !== 'ignore' && !socket.destroyed) socket.write(reply);
        }
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
    return this;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

/** A response frame; any field can be set to a value a real server would never send. */
export function response(fields: {
  magic?: number;
  opcode: number;
  opaque: number;
  status?: number;
  key?: Buffer;
  extras?: Buffer;
  value?: Buffer;
  dataType?: number;
  /** Overrides the declared lengths (the body actually sent is key + extras + value). */
  keyLength?: number;
  extrasLength?: number;
  totalBodyLength?: number;
  cas?: bigint;
}): Buffer {
  const key = fields.key ?? Buffer.alloc(0);
  const extras = fields.extras ?? Buffer.alloc(0);
  const value = fields.value ?? Buffer.alloc(0);
  const header = Buffer.alloc(24);
  header[0] = fields.magic ?? 0x81;
  header[1] = fields.opcode;
  header.writeUInt16BE(fields.keyLength ?? key.length, 2);
  header[4] = fields.extrasLength ?? extras.length;
  header[5] = fields.dataType ?? 0;
  header.writeUInt16BE(fields.status ?? 0, 6);
  header.writeUInt32BE(fields.totalBodyLength ?? key.length + extras.length + value.length, 8);
  header.writeUInt32BE(fields.opaque, 12);
  header.writeBigUInt64BE(fields.cas ?? 1n, 16);
  return Buffer.concat([header, extras, key, value]);
}

/** The 4-byte flags extras of a GET hit. */
export function flagsExtras(flags: number): Buffer {
  const extras = Buffer.alloc(4);
  extras.writeUInt32BE(flags >>> 0);
  return extras;
}
