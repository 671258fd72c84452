/**
 * Test databases on the local PostgreSQL (127.0.0.1:5432, trust auth). Each test creates its own,
 * uniquely named, and drops them after (also on failure: call dropDatabases in afterAll/finally).
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';

export const PG_HOST = process.env.MULTISITE_TEST_PGHOST ?? '127.0.0.1';
export const PG_PORT = Number(process.env.MULTISITE_TEST_PGPORT ?? 5432);
export const PG_USER = process.env.MULTISITE_TEST_PGUSER ?? 'postgres';

export function dbUrl(name: string): string {
  return `postgres://${PG_USER}@${PG_HOST}:${PG_PORT}/${name}`;
}

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: dbUrl('postgres') });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/** Creates `count` empty databases named ms_<prefix>_<random>_<i>; returns their names. */
export async function createDatabases(prefix: string, count: number): Promise<string[]> {
  const tag = randomBytes(4).toString('hex');
  const names = Array.from({ length: count }, (_, i) => `ms_${prefix}_${tag}_${i}`.toLowerCase());
  await admin(async (c) => {
    for (const n of names) await c.query(`CREATE DATABASE "${n}"`);
  });
  return names;
}

/** Drops databases, ending their connections first. Never throws for a missing database. */
export async function dropDatabases(names: readonly string[]): Promise<void> {
  if (names.length === 0) return;
  await admin(async (c) => {
    for (const n of names) {
      await c.query(`DROP DATABASE IF EXISTS "${n}" WITH (FORCE)`).catch(() => undefined);
    }
  });
}

/** The one polling helper (src/lab/ports.ts), re-exported where the database tests import it. */
export { waitFor } from '../../../src/lab/ports.js';
