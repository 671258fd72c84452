/** pgbench's connection options for the server of a postgres:// URL (host, port, user; defaults 127.0.0.1, 5432, postgres). */
export function pgbenchConnection(base: string): string[] {
  const u = new URL(base);
  return ['-h', u.hostname || '127.0.0.1', '-p', u.port || '5432', '-U', decodeURIComponent(u.username) || 'postgres'];
}
