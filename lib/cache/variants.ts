import type { ResponseMeta } from '../codec/value.codec.js';

/** What selects one HTTP response among those cached under a route's key. */
export interface HttpRequestParts {
  /** The exact canonical path, for routes keyed by their path (undefined when the decorator gives a key). */
  path?: string;
  /** The canonical (sorted) query string, for routes keyed by their path; '' when there is none. */
  query?: string;
  /** The caller, from the route's `principal` function. */
  principal?: string;
  /** A request header's value ('' when absent), for the `Vary` names. */
  header(name: string): string;
}

/** One variant of a key: everything besides the key that selects the response. */
export interface VariantParts {
  path?: string;
  query?: string;
  principal?: string;
  /** `Vary` header names with the request's values. */
  vary?: ReadonlyArray<readonly [string, string]>;
}

const MAX_VARY_NAMES = 16;

/**
 * The variant text of a response under `key`, or undefined for the plain entry. The parts are
 * JSON-encoded as one array, so no path, query, principal or header value can end one part and
 * begin another: two distinct requests never share a variant.
 */
export function variantOf(key: string, parts: VariantParts): string | undefined {
  const path = parts.path === undefined || parts.path === key ? null : parts.path;
  const query = parts.query ? parts.query : null;
  const principal = parts.principal === undefined ? null : parts.principal;
  const vary = parts.vary && parts.vary.length > 0 ? parts.vary : null;
  if (path === null && query === null && principal === null && vary === null) return undefined;
  return JSON.stringify([path, query, principal, vary]);
}

/**
 * The `Vary` names a route's responses have shown, per route: they become part of its variants,
 * so requests that differ in them get their own entries. Bounded per route.
 */
export class LearnedVary {
  private readonly names = new WeakMap<object, string[]>();

  of(route: object): readonly string[] | undefined {
    return this.names.get(route);
  }

  /** Adds names; true when that changed the route's variants. */
  learn(route: object, names: readonly string[]): boolean {
    const known = this.names.get(route) ?? [];
    const added = names.filter((name) => !known.includes(name));
    if (added.length === 0 || known.length + added.length > MAX_VARY_NAMES) return false;
    this.names.set(route, [...known, ...added].sort());
    return true;
  }

  /** The variant a request reads under `key`, with the route's learned names. */
  variant(route: object, key: string, request: HttpRequestParts): string | undefined {
    const learned = this.names.get(route);
    return variantOf(key, {
      path: request.path,
      query: request.query,
      principal: request.principal,
      vary: learned?.map((name) => [name, request.header(name)] as const),
    });
  }
}

/** Whether a stored HTTP entry may answer a request: the request's values for its `Vary` names match. */
export function varyMatches(meta: ResponseMeta | undefined, request: HttpRequestParts): boolean {
  const vary = meta?.vary;
  return vary === undefined || vary.every(([name, value]) => request.header(name) === value);
}
