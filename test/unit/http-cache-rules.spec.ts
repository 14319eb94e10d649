import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  canonicalUrl,
  credentialIn,
  responseNotStorable,
  resourceKey,
  varyNames,
} from '../../lib/interceptors/http-cache-rules.js';
import { variantOf, type VariantParts } from '../../lib/cache/variants.js';

const defaults = { ignoreCookies: [] };
const text = fc.string({
  unit: fc.constantFrom('a', 'b', '/', '?', '&', '=', '~', '%', '"', ',', '[', ']', '\\', '\u0000', 'é', ' ', ':'),
  maxLength: 8,
});
const parts: fc.Arbitrary<VariantParts> = fc.record(
  {
    path: fc.option(text, { nil: undefined }),
    query: fc.option(text, { nil: undefined }),
    principal: fc.option(text, { nil: undefined }),
    vary: fc.option(fc.array(fc.tuple(text, text), { maxLength: 3 }), { nil: undefined }),
  },
  { requiredKeys: [] },
);

/** What a variant stands for: empty parts count as absent, as variantOf treats them. */
function meaning(key: string, p: VariantParts): string {
  return JSON.stringify([
    p.path === undefined || p.path === key ? null : p.path,
    p.query ? p.query : null,
    p.principal ?? null,
    p.vary && p.vary.length > 0 ? p.vary : null,
  ]);
}

describe('HTTP key building', () => {
  it('no two distinct (path, query, principal, Vary values) share a variant', () => {
    fc.assert(
      fc.property(text, parts, parts, (key, a, b) => {
        fc.pre(meaning(key, a) !== meaning(key, b));
        expect(variantOf(key, a)).not.toBe(variantOf(key, b));
      }),
      { numRuns: 5000 },
    );
  });

  it('the plain entry is only the request with nothing besides the resource', () => {
    expect(variantOf('/docs/7', { path: '/docs/7', query: '' })).toBeUndefined();
    expect(variantOf('/docs/7', { path: '/DOCS/7' })).toBeDefined();
    expect(variantOf('/docs/7', { principal: '' })).toBeDefined();
  });

  it('canonical URLs: query order, duplicate and trailing slashes and percent-encoding do not matter; the path keeps its case', () => {
    expect(canonicalUrl('/items?b=2&a=1')).toStrictEqual(canonicalUrl('/items?a=1&b=2'));
    expect(canonicalUrl('/docs//7/').path).toBe('/docs/7');
    expect(canonicalUrl('/docs/%37').path).toBe('/docs/7');
    expect(canonicalUrl('/Docs/7').path).toBe('/Docs/7');
    expect(resourceKey('/Docs//7/')).toBe('/docs/7');
    expect(canonicalUrl('/bad/%E0%A4%A').path).toBe('/bad/%25E0%25A4%25A');
    fc.assert(
      fc.property(fc.webPath(), fc.webQueryParameters(), (path, query) => {
        const once = canonicalUrl(`${path}?${query}`);
        expect(canonicalUrl(`${once.path}?${once.query}`)).toStrictEqual(once);
      }),
    );
  });
});

describe('credentials', () => {
  const req = (headers: Record<string, string>) => ({
    headers: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v])),
  });

  it.each([
    'authorization',
    'proxy-authorization',
    'x-api-key',
    'x-foo-token',
    'x-acme-session',
    'x-tenant',
    'x-api_key',
    'x-user-email',
    'x-jwt',
  ])('%s is a credential', (name) => {
    expect(credentialIn(req({ [name]: 'v' }), defaults)).toMatch(/header/);
  });

  it.each([
    'accept',
    'accept-language',
    'user-agent',
    'sec-fetch-user',
    'if-none-match',
    'x-request-id',
    'traceparent',
    'x-forwarded-for',
    'cache-control',
  ])('%s is not a credential', (name) => {
    expect(credentialIn(req({ [name]: 'v' }), defaults)).toBeUndefined();
  });

  it('any cookie counts, unless ignored by name or pattern; an empty header does not', () => {
    expect(credentialIn(req({ cookie: 'prefs=dark' }), defaults)).toBe('cookie "prefs"');
    expect(credentialIn(req({ cookie: 'garbage-without-equals' }), defaults)).toBe('cookie "garbage-without-equals"');
    expect(credentialIn(req({ cookie: '' }), defaults)).toBeUndefined();
    expect(credentialIn(req({ cookie: '_ga=1; _pk_id.9=2' }), { ignoreCookies: ['_ga'] }, [/^_pk_/])).toBeUndefined();
    expect(credentialIn(req({ cookie: '_ga=1; sid=2' }), { ignoreCookies: ['_ga'] })).toBe('cookie "sid"');
  });

  it('a configured list replaces the built-in one and the name rule, never the standard headers', () => {
    const policy = { credentialHeaders: new Set(['x-partner']), ignoreCookies: [] };
    expect(credentialIn(req({ 'x-partner': '1' }), policy)).toBeDefined();
    expect(credentialIn(req({ 'x-api-key': '1' }), policy)).toBeUndefined();
    expect(credentialIn(req({ authorization: '1' }), policy)).toBeDefined();
  });
});

describe('responses', () => {
  const headers = (h: Record<string, unknown>) => (name: string) => h[name];

  it.each([
    [{ 'cache-control': 'private' }, 'cache-control'],
    [{ 'cache-control': 'max-age=60, no-store' }, 'cache-control'],
    [{ 'cache-control': 'no-cache="set-cookie"' }, 'cache-control'],
    [{ vary: 'Accept, *' }, 'vary *'],
    [{ 'set-cookie': ['a=b'] }, 'set-cookie'],
  ])('%j is not stored (%s)', (h, reason) => {
    expect(responseNotStorable(headers(h))).toBe(reason);
  });

  it('public responses and Vary lists are', () => {
    expect(
      responseNotStorable(headers({ 'cache-control': 'public, max-age=60', vary: 'Accept-Language' })),
    ).toBeUndefined();
    expect(varyNames('Accept-Language, accept ,ACCEPT')).toStrictEqual(['accept', 'accept-language']);
  });
});
