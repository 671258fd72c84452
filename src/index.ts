/** What the package exports as a library (`import { FailoverClient } from 'multisite'`); the command is `multisite`. */
export {
  FailoverClient,
  type FailoverClientOptions,
  type FailoverEvent,
  type FailoverResponse,
  type ServerEntry,
  type CoordinatorLink,
  type HttpRequest,
  type HttpResponse,
} from './failover-client/index.js';
export { signRequest, verifyRequest, AUTH_HEADER } from './coordinator/auth.js';
export {
  readSecret,
  readSecretFile,
  readSecretEnv,
  secretBytes,
  SecretError,
  KEY_MIN_BYTES,
  type SecretOptions,
  type SecretSource,
} from './shared/secrets.js';
