export const invalidOption = (name: string, value: unknown, expected: string) =>
  `Invalid MemcachedModule option "${name}": ${show(value)} (expected ${expected})`;

export const invalidTracingOption = (name: string, value: unknown, expected: string) =>
  `Invalid MemcachedInstrumentation option "${name}": ${show(value)} (expected ${expected})`;
export const tracingNeedsNode = (version: string) =>
  `MemcachedInstrumentation needs Node 20.13 or later (TracingChannel.hasSubscribers); this is Node ${version}`;

export const invalidEnv = (name: string, value: string, expected: string) =>
  `Invalid ${name}=${JSON.stringify(value)} (expected ${expected})`;

export const invalidDecoratorOption = (
  decorator: string,
  where: string,
  option: string,
  value: string,
  expected: string,
) => `Invalid ${decorator} option "${option}" on ${where}: ${value} (expected ${expected})`;

export const unknownOption = (name: string) =>
  `Unknown MemcachedModule option "${name}": see docs/configuration.md for the supported options`;

export const unknownEnv = (names: string[]) =>
  `Ignoring unknown environment variable(s) ${names.join(', ')}: not a MemcachedModule setting (typo?)`;

export const oversizeSkipped = (label: string, size: number, limit: number) =>
  `Not caching a value in ${label}: item of ${size} bytes exceeds the item size limit of ${limit} bytes ` +
  `(memcached -I / maxItemSize); the key was deleted instead. Further skips in ${label} are only counted.`;

export const unsupportedValueSkipped = (label: string, detail: string) => `Not caching a value in ${label}: ${detail}`;

export const fillRefused = (label: string, detail: string) => `Not caching a value in ${label}: ${detail}`;

export const unsupportedValue = (what: string, where: string, mode: string) =>
  `${what}${where ? ` at ${where}` : ''} cannot be cached without changing: ` +
  (mode === 'pylibmc'
    ? 'valueFormat is "pylibmc", which keeps strings, Buffers, integers and JSON types (numbers, booleans, null, plain objects and arrays)'
    : mode === 'json'
      ? 'the serializer is "json", which keeps only JSON types (strings, numbers, booleans, null, plain objects and arrays)'
      : 'class instances, functions, symbols and errors would come back as something else. ' +
        'Cache a plain object instead, or give the module a serializer that knows the type');

export const cacheFailed = (operation: string, namespace: string | undefined, detail: string) =>
  namespace === undefined
    ? `cache ${operation} failed, continuing without the cache: ${detail}`
    : `cache ${operation} failed for namespace "${namespace}", continuing without the cache: ${detail}`;

export const reachable = (node: string, version: string) => `memcached ${node} is reachable (version ${version})`;

export const unreachable = (node: string, reason: string) =>
  `memcached ${node} is not reachable (${reason}); the application runs with this node's cache degraded`;

export const nodeDown = (node: string, failures: number, lastError: string, cooldown: number) =>
  `memcached ${node} marked down after ${failures} consecutive failures (${lastError}); ` +
  `its requests are skipped while probes check it (at most ${cooldown} ms apart)`;

export const nodeUp = (node: string, downForMs: number) => `memcached ${node} is back up after ${downForMs} ms`;

// --- the wire: why a memcached operation failed (the detail of a MemcachedError) ---

export const clientClosed = () => 'the client is closed';
export const connectionReset = () => 'connection reset by the client';
export const closedByServer = () => 'connection closed by the server';
export const noAnswer = (ms: number) => `no answer within ${ms} ms`;
export const noConnection = (ms: number) => `no connection within ${ms} ms`;
export const tlsNoHandshake = (ms: number) =>
  `no TLS handshake within ${ms} ms (does the server have TLS on, memcached -Z?)`;
export const tlsFailed = (code: string | undefined, message: string) => {
  const hint =
    /ALERT_(CERTIFICATE_REQUIRED|BAD_CERTIFICATE|UNKNOWN_CA|CERTIFICATE_UNKNOWN|ACCESS_DENIED|HANDSHAKE_FAILURE)/.test(
      code ?? '',
    )
      ? "the server refused this client's certificate: check tls.cert and tls.key against the server's ssl_ca_cert"
      : code === 'ERR_TLS_CERT_ALTNAME_INVALID'
        ? 'the certificate is not for this host: check tls.servername or the host in servers'
        : code !== undefined && /CERT|SELF_SIGNED|ISSUER|VERIFY/.test(code)
          ? "the server's certificate did not verify: check tls.ca"
          : 'check that the server has TLS on (memcached -Z) and accepts this client (tls.cert, tls.key)';
  return `TLS handshake failed (${code ?? 'no code'}: ${message}): ${hint}`;
};
export const tlsSetupFailed = (code: string | undefined, message: string, encryptedKey = false) =>
  `TLS settings unusable (${code ?? 'no code'}: ${message}): ` +
  (/decrypt|passphrase|BAD_DECRYPT/i.test(`${code} ${message}`)
    ? 'tls.key could not be decrypted: check tls.passphrase'
    : encryptedKey
      ? 'check tls.passphrase (a wrong one can decrypt tls.key to bytes that are no key), and that tls.key belongs to tls.cert'
      : 'check that tls.ca, tls.cert and tls.key are PEM text (or Buffers) and that the key belongs to the certificate');

export const saslRefused = () => 'authentication failed: the server refused the SASL username or password';
export const saslStatus = (status: number) => `authentication failed: status 0x${status.toString(16)}`;
export const authFailed = () => 'authentication failed';
export const authRequired = () =>
  'authentication required: the server expects SASL credentials (username and password)';
export const malformedResponse = (detail: string) => `malformed response: ${detail}`;
export const protocolDropped = (detail: string) => `${detail}; connection dropped`;
export const badMagic = (byte: string) => `not a binary-protocol response (magic byte 0x${byte}, expected 0x81)`;
export const badDataType = (byte: string) => `unknown data type 0x${byte} in a response`;
export const bodyTooLarge = (bytes: number) =>
  `response declares a ${bytes}-byte body, more than any memcached item can hold`;
export const keyExtrasTooLong = (key: number, extras: number, body: number) =>
  `response key (${key} bytes) and extras (${extras} bytes) exceed its body (${body} bytes)`;
export const opcodeMismatch = (got: number, sent: number) =>
  `response opcode 0x${got.toString(16)} does not match request opcode 0x${sent.toString(16)}`;
export const nodeSkipped = () => 'node is down; skipped until a probe succeeds';
export const leaseStatus = (status: number) => `lease answered with status 0x${status.toString(16)}`;
export const generationLost = () => 'a namespace generation could not be stored';
export const tagVersionLost = () => 'a cache tag version could not be stored';

// --- values, keys and TTLs a caller gives ---

export const keyNotString = (got: string) => `memcached key must be a string, got ${got}`;
export const tagsNotList = (shown: string) => `cache tags must be an array of strings, got ${shown}`;
export const invalidTag = (shown: string, max: number) =>
  `Invalid cache tag ${shown}: use a string of 1 to ${max} characters`;
export const tooManyTags = (count: number, max: number) => `An entry may carry at most ${max} cache tags, got ${count}`;
export const invalidNamespace = (namespace: unknown) =>
  `Invalid cache namespace ${clip(show(namespace))}: use 1 to 200 letters, digits, '_', '.' or '-'`;
export const invalidTtl = (name: string, shown: string, max: number) =>
  `Invalid ${name} ${shown}: expected a number of seconds from 0 (no expiry) to ${max} (ten years)`;
export const ttlPast2106 = (ttl: number) =>
  `Invalid ttl ${ttl}: expires after the year 2106, beyond memcached's 32-bit expiry`;
export const undefinedValue = () => 'undefined cannot be stored in memcached: use delete() to remove a key';
export const invalidCounterNumber = (name: string, value: unknown) =>
  `Invalid ${name} ${String(value)}: expected a whole number >= 0 (use a bigint above 2^53)`;
export const invalidCounterBigint = (name: string, value: unknown) =>
  `Invalid ${name} ${String(value)}: expected an unsigned 64-bit integer`;
export const keyFromFunction = (type: string) =>
  `cannot derive a cache key from a ${type}: give the decorator a key function`;
export const keyFromCycle = () => 'cannot derive a cache key from a circular structure';
export const keyFnNotString = (type: string) => `a cache key function returned ${type}, expected a string`;
export const keysFnNotList = () => 'a keys() function must return a list of strings';
export const notAMethod = (name: string) => `cache decorators apply to methods; ${name} is not one`;
export const optionsNotObject = (value: string) => `MemcachedModule options must be an object, got ${value}`;
export const viaPrototype = (className: string) =>
  `${className} is not a singleton: its cached methods use the cache through the prototype`;

export const routeHandlersOff = (what: string) =>
  `Cached routes are served through Nest's interceptor chain: this Nest no longer provides what serving ` +
  `them from their handlers relies on (${what}). Check that your routes are still cached, and report the Nest version.`;
export const routesFromHandlers = (count: number) =>
  `Routes with cache decorators whose rules run inside their route handlers (no interceptor added): ${count}`;

/** A shown value cut to a length a log line can hold (a hostile value can be megabytes). */
function clip(shown: string, max = 80): string {
  return shown.length <= max ? shown : `${shown.slice(0, max)}... (${shown.length} characters)`;
}

export function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'number') return Object.is(value, -0) ? '-0' : String(value);
  if (value instanceof RegExp) return String(value);
  if (typeof value === 'function') return 'a function';
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

export const peerMissing = (feature: string, pkg: string) =>
  `${feature} needs the package ${pkg}, which is not installed: npm install ${pkg}`;

export const metricsRegistryMissing = () =>
  'registerMemcachedMetrics needs options.registry (a prom-client Registry); ' +
  "MemcachedPrometheusModule.forRoot() uses prom-client's global registry by default";

export const busUnavailable = (transport: string, detail: string, nearCache: boolean) =>
  `Invalidation bus (${transport}) not reachable: ${detail}. It keeps retrying; until then ` +
  (nearCache ? 'the near cache stays off (reads go to memcached).' : "this process's evictions are not published.");

const busWork = (nearCache: boolean, up: boolean) =>
  nearCache
    ? up
      ? 'the near cache serves hits'
      : 'the near cache is dropped and bypassed until it is back'
    : up
      ? "this process's evictions reach the other processes"
      : "this process's evictions are not published until it is back (the other processes bypass their near caches)";

const flapped = (changes: number) => (changes > 1 ? ` (${changes} changes since the last report)` : '');

export const busConnected = (transport: string, nearCache: boolean, changes: number) =>
  `Invalidation bus (${transport}) connected${flapped(changes)}: ${busWork(nearCache, true)}`;

export const busBack = (transport: string, nearCache: boolean, downForMs: number, changes: number) =>
  `Invalidation bus (${transport}) back after ${downForMs} ms${flapped(changes)}: ${busWork(nearCache, true)} again`;

export const busDown = (transport: string, reason: string, nearCache: boolean, changes: number) =>
  `Invalidation bus (${transport}) ${reason}${flapped(changes)}: ${busWork(nearCache, false)}`;

export const busUnsigned = (transport: string) =>
  `Invalidation bus (${transport}) without bus.keys: anyone who can publish on its channel can evict and flush ` +
  "this service's near-cache entries. Set bus.keys (MEMCACHED_BUS_KEYS) on every process of the bus.";

const REJECTED = {
  forged:
    "messages that do not authenticate (a publisher without this service's bus.keys, or keys that differ: " +
    'check bus.keys on every process); they changed nothing',
  replayed: 'messages heard before (replayed); they changed nothing',
  stale:
    "authentic messages sent more than 30 s from this host's clock: a replay, or a host whose clock is off " +
    '(check NTP on every host); the near cache was flushed, since evictions may be among them',
  malformed:
    'messages that are not of this library (another publisher on the channel, or a version mismatch); ' +
    'they changed nothing',
} as const;

export const busRejected = (transport: string, reason: keyof typeof REJECTED) =>
  `Invalidation bus (${transport}): dropped ${REJECTED[reason]} (see stats().bus)`;

export const followFailed = (namespace: string, detail: string) =>
  `Could not evict from namespace "${namespace}" after a followed change (bus.follow): ${detail}`;

export const invalidationOwed = (what: string) =>
  `memcached did not confirm an invalidation (${what}): it is owed and paid when the node answers again; ` +
  'until then reads of what it invalidates skip memcached. Further ones within 10 s are only counted.';

export const invalidationsRepaid = (count: number) =>
  `Paid ${count} owed invalidation(s): memcached serves those reads again`;

export const spoolProblem = (detail: string) => `Invalidation spool: ${detail}`;

export const servingGraced = (namespace: string, why: string) =>
  `Serving graced entries of namespace "${namespace}" past their TTL: their source did not answer (${why}). ` +
  'They are counted as graced, not as hits; /health reports degraded meanwhile.';

export const invalidGrace = (value: unknown) =>
  `Invalid getOrSet option "grace": ${show(value)} (expected a number of seconds, 0 or more)`;

export const remoteDebtDropped = () =>
  'Another process told of more owed invalidations than this one holds (see docs/outages.md): ' +
  'the rest are not held here; the processes that owe them still pay them. Further ones within 10 s are only counted.';
