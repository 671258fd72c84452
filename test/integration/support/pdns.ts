export { startPdns, type Pdns, type PdnsOptions } from '../../../src/lab/pdns.js';
