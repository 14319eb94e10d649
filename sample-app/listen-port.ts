import net from 'node:net';

/**
 * The port a sample service listens on, from `variable` (or its default), checked before the app
 * starts (and seeds its database): a taken port fails at once, saying which variable to change.
 */
export async function freeListenPort(variable: string, fallback: number): Promise<number> {
  const raw = process.env[variable];
  const port = raw === undefined || raw === '' ? fallback : Number(raw);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new Error(`Invalid ${variable}=${JSON.stringify(raw)} (expected a port number from 1 to 65535)`);
  }
  await new Promise<void>((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        error.code === 'EADDRINUSE'
          ? new Error(`Port ${port} on 127.0.0.1 is in use (another sample running?): set ${variable} to a free port`)
          : error,
      ),
    );
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve()));
  });
  return port;
}
