import { readFileSync } from 'node:fs';
import { ConfigError, ConfigErrors, keyPath, resolvePath, type LoadedConfig } from '../config/index.js';
import { parseRecordLines, parseZone, ZoneFileError, type ZoneRecord } from './zonefile/index.js';

/** A zone's records as loaded from its file and inline lines, checked to belong to it. */
export interface LoadedZone {
  id: number;
  name: string;
  records: ZoneRecord[];
  recordCount: number;
  serial: number;
}

/** A record left out of its zone (on-error: skip-records), located. */
export interface SkippedRecord {
  zone: string;
  /** The zone file (or the config file, for inline records), line and column. */
  file: string;
  line: number;
  column: number;
  message: string;
}

/** A zone not served at all, with the located errors that made it so. */
export interface RefusedZone {
  zone: string;
  errors: ConfigError[];
}

export interface ZonesLoaded {
  zones: LoadedZone[];
  skipped: SkippedRecord[];
  refused: RefusedZone[];
}

/**
 * Loads every configured zone. One bad zone never takes the others down: a zone with a syntax
 * error, no SOA, an unreadable file (or, with on-error: refuse-zone, a record outside it) is
 * refused alone; records outside their zone are skipped with a warning by default. The daemon and
 * `check-config` both call this, so they report the same problems.
 */
export function loadZones(loaded: LoadedConfig): ZonesLoaded {
  const out: ZonesLoaded = { zones: [], skipped: [], refused: [] };
  loaded.config.zones.forEach((zone, i) => {
    const skipped: SkippedRecord[] = [];
    try {
      const records = [...fromFile(loaded, i, skipped), ...fromInline(loaded, i, skipped)];
      out.zones.push(checkZone(loaded, i, zone.name, records));
      out.skipped.push(...skipped);
    } catch (err) {
      if (err instanceof ConfigError) out.refused.push({ zone: zone.name, errors: [err] });
      else if (err instanceof ConfigErrors) out.refused.push({ zone: zone.name, errors: err.errors });
      else throw err;
    }
  });
  return out;
}

/** The lines an operator reads, the same from the daemon's log and from `check-config`. */
export function describeZoneProblems(result: ZonesLoaded): { warnings: string[]; errors: string[] } {
  return {
    warnings: result.skipped.map(
      (s) =>
        `${s.file}:${s.line}:${s.column}: warning: ${s.message}; record skipped (zone ${s.zone} is served without it)`,
    ),
    errors: result.refused.flatMap((r) =>
      r.errors.map((e) => `${e.message} (zone ${r.zone} refused; the other zones are served)`),
    ),
  };
}

/** Out-of-zone records: kept as a located warning (skip-records) or thrown (refuse-zone). */
function outOfZoneHandler(
  loaded: LoadedConfig,
  i: number,
  skipped: SkippedRecord[],
  locate: (e: ZoneFileError) => SkippedRecord,
): (e: ZoneFileError) => void {
  const zone = loaded.config.zones[i]!;
  return (e) => {
    if (zone['on-error'] === 'refuse-zone') throw e;
    skipped.push(locate(e));
  };
}

function fromFile(loaded: LoadedConfig, i: number, skipped: SkippedRecord[]): ZoneRecord[] {
  const zone = loaded.config.zones[i]!;
  if (zone.file === undefined) return [];
  const path = resolvePath(loaded, zone.file);
  const onOutOfZone = outOfZoneHandler(loaded, i, skipped, (e) => ({
    zone: zone.name,
    file: e.file,
    line: e.line,
    column: e.column,
    message: e.problem,
  }));
  try {
    return parseZone(readFileSync(path, 'utf8'), { origin: zone.name, file: path, defaultTtl: zone.ttl, onOutOfZone });
  } catch (err) {
    if (err instanceof ZoneFileError) throw new ConfigError(err.file, err.line, err.column, '', err.problem);
    throw configErrorAt(loaded, ['zones', i, 'file'], `cannot read ${path}: ${(err as Error).message}`);
  }
}

function fromInline(loaded: LoadedConfig, i: number, skipped: SkippedRecord[]): ZoneRecord[] {
  const zone = loaded.config.zones[i]!;
  if (zone.records === undefined) return [];
  // Inline records are located in the config file: line N of the records is zones[i].records[N-1].
  const at = (e: ZoneFileError) => loaded.locate(['zones', i, 'records', e.line - 1]);
  const onOutOfZone = outOfZoneHandler(loaded, i, skipped, (e) => ({
    zone: zone.name,
    file: loaded.file,
    ...at(e),
    message: `${keyPath(['zones', i, 'records', e.line - 1])}: ${e.problem}`,
  }));
  try {
    return parseRecordLines(zone.records, { origin: zone.name, file: loaded.file, defaultTtl: zone.ttl, onOutOfZone });
  } catch (err) {
    if (!(err instanceof ZoneFileError)) throw err;
    throw configErrorAt(loaded, ['zones', i, 'records', err.line - 1], err.problem);
  }
}

function checkZone(loaded: LoadedConfig, i: number, name: string, records: ZoneRecord[]): LoadedZone {
  const where: (string | number)[] = ['zones', i, loaded.config.zones[i]!.file ? 'file' : 'records'];
  const soas = records.filter((r) => r.type === 'SOA');
  const apexSoa = soas.find((r) => r.name.toLowerCase() === name);
  if (!apexSoa) throw configErrorAt(loaded, where, `zone ${name} has no SOA record at its apex`);
  if (soas.length > 1)
    throw configErrorAt(
      loaded,
      where,
      `zone ${name} has ${soas.length} SOA records; it needs exactly one, at the apex`,
    );
  const serial = Number(apexSoa.content.split(/\s+/)[2] ?? 0);
  return { id: i + 1, name, records, recordCount: records.length, serial };
}

function configErrorAt(loaded: LoadedConfig, path: (string | number)[], problem: string): ConfigError {
  const { line, column } = loaded.locate(path);
  return new ConfigError(loaded.file, line, column, keyPath(path), problem);
}
