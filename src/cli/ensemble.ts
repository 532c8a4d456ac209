// `torchlet ensemble`: evaluate an ensemble (hard majority vote by default) with the same
// report as `torchlet evaluate`, each member's accuracy beside it.
import type { Command } from 'commander';
import { InputError } from './common.js';
import { addScorerOptions, runEvaluate, type EvaluateFlags } from './evaluate.js';

export function registerEnsemble(program: Command): void {
  addScorerOptions(
    program
      .command('ensemble')
      .description('evaluate an ensemble, --member MODEL=WEIGHTS ... or --ensemble FILE.yaml, by hard majority vote (ties: the higher mean probability, then the lower digit) or soft vote'),
  ).action(async (flags: EvaluateFlags) => {
    if ((flags.member ?? []).length === 0 && flags.ensemble === undefined) throw new InputError('give the members: --member MODEL=WEIGHTS (repeated) or --ensemble FILE.yaml');
    await runEvaluate(flags);
  });
}
