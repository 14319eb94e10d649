import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** PEM files of a throwaway PKI, readable by the `memcache` user the daemon drops to. */
export interface TestPki {
  dir: string;
  ca: Buffer;
  /** A CA that signed nothing here: trusting it alone must fail. */
  otherCa: Buffer;
  serverCertFile: string;
  serverKeyFile: string;
  caFile: string;
  clientCert: Buffer;
  clientKey: Buffer;
  /** The client key encrypted with `clientKeyPassphrase`. */
  encryptedClientKey: Buffer;
  clientKeyPassphrase: string;
  /** A certificate and key no CA the servers trust signed (the unrelated CA's own). */
  strangerCert: Buffer;
  strangerKey: Buffer;
  remove(): void;
}

/** Makes a CA, a server certificate for 127.0.0.1 and localhost, a client certificate, and an unrelated CA, with openssl. */
export function makeTestPki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'memcached-tls-'));
  chmodSync(dir, 0o755);
  const f = (name: string) => join(dir, name);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const ca = (name: string) => {
    ssl(
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '2',
      '-subj',
      `/CN=${name}`,
      '-keyout',
      f(`${name}.key`),
      '-out',
      f(`${name}.pem`),
    );
  };
  const leaf = (name: string, ext: string) => {
    ssl(
      'req',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-subj',
      `/CN=${name}`,
      '-keyout',
      f(`${name}.key`),
      '-out',
      f(`${name}.csr`),
    );
    writeFileSync(f(`${name}.ext`), ext);
    ssl(
      'x509',
      '-req',
      '-in',
      f(`${name}.csr`),
      '-CA',
      f('test-ca.pem'),
      '-CAkey',
      f('test-ca.key'),
      '-CAcreateserial',
      '-days',
      '2',
      '-extfile',
      f(`${name}.ext`),
      '-out',
      f(`${name}.pem`),
    );
  };
  ca('test-ca');
  ca('other-ca');
  leaf('server', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  leaf('client', 'extendedKeyUsage=clientAuth\n');
  for (const name of ['test-ca.pem', 'server.pem', 'server.key']) chmodSync(f(name), 0o644);
  const passphrase = 'pp-secret-123';
  ssl('pkey', '-in', f('client.key'), '-aes256', '-passout', `pass:${passphrase}`, '-out', f('client-encrypted.key'));
  return {
    dir,
    ca: readFileSync(f('test-ca.pem')),
    otherCa: readFileSync(f('other-ca.pem')),
    serverCertFile: f('server.pem'),
    serverKeyFile: f('server.key'),
    caFile: f('test-ca.pem'),
    clientCert: readFileSync(f('client.pem')),
    clientKey: readFileSync(f('client.key')),
    encryptedClientKey: readFileSync(f('client-encrypted.key')),
    clientKeyPassphrase: passphrase,
    strangerCert: readFileSync(f('other-ca.pem')),
    strangerKey: readFileSync(f('other-ca.key')),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
