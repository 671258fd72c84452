import { parse } from '../args.js';
import { runDemo } from '../../lab/demo.js';

export async function run(args: string[]): Promise<number> {
  const { values } = parse(args, { keep: { type: 'boolean' } });
  return runDemo({ keep: values.keep ?? false });
}
