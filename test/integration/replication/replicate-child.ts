/** Entry of the replicator child process in the crash test: `multisite replicate` and nothing else. */
import { run } from '../../../src/cli/commands/replicate.js';

run(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`replicate: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  },
);
