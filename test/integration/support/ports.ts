export { freePort, waitFor, waitForValue } from '../../../src/lab/ports.js';
