import { createHash } from 'node:crypto';
import { hashedKey, MAX_KEY_LENGTH, toWireKey } from './key.codec.js';

/**
 * Which entry: every name the library gives an entry (in memcached, in this process's loads and
 * near cache, on the bus) is derived here from an `EntryRef`, so the names of different kinds can
 * never meet.
 *
 * In memcached, under the configured prefix:
 *
 * | kind                        | wire key                                   |
 * |-----------------------------|--------------------------------------------|
 * | plain key (no namespace)    | `<key>` as given (other clients read it)   |
 * | namespace generation        | `<ns>#gen`                                 |
 * | variant group of a key      | `<ns>#r:<key>`                             |
 * | entry                       | `<ns>#<gen>:<key>`                         |
 * | one variant of an entry     | `<ns>#<gen>v<group>:["<key>","<variant>"]` |
 * | refresh marker of a wire key| `<wire>#r`                                 |
 *
 * Tags have their own keyspace (`tagPrefix`, which services share to invalidate each other's
 * entries): a tag's version is at `<tagPrefix><tag>#tag`.
 *
 * A plain key sent as given never holds `#`; one that must be rewritten (too long, spaces,
 * non-ASCII, `#`) becomes `head#<sha256>`. A namespaced name is sent as is only when it holds no
 * `#` but the one after the namespace, else it becomes `head#~<sha256>`: the text after the last
 * `#` tells the kinds apart (`gen`, `r:…`, digits, `r`, `tag`, a bare digest, `!`, `~`), so a
 * plain key such as `users#gen` can never overwrite a namespace's counter.
 */
export interface EntryRef {
  /** The namespace (`[A-Za-z0-9_.-]`); absent for a plain key. */
  namespace?: string;
  key: string;
  /** One variant of the key (an HTTP response's query, principal or `Vary` values). */
  variant?: string;
}

/**
 * A change as the bus carries it and the near cache records it: a key of a namespace (`''` for
 * plain keys), or a whole namespace. A key too long for a bus message travels as its SHA-256
 * (`hashed`): receivers cannot know the key, so they treat it as a change of its namespace.
 */
export type ChangeRef = KeyChange | NamespaceChange;
export interface KeyChange {
  prefix: string;
  namespace: string;
  key: string;
  hashed?: boolean;
}
export interface NamespaceChange {
  prefix: string;
  namespace: string;
  key?: undefined;
}

/** A tag invalidated, as the bus carries it: the tag keyspace it belongs to, and the tag. */
export interface TagChange {
  tagPrefix: string;
  tag: string;
}

/** The hashed mark of a namespaced name (a plain key's is `#`, see `toWireKey`). */
const NAMESPACED_HASH_MARK = '#~';
/** Ends a refresh marker: `<wire>#r`. */
const REFRESH_MARK = '#r';
const DIGEST_LENGTH = 43;

/** The wire keys of one client's entries (one prefix). */
export class Keyspace {
  constructor(readonly prefix: string) {}

  /** A plain key, as other clients (memjs, pylibmc) name it. */
  plain(key: string): string {
    return toWireKey(this.prefix + key);
  }

  /** A namespace's generation counter. */
  generation(namespace: string): string {
    return this.namespaced(namespace, 'gen');
  }

  /** The generation counter of a key's variants. */
  group(namespace: string, key: string): string {
    return this.namespaced(namespace, 'r:' + key);
  }

  /** A namespaced entry under the given generation (and variant group, for a variant). */
  entry(ref: EntryRef, generation: number, group: number): string {
    return ref.variant === undefined
      ? this.namespaced(ref.namespace!, `${generation}:${ref.key}`)
      : this.namespaced(ref.namespace!, `${generation}v${group}:${JSON.stringify([ref.key, ref.variant])}`);
  }

  /** `<prefix><namespace>#<tail>`, as is when it holds no other `#` and fits, else hashed. */
  private namespaced(namespace: string, tail: string): string {
    return marked(`${this.prefix}${namespace}#${tail}`, tail);
  }
}

/** A tag's version key: `<tagPrefix><tag>#tag`, hashed when the tag holds `#`, a space or non-ASCII, or is long. */
export function tagWire(tagPrefix: string, tag: string): string {
  const name = `${tagPrefix}${tag}#tag`;
  return marked(name, name.length <= MAX_KEY_LENGTH ? tag : '#');
}

/** `name` as is when it fits and `tail` holds nothing but printable ASCII without `#`, else hashed. */
function marked(name: string, tail: string): string {
  if (name.length <= MAX_KEY_LENGTH) {
    let plain = true;
    for (let i = 0; i < tail.length; i++) {
      const c = tail.charCodeAt(i);
      if (c <= 0x20 || c >= 0x7f || c === 0x23) {
        plain = false;
        break;
      }
    }
    if (plain) return name;
  }
  return hashedKey(name, NAMESPACED_HASH_MARK);
}

/** The key that marks a background refresh of `wire` as under way. */
export function refreshMarker(wire: string): string {
  if (wire.length + REFRESH_MARK.length <= MAX_KEY_LENGTH) return wire + REFRESH_MARK;
  const digest = createHash('sha256').update(wire, 'latin1').digest('base64url');
  return wire.slice(0, MAX_KEY_LENGTH - REFRESH_MARK.length - DIGEST_LENGTH) + REFRESH_MARK + digest;
}

/**
 * The names of loads running in this process (`Flights`): a read's wire key (HTTP reads, whose
 * hits are raw JSON text, marked by `\1`), or, while the cache cannot be read, the entry itself,
 * marked by `\0`. Wire keys are printable, so the three forms never meet.
 */
export const flightNames = {
  ofWire(wire: string, rawJson: boolean): string {
    return rawJson ? '\u0001' + wire : wire;
  },
  /** A tagged read's load: its wire's name, `\2`, and the tag versions it stores under. */
  ofTagged(wire: string, rawJson: boolean, stamps: ReadonlyArray<readonly [string, number]>): string {
    let name = flightNames.ofWire(wire, rawJson) + '\u0002';
    for (const stamp of stamps) name += `${stamp[1]},`;
    return name;
  },
  /** An entry's load while no generation is known: `\0[ns,key]` and its variant. */
  ofEntry(ref: EntryRef): string {
    const head = flightNames.keyPrefix(ref);
    return ref.variant === undefined ? head : `${head}\u0000${ref.variant}`;
  },
  /** Starts every `ofEntry` name of a key, with all its variants (a JSON array is closed by `]`). */
  keyPrefix(ref: { namespace?: string; key: string }): string {
    return '\u0000' + JSON.stringify([ref.namespace ?? '', ref.key]);
  },
  /** Starts every `ofEntry` name of a namespace. */
  namespacePrefix(namespace: string): string {
    return `\u0000[${JSON.stringify(namespace)},`;
  },
};

/**
 * The near cache's names of a change: a key's family (every variant, under every generation) and
 * a namespace's name. `\0` cannot occur in a prefix or a namespace, and the key comes last, so
 * distinct changes never share a name; a hashed key is marked by `\1` where a key has `\0`.
 */
export const changeNames = {
  family(ref: KeyChange): string {
    return `${ref.prefix}\u0000${ref.namespace}${ref.hashed === true ? '\u0001' : '\u0000'}${ref.key}`;
  },
  namespaceName(ref: NamespaceChange | KeyChange): string {
    return `${ref.prefix}\u0000${ref.namespace}`;
  },
  /** A tag's name: `\2` never starts a prefix (printable ASCII), so it meets no family or namespace. */
  tagName(ref: TagChange): string {
    return `\u0002${ref.tagPrefix}\u0000${ref.tag}`;
  },
  /** A key's change, its key replaced by its SHA-256 when the whole would exceed `maxLength`. */
  ofKey(prefix: string, target: { namespace?: string; key: string }, maxLength: number): KeyChange {
    const namespace = target.namespace ?? '';
    if (prefix.length + namespace.length + target.key.length <= maxLength)
      return { prefix, namespace, key: target.key };
    return { prefix, namespace, key: createHash('sha256').update(target.key).digest('base64url'), hashed: true };
  },
};
