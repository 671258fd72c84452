#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { commands, type CommandEntry } from './commands/index.js';
import { UsageError, wantsHelp } from './args.js';

/** `multisite <command> [options]`: each command lives in its own file and is loaded on demand. */
async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage());
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-V' || name === 'version') {
    process.stdout.write(`multisite ${version()}\n`);
    return 0;
  }
  const entry = commands[name];
  if (!entry) {
    process.stderr.write(`multisite: unknown command '${name}'\n\n${usage()}`);
    return 2;
  }
  if (wantsHelp(rest)) {
    process.stdout.write(commandHelp(name, entry));
    return 0;
  }
  try {
    const mod = await entry.load();
    return await mod.run(rest);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`multisite ${name}: ${err.message}\nusage: multisite ${name} ${entry.usage}\n`);
      return 2;
    }
    process.stderr.write(`multisite ${name}: ${(err as Error).message}\n`);
    return 1;
  }
}

function usage(): string {
  const rows = Object.entries(commands).map(([n, c]) => `  ${n.padEnd(15)} ${c.summary}`);
  return `usage: multisite <command> [options]\n\ncommands:\n${rows.join('\n')}\n`;
}

function commandHelp(name: string, c: CommandEntry): string {
  return `usage: multisite ${name} ${c.usage}\n\n${c.summary}\n\nexample:\n  ${c.example}\n`;
}

/** The installed package's version (package.json sits two levels above dist/cli/main.js). */
function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`multisite: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  },
);
