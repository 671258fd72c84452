export { startProcess, type Started } from '../../../src/lab/processes.js';
