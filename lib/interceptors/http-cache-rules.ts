import type { HttpCachePolicy } from '../config/memcached-options.js';

/** The parts of an HTTP request the cache rules read (Express and Fastify requests both fit). */
export interface HttpRequestLike {
  method?: string;
  headers?: Record<string, string | string[] | undefined>;
  originalUrl?: string;
  url?: string;
}

/** A request's URL with its path and query string in one canonical form. */
export interface CanonicalUrl {
  /** Percent-encoding normalised, duplicate and trailing slashes removed; case kept. */
  path: string;
  /** Parameters sorted by name then value, re-encoded; '' when there are none. */
  query: string;
}

/** Always credentials, whatever the configuration says. */
const STANDARD_CREDENTIALS = ['authorization', 'proxy-authorization'];

/** Common headers that carry who the caller is, checked unless `credentialHeaders` is configured. */
export const DEFAULT_CREDENTIAL_HEADERS: readonly string[] = [
  'x-api-key',
  'api-key',
  'apikey',
  'x-auth-token',
  'x-access-token',
  'x-session-token',
  'x-session-id',
  'x-user-id',
  'x-user',
  'x-tenant-id',
  'x-forwarded-user',
  'x-forwarded-email',
  'x-forwarded-access-token',
  'x-remote-user',
  'remote-user',
  'x-amz-security-token',
  'x-amzn-oidc-data',
  'x-amzn-oidc-accesstoken',
  'x-ms-client-principal',
  'x-ms-token-aad-access-token',
  'cf-access-jwt-assertion',
  'x-goog-iap-jwt-assertion',
  'x-goog-authenticated-user-email',
  'x-csrf-token',
  'x-xsrf-token',
];

/** Words that make any header name a credential (`x-myapp-token`, `x-tenant`), unless configured otherwise. */
const CREDENTIAL_WORDS = new Set([
  'auth',
  'authorization',
  'authentication',
  'authenticated',
  'token',
  'apikey',
  'session',
  'sessionid',
  'sid',
  'jwt',
  'bearer',
  'credential',
  'credentials',
  'password',
  'passwd',
  'secret',
  'signature',
  'user',
  'userid',
  'uid',
  'principal',
  'identity',
  'tenant',
  'tenantid',
  'account',
  'accountid',
  'impersonate',
  'cookie',
  'saml',
  'oidc',
  'assertion',
  'login',
  'customer',
  'member',
]);

/**
 * Why a request must not share a cached response, or undefined when it may: a credential header,
 * or a cookie that is not ignored. Varnish's built-in policy and RFC 9111 §3.5 are the model:
 * a shared cache passes requests that carry `Authorization` or `Cookie`.
 */
export function credentialIn(
  request: HttpRequestLike,
  policy: HttpCachePolicy,
  routeIgnoreCookies?: ReadonlyArray<string | RegExp>,
): string | undefined {
  const headers = request.headers;
  if (headers === undefined) return undefined;
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || (typeof value === 'string' && value === '')) continue;
    const lower = name.toLowerCase();
    if (lower === 'cookie') {
      const cookie = cookieThatCounts(
        Array.isArray(value) ? value.join('; ') : value,
        policy.ignoreCookies,
        routeIgnoreCookies,
      );
      if (cookie !== undefined) return `cookie ${JSON.stringify(cookie)}`;
      continue;
    }
    if (isCredentialHeader(lower, policy)) return `header ${JSON.stringify(lower)}`;
  }
  return undefined;
}

/** Header names already classified by the built-in rule (bounded: names come from requests). */
const classified = new Map<string, boolean>();
const MAX_CLASSIFIED = 1000;

function isCredentialHeader(name: string, policy: HttpCachePolicy): boolean {
  if (STANDARD_CREDENTIALS.includes(name)) return true;
  if (policy.credentialHeaders !== undefined) return policy.credentialHeaders.has(name);
  let known = classified.get(name);
  if (known === undefined) {
    known = byBuiltInRule(name);
    // bounded in count and, as names come from requests, in the length of those kept
    if (classified.size < MAX_CLASSIFIED && name.length <= 64) classified.set(name, known);
  }
  return known;
}

function byBuiltInRule(name: string): boolean {
  if (DEFAULT_CREDENTIAL_HEADERS.includes(name)) return true;
  // browser-controlled metadata (sec-fetch-user: ?1) and user-agent name no caller
  if (name.startsWith('sec-') || name === 'user-agent') return false;
  const words = name.split(/[-_.]/);
  for (let i = 0; i < words.length; i++) {
    if (CREDENTIAL_WORDS.has(words[i])) return true;
    if (words[i] === 'api' && words[i + 1] === 'key') return true;
  }
  return false;
}

/** The first cookie name that is not ignored, or undefined. A pair without a name counts as a cookie. */
function cookieThatCounts(
  header: string,
  ...ignoreLists: Array<ReadonlyArray<string | RegExp> | undefined>
): string | undefined {
  for (const pair of header.split(';')) {
    const trimmed = pair.trim();
    if (trimmed === '') continue;
    const eq = trimmed.indexOf('=');
    const name = eq < 0 ? trimmed : trimmed.slice(0, eq).trim();
    const ignored = ignoreLists.some((list) =>
      list?.some((rule) => (typeof rule === 'string' ? rule === name : rule.test(name))),
    );
    if (!ignored) return name;
  }
  return undefined;
}

/** Why a response must not be stored in a shared cache, or undefined when it may be. */
export function responseNotStorable(headerOf: (name: string) => unknown): string | undefined {
  const cacheControl = headerText(headerOf('cache-control')).toLowerCase();
  if (/(?:^|[\s,])(?:private|no-store|no-cache)(?:$|[\s,=])/.test(cacheControl)) return 'cache-control';
  if (varyNames(headerOf('vary')) === '*') return 'vary *';
  const setCookie = headerOf('set-cookie');
  if (setCookie !== undefined && setCookie !== null && headerText(setCookie) !== '') return 'set-cookie';
  return undefined;
}

/** The header names a `Vary` value lists (lower case, sorted, unique), or '*'. */
export function varyNames(value: unknown): string[] | '*' {
  const names = new Set<string>();
  for (const part of headerText(value).split(',')) {
    const name = part.trim().toLowerCase();
    if (name === '*') return '*';
    if (name !== '') names.add(name);
  }
  return [...names].sort();
}

/** A request header's value as one string ('' when absent; repeated headers joined with ', '). */
export function requestHeader(request: HttpRequestLike, name: string): string {
  const headers = request.headers;
  if (headers === undefined) return '';
  const value = headers[name] ?? headers[name.toLowerCase()];
  return headerText(value);
}

function headerText(value: unknown): string {
  if (value === undefined || value === null) return '';
  if (Array.isArray(value)) return value.map(String).join(', ');
  return String(value).trim();
}

/** The request URL split into a canonical path and a canonical (sorted) query string. */
export function canonicalUrl(url: string): CanonicalUrl {
  const mark = url.indexOf('?');
  const rawPath = mark < 0 ? url : url.slice(0, mark);
  const hash = rawPath.indexOf('#');
  const path = canonicalPath(hash < 0 ? rawPath : rawPath.slice(0, hash));
  if (mark < 0) return { path, query: '' };
  const params = [...new URLSearchParams(url.slice(mark + 1))].sort(([a, x], [b, y]) =>
    a < b ? -1 : a > b ? 1 : x < y ? -1 : x > y ? 1 : 0,
  );
  return { path, query: new URLSearchParams(params).toString() };
}

/** Paths made only of unreserved characters and single slashes are canonical as they are. */
const PLAIN_PATH = /^(?:\/[A-Za-z0-9\-._~]+)+$|^\/$/;

/** Each segment percent-decoded and re-encoded one way, empty segments and a trailing slash dropped. */
export function canonicalPath(path: string): string {
  if (PLAIN_PATH.test(path)) return path;
  const segments: string[] = [];
  for (const segment of path.split('/')) {
    if (segment === '') continue;
    let decoded = segment;
    try {
      decoded = decodeURIComponent(segment);
    } catch {
      // not valid percent-encoding: kept as it is, encoded below like any other text
    }
    segments.push(encodeURIComponent(decoded));
  }
  return '/' + segments.join('/');
}

/**
 * The key a route's responses are grouped under, so that evicting it evicts every variant:
 * the canonical path in lower case (routers match paths without regard to case by default).
 */
export function resourceKey(path: string): string {
  return canonicalPath(path).toLowerCase();
}

/** `resourceKey` of a path that is already canonical. */
export function resourceKeyOfCanonical(path: string): string {
  return path.toLowerCase();
}
