import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const exec = promisify(execFile);
const CLI = join(import.meta.dirname, '../../dist/cli/main.js');

/** `make demo` as a newcomer runs it: every step it promises happens, and it cleans up (exit 0). */
describe('multisite demo', () => {
  it('shows order, drain everywhere, load, a site verified down, replication with a conflict, partitions', async () => {
    const { stdout } = await exec(process.execPath, [CLI, 'demo'], { timeout: 240_000, maxBuffer: 1 << 22 });
    const dig = (site: string, name: string) =>
      new RegExp(`${name.replace(/\./g, '\\.')} A   \\(site ${site}\\)  →  (.*)$`, 'gm');
    const answers = (site: string, name: string) => [...stdout.matchAll(dig(site, name))].map((m) => m[1]);
    // www at a: both, a drained (b only), both, b killed (a only), both again
    expect(answers('a', 'www.example.com')).toEqual([
      '192.0.2.10, 198.51.100.10',
      '198.51.100.10',
      '192.0.2.10, 198.51.100.10',
      '192.0.2.10',
      '192.0.2.10, 198.51.100.10',
    ]);
    expect(answers('a', 'load.example.com')).toEqual(['198.51.100.20, 192.0.2.20', '192.0.2.20, 198.51.100.20']);
    expect(stdout).toMatch(/^b +drained a$/m);
    expect(stdout).toMatch(/conflict log at a: update-update, winner b \(plan=team\), loser a \(plan=pro\)/);
    expect(stdout).toMatch(/b: \(1, alice, team\) \(2, bob, free\)/);
    expect(stdout).toMatch(/p1 active at b, epoch 2/);
    expect(stdout).toMatch(/multisite run stopped on SIGTERM \(exit 0\)/);
  }, 300_000);
});
