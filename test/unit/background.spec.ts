import { AsyncLocalStorage } from 'node:async_hooks';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { backgroundTimer, detached } from '../../lib/utils/background.js';

// a request's context, as AsyncLocalStorage (and OpenTelemetry's default context manager) keep it
const request = new AsyncLocalStorage<string>();

describe('background work runs outside the request that started it', () => {
  it('a background timer set inside a request fires outside it; a plain one would not', async () => {
    const seen = await request.run('request 1', async () => {
      const background = new Promise((resolve) => backgroundTimer(() => resolve(request.getStore()), 1));
      const plain = new Promise((resolve) => setTimeout(() => resolve(request.getStore()), 1));
      return Promise.all([background, plain]);
    });
    expect(seen).toEqual([undefined, 'request 1']);
  });

  it('a socket opened detached inside a request runs its events outside it', async () => {
    const server = net.createServer((socket) => socket.end('hello'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as net.AddressInfo;
    try {
      const seen = await request.run(
        'request 2',
        () =>
          new Promise<Array<string | undefined>>((resolve) => {
            const stores: Array<string | undefined> = [];
            const socket = detached(() => net.connect(port, '127.0.0.1'));
            socket.on('data', () => stores.push(request.getStore()));
            socket.on('close', () => resolve([...stores, request.getStore()]));
          }),
      );
      expect(seen).toEqual([undefined, undefined]);
    } finally {
      server.close();
    }
  });

  it('detached returns what its work returns, and lets its throw through', () => {
    expect(request.run('request 3', () => detached(() => request.getStore() ?? 'outside'))).toBe('outside');
    expect(() =>
      detached(() => {
        throw new Error('boom');
      }),
    ).toThrow('boom');
  });
});
