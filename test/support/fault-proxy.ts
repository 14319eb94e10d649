import net from 'node:net';

/**
 * A TCP proxy in front of a real memcached that can misbehave like a server: with
 * `closeOnNextRequest()`, the next request is swallowed and the connection is closed cleanly
 * (FIN) without an answer, which is what memcached does after a protocol error and what leaves
 * memjs's pending request hanging forever. Also in front of a broker: `silent` drops bytes both
 * ways while the connections stay open, `cutAll()` resets them.
 */
export class FaultProxy {
  private server?: net.Server;
  private closeNext = false;
  /** While true, bytes in both directions are dropped and the connections stay open (a silent link). */
  silent = false;
  /** While true, new connections are closed at once (with `cutAll()`: a peer that is gone). */
  refusing = false;
  readonly sockets = new Set<net.Socket>();
  port = 0;

  constructor(
    private readonly targetPort: number,
    private readonly targetHost = '127.0.0.1',
  ) {}

  async start(): Promise<this> {
    this.server = net.createServer((client) => {
      if (this.refusing) return void client.destroy();
      const upstream = net.connect(this.targetPort, this.targetHost);
      this.sockets.add(client);
      client.on('close', () => {
        this.sockets.delete(client);
        upstream.destroy();
      });
      upstream.on('close', () => client.destroy());
      client.on('error', () => upstream.destroy());
      upstream.on('error', () => client.destroy());
      upstream.on('data', (chunk) => this.silent || client.write(chunk));
      client.on('data', (chunk) => {
        if (this.silent) return;
        if (this.closeNext) {
          this.closeNext = false;
          client.end();
          upstream.destroy();
          return;
        }
        upstream.write(chunk);
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
    return this;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Cuts every open connection (the peers see a reset); new ones are still accepted. */
  cutAll(): void {
    for (const socket of this.sockets) socket.destroy();
  }

  closeOnNextRequest(): void {
    this.closeNext = true;
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
