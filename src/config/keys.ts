import { KEY_MIN_BYTES, readSecret } from '../shared/secrets.js';
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
