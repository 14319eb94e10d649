/** A user object whose JSON is exactly 1,024 bytes. */
export function user1k(id = 1): Record<string, unknown> {
  const base = { id, name: `User ${id}`, email: `user${id}@example.com`, country: 'FR', bio: '' };
  const pad = 1024 - JSON.stringify(base).length;
  return { ...base, bio: 'x'.repeat(pad) };
}

/** A catalog of 569 small records, about 100 KB of JSON. */
export function catalog100k(): Record<string, unknown> {
  const items = Array.from({ length: 569 }, (_, i) => ({
    sku: `SKU-${100000 + i}`,
    title: `Product number ${i} with a reasonably long title and a line of description`,
    price: Math.round(((i * 7919) % 10000) * 100) / 100,
    stock: (i * 31) % 97,
    tags: ['alpha', 'beta', i % 2 ? 'even' : 'odd'],
    rating: ((i * 13) % 50) / 10,
  }));
  return { id: 'catalog', version: 3, items };
}
