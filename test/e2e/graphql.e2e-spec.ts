import { ApolloDriver, type ApolloDriverConfig } from '@nestjs/apollo';
import type { INestApplication } from '@nestjs/common';
import { Args, Field, GraphQLModule, ID, Int, Mutation, ObjectType, Query, Resolver } from '@nestjs/graphql';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cacheable, CacheEvict, MemcachedCache } from '../../lib/index.js';
import { startMemcachedApp } from '../support/nest-app.js';
import { MemcachedDaemon, sleep } from '../support/memcached-daemon.js';

@ObjectType()
class Book {
  @Field(() => ID) id!: string;
  @Field() title!: string;
  @Field(() => Int) version!: number;
}

const books = new Map<string, Book>([['1', { id: '1', title: 'Dune', version: 1 }]]);
let loads = 0;

@Resolver(() => Book)
class BooksResolver {
  @Query(() => Book, { nullable: true })
  @Cacheable({ namespace: 'books', key: (id: string) => id })
  async book(@Args('id', { type: () => ID }) id: string): Promise<Book | null> {
    loads++;
    return books.get(id) ?? null;
  }

  @Mutation(() => Book)
  @CacheEvict({ namespace: 'books', key: (id: string) => id })
  async retitle(@Args('id', { type: () => ID }) id: string, @Args('title') title: string): Promise<Book> {
    const book = { ...books.get(id)!, title, version: books.get(id)!.version + 1 };
    books.set(id, book);
    return book;
  }
}

describe('GraphQL resolvers are cached through the provider path (@nestjs/graphql + Apollo)', () => {
  let daemon: MemcachedDaemon;
  let app: INestApplication;
  const gql = (query: string) => request(app.getHttpServer()).post('/graphql').send({ query });

  beforeAll(async () => {
    ({ app, daemon } = await startMemcachedApp({
      imports: [GraphQLModule.forRoot<ApolloDriverConfig>({ driver: ApolloDriver, autoSchemaFile: true })],
      providers: [BooksResolver],
    }));
  });
  afterAll(async () => {
    await app?.close();
    await daemon?.kill();
  });

  it('a query resolver with @Cacheable runs once for repeated queries; a mutation with @CacheEvict evicts it', async () => {
    const read = async () => (await gql('{ book(id: "1") { id title version } }').expect(200)).body.data.book;
    expect(await read()).toStrictEqual({ id: '1', title: 'Dune', version: 1 });
    await sleep(20);
    expect(await read()).toStrictEqual({ id: '1', title: 'Dune', version: 1 });
    expect(loads).toBe(1);
    const changed = (await gql('mutation { retitle(id: "1", title: "Dune Messiah") { title version } }').expect(200))
      .body.data.retitle;
    expect(changed).toStrictEqual({ title: 'Dune Messiah', version: 2 });
    expect(await read()).toStrictEqual({ id: '1', title: 'Dune Messiah', version: 2 });
    expect(loads).toBe(2);
    expect(app.get(MemcachedCache).stats().books).toMatchObject({ hits: 1, misses: 2, evictions: 1 });
  });
});
