import { KEY_MIN_BYTES, readSecret } from '../shared/secrets.js';
import { ConfigError, ConfigErrors } from './errors.js';
import { resolvePath, type LoadedConfig } from './load.js';
import type { Config } from './schema.js';

/** A config section naming a shared key: a file (relative to the config) or a variable. */
export interface KeySource {
  'key-file'?: string;
  'key-env'?: string;
}

/**
 * A shared signing key (peers, coordinator, load reports) read by the one secret reader
 * (src/shared/secrets.ts): at least 16 bytes, never logged. Errors name the config key.
 */
export function readKey(loaded: Pick<LoadedConfig, 'dir'>, section: string, src: KeySource): Buffer {
  if (!src['key-file'] && !src['key-env']) throw new Error(`${section}: give key-file or key-env`);
  try {
    const file = src['key-file'] ? resolvePath(loaded, src['key-file']) : undefined;
    return readSecret({ ...(file ? { file } : { env: src['key-env'] }) }, { minBytes: KEY_MIN_BYTES });
  } catch (err) {
    throw new Error(`${section}.${src['key-file'] ? 'key-file' : 'key-env'}: ${(err as Error).message}`);
  }
}

/** The peers' shared key (peers.key-file or peers.key-env); undefined without peers. */
export function sharedKey(loaded: LoadedConfig): Buffer | undefined {
  const p = loaded.config.peers;
  return p ? readKey(loaded, 'peers', p) : undefined;
}

/** Each site's backend origins (its `status-url`s), where /partitions and /decide are served. */
export function peerOrigins(config: Config): Map<string, string[]> {
  return new Map(config.sites.map((s) => [s.name, s['status-url'].map((u) => new URL(u).origin)]));
}

/** The status page's actions key: text, at least 16 bytes (the daemon and check-config read it alike). */
export const STATUS_PAGE_KEY_OPTIONS = { minBytes: KEY_MIN_BYTES, text: true } as const;

/**
 * The status page's actions key (status-page.api-key-file or -env), read once by the site before
 * anything starts; undefined when the page is off or read-only. An unreadable key is a located
 * ConfigErrors, the same error check-config reports (host-checks.ts reads it with the same options).
 */
export function statusPageKey(loaded: LoadedConfig): Buffer | undefined {
  const cfg = loaded.config['status-page'];
  if (!cfg?.enabled) return undefined;
  const file = cfg['api-key-file'];
  const env = cfg['api-key-env'];
  if (!file && !env) return undefined;
  const key = file ? 'api-key-file' : 'api-key-env';
  try {
    return readSecret(file ? { file: resolvePath(loaded, file) } : { env: env! }, STATUS_PAGE_KEY_OPTIONS);
  } catch (err) {
    const { line, column } = loaded.locate(['status-page', key]);
    throw new ConfigErrors([new ConfigError(loaded.file, line, column, `status-page.${key}`, (err as Error).message)]);
  }
}
