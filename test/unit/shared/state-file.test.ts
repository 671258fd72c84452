import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DrainStore } from '../../../src/shared/drain-store.js';
import { readStateFile, StateFileError, writeStateFile } from '../../../src/shared/state-file.js';

/** One corruption policy for every state file: missing is empty, damaged is refused with the file named. */
describe('state files', () => {
  const dirs: string[] = [];
  const dir = () => {
    const d = mkdtempSync(join(tmpdir(), 'multisite-state-'));
    dirs.push(d);
    return d;
  };
  afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

  it('a missing file is a first start', () => {
    expect(readStateFile(join(dir(), 'none.json'), (d) => d)).toBeUndefined();
    expect(new DrainStore(join(dir(), 'none.json')).read()).toEqual([]);
  });

  it('writes through a rename (no temporary file left) and reads back', () => {
    const d = dir();
    const path = join(d, 'sub', 'state.json');
    writeStateFile(path, { drained: ['b'] });
    expect(readdirSync(join(d, 'sub'))).toEqual(['state.json']);
    expect(readStateFile(path, (x) => x)).toEqual({ drained: ['b'] });
  });

  it.each([
    ['not JSON', '{"drained": [', /not JSON/],
    ['a list instead of an object', '[]', /not a JSON object/],
    ['the wrong shape', '{"drained": "a"}', /"drained" must be a list/],
  ])('refuses %s, naming the file and the problem', (_what, text, problem) => {
    const path = join(dir(), 'state.json');
    writeFileSync(path, text);
    const read = () => new DrainStore(path).read();
    expect(read).toThrow(StateFileError);
    expect(read).toThrow(path);
    expect(read).toThrow(problem);
  });
});
