export { freePort, waitFor } from '../../../src/lab/ports.js';
