/**
 * Line-level lexing that mirrors PowerDNS's ZoneParserTNG, so we split exactly where it does:
 * owner, TTL, class and type are whitespace-separated parts (quotes do not group them); the record
 * data is the raw rest of the line, with `;` comments and one pair of parentheses removed
 * outside quotes, continued over lines until the `)`.
 */

export interface Part {
  text: string;
  /** Offset in the line. */
  start: number;
}

/** Whitespace-separated parts (space, tab, newline, as PowerDNS's vstringtok). */
export function splitParts(line: string): Part[] {
  const parts: Part[] = [];
  let start = -1;
  for (let i = 0; i <= line.length; i++) {
    const c = i < line.length ? line.charCodeAt(i) : 0x20;
    const blank = c === 0x20 || c === 0x09 || c === 0x0a;
    if (!blank && start < 0) start = i;
    else if (blank && start >= 0) {
      parts.push({ text: line.slice(start, i), start });
      start = -1;
    }
  }
  return parts;
}

/** Position of the first `c` outside quotes and not escaped by a backslash, or -1. */
export function findUnquoted(line: string, c: string, from = 0): number {
  if (line.indexOf(c, from) < 0) return -1; // the common case, without a scan for quotes
  let inQuote = false;
  for (let i = from; i < line.length; i++) {
    const ch = line[i];
    if (ch === '\\') i++;
    else if (ch === '"') inQuote = !inQuote;
    else if (ch === c && !inQuote) return i;
  }
  return -1;
}

/** The line without its comment (from the first `;` outside quotes). */
export function chopComment(line: string): string {
  const i = findUnquoted(line, ';');
  return i < 0 ? line : line.slice(0, i);
}

const BLANK = ' \t\r\n\x1a';
const isBlank = (c: string | undefined) => c !== undefined && BLANK.includes(c);

/** Trailing blanks, as ZoneParserTNG trims each line (space, tab, CR, LF, ^Z). */
export function trimEnd(s: string): string {
  let end = s.length;
  while (end > 0 && isBlank(s[end - 1])) end--;
  return s.slice(0, end);
}

/** Leading blanks count. */
export function leadingBlanks(s: string): number {
  let i = 0;
  while (i < s.length && isBlank(s[i])) i++;
  return i;
}

/** Where a stretch of record data came from, to point errors at the right line and column. */
export interface Mark {
  /** Offset in the joined data. */
  at: number;
  line: number;
  /** 1-based column in that line. */
  column: number;
}

/**
 * Record data being assembled from one or more lines, with a map from offsets back to
 * positions. Removing a parenthesis or joining lines starts a new mark.
 */
export class RecordData {
  text = '';
  readonly marks: Mark[] = [];

  /** Appends `s`, which starts at (line, column). */
  add(s: string, line: number, column: number): void {
    this.marks.push({ at: this.text.length, line, column });
    this.text += s;
  }

  /** Removes the first unquoted `c` (as ZoneParserTNG's findAndElide); says whether there was one. */
  elide(c: string, from = 0): boolean {
    const i = findUnquoted(this.text, c, from);
    if (i < 0) return false;
    const pos = this.position(i + 1);
    this.text = this.text.slice(0, i) + this.text.slice(i + 1);
    for (const m of this.marks) if (m.at > i) m.at--;
    this.marks.push({ at: i, line: pos.line, column: pos.column });
    this.marks.sort((a, b) => a.at - b.at);
    return true;
  }

  /** Drops leading and trailing blanks of the whole. */
  trim(): void {
    this.text = trimEnd(this.text);
    const lead = leadingBlanks(this.text);
    if (lead === 0) return;
    const first = this.position(lead);
    this.text = this.text.slice(lead);
    const kept = this.marks.filter((m) => m.at > lead).map((m) => ({ ...m, at: m.at - lead }));
    this.marks.splice(0, this.marks.length, { at: 0, line: first.line, column: first.column }, ...kept);
  }

  /** Line and column of an offset in the data. */
  position(offset: number): { line: number; column: number } {
    let best = this.marks[0] ?? { at: 0, line: 1, column: 1 };
    for (const m of this.marks) if (m.at <= offset) best = m;
    return { line: best.line, column: best.column + (offset - best.at) };
  }
}
