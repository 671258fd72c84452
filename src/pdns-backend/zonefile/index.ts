/** RFC 1035 master files (and inline record lines) as PowerDNS remote-backend records. */
export { parseZone, parseRecordLines, type ZoneRecord, type ParseOptions } from './parser.js';
export { ZoneFileError } from './errors.js';
