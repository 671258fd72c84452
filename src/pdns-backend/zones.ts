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

/** Loads every configured zone; problems are ConfigErrors naming the file (or config line). */
export function loadZones(loaded: LoadedConfig): LoadedZone[] {
  const errors: ConfigError[] = [];
  const zones: LoadedZone[] = [];
  loaded.config.zones.forEach((zone, i) => {
    try {
      const records = [...fromFile(loaded, i), ...fromInline(loaded, i)];
      zones.push(checkZone(loaded, i, zone.name, records));
    } catch (err) {
      if (err instanceof ConfigError) errors.push(err);
      else if (err instanceof ConfigErrors) errors.push(...err.errors);
      else throw err;
    }
  });
  if (errors.length > 0) throw new ConfigErrors(errors);
  return zones;
}

function fromFile(loaded: LoadedConfig, i: number): ZoneRecord[] {
  const zone = loaded.config.zones[i]!;
  if (zone.file === undefined) return [];
  const path = resolvePath(loaded, zone.file);
  try {
    return parseZone(readFileSync(path, 'utf8'), { origin: zone.name, file: path, defaultTtl: zone.ttl });
  } catch (err) {
    if (err instanceof ZoneFileError) {
      throw new ConfigError(err.file, err.line, err.column, '', err.message.replace(/^.*?:\d+:\d+: /, ''));
    }
    throw configErrorAt(loaded, ['zones', i, 'file'], `cannot read ${path}: ${(err as Error).message}`);
  }
}

function fromInline(loaded: LoadedConfig, i: number): ZoneRecord[] {
  const zone = loaded.config.zones[i]!;
  if (zone.records === undefined) return [];
  try {
    return parseRecordLines(zone.records, { origin: zone.name, file: loaded.file, defaultTtl: zone.ttl });
  } catch (err) {
    if (!(err instanceof ZoneFileError)) throw err;
    const j = err.line - 1;
    throw configErrorAt(loaded, ['zones', i, 'records', j], err.message.replace(/^.*?:\d+:\d+: /, ''));
  }
}

function checkZone(loaded: LoadedConfig, i: number, name: string, records: ZoneRecord[]): LoadedZone {
  const where: (string | number)[] = ['zones', i, loaded.config.zones[i]!.file ? 'file' : 'records'];
  const outside = records.find((r) => !inZone(r.name.toLowerCase(), name));
  if (outside) throw configErrorAt(loaded, where, `record ${outside.name} ${outside.type} is outside zone ${name}`);
  const soas = records.filter((r) => r.type === 'SOA');
  const apexSoa = soas.find((r) => r.name.toLowerCase() === name);
  if (!apexSoa) throw configErrorAt(loaded, where, `zone ${name} has no SOA record at its apex`);
  if (soas.length > 1) throw configErrorAt(loaded, where, `zone ${name} has ${soas.length} SOA records; it needs exactly one, at the apex`);
  const serial = Number(apexSoa.content.split(/\s+/)[2] ?? 0);
  return { id: i + 1, name, records, recordCount: records.length, serial };
}

export function inZone(name: string, zone: string): boolean {
  return name === zone || zone === '.' || name.endsWith(`.${zone}`);
}

function configErrorAt(loaded: LoadedConfig, path: (string | number)[], problem: string): ConfigError {
  const { line, column } = loaded.locate(path);
  return new ConfigError(loaded.file, line, column, keyPath(path), problem);
}
