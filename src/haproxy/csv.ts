import { RuntimeParseError } from './errors.js';

/**
 * HAProxy's CSV (`show stat`): a header line `# pxname,svname,...`, then one line per row, each with
 * a trailing comma. Fields that contain a comma or quote are quoted with "" escaping (csv_enc).
 * Rows are keyed by the header's names, never by column position: columns are added between
 * versions.
 */
export function parseCsv(text: string, command = 'show stat', socket = ''): Record<string, string>[] {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  const headerLine = lines[0];
  if (headerLine === undefined || !headerLine.startsWith('# ')) {
    throw new RuntimeParseError(
      command,
      socket,
      `expected a CSV header line '# pxname,...', got '${(headerLine ?? '').slice(0, 80)}'`,
    );
  }
  const header = splitCsvLine(headerLine.slice(2));
  return lines.slice(1).map((line) => {
    const fields = splitCsvLine(line);
    const row: Record<string, string> = {};
    header.forEach((name, i) => {
      if (name !== '') row[name] = fields[i] ?? '';
    });
    return row;
  });
}

/** One CSV line into fields; quoted fields may contain commas and doubled quotes. */
export function splitCsvLine(line: string): string[] {
  const fields: string[] = [];
  let i = 0;
  while (i <= line.length) {
    if (line[i] === '"') {
      let value = '';
      i++;
      while (i < line.length) {
        if (line[i] === '"') {
          if (line[i + 1] === '"') {
            value += '"';
            i += 2;
          } else {
            i++;
            break;
          }
        } else value += line[i++];
      }
      fields.push(value);
      // skip to the next separator
      while (i < line.length && line[i] !== ',') i++;
      i++;
    } else {
      const end = line.indexOf(',', i);
      if (end < 0) {
        fields.push(line.slice(i));
        break;
      }
      fields.push(line.slice(i, end));
      i = end + 1;
    }
  }
  return fields;
}
