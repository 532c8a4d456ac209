#!/usr/bin/env bash
# Reproduces the README's results: the reference recipe (the defaults of npm run train)
# for all three models with and without augmentation, and more seeds of SuperLight for
# the spread, then every run of issue 15's tiny models (scripts/tiny.ts: the searches on the
# validation split, then the final runs). Weights go to runs/ (runs/tiny/), logs to
# training-logs/ (training-logs/tiny/); the released weights/*.pt are the --aug runs named
# in the README.
#   bash scripts/train-release.sh [seed ...]     (default seeds: 42 43)
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=("${@:-42 43}")
read -r -a seeds <<<"${seeds[*]}"
first=${seeds[0]}
for model in super_light lightest light; do
  for aug in --aug --no-aug; do
    npm run --silent train -- --model "$model" "$aug" --seed "$first" --out "runs/$model-${aug#--}-s$first.pt"
  done
done
for seed in "${seeds[@]:1}"; do
  for aug in --aug --no-aug; do
    npm run --silent train -- --model super_light "$aug" --seed "$seed" --out "runs/super_light-${aug#--}-s$seed.pt"
  done
done
# The tiny models, in the order training-logs/tiny/DECISIONS.md records them.
npx tsx scripts/tiny.ts search --model tiny8k --recipes sgd-ls-ema,sgd-plain,adamw-ref
npx tsx scripts/tiny.ts search --model tiny8k-wide --recipes adamw-ref
npx tsx scripts/tiny.ts search --model tiny8k --recipes sgd-rot-ema
npx tsx scripts/tiny.ts final --model tiny8k --recipe adamw-ref --seeds 1,2,3,4,5
# weights/tiny8k.pt: the final epoch of seed 1, the release seed declared before the runs.
cp runs/tiny/tiny8k-s1.pt weights/tiny8k.pt
npx tsx scripts/tiny.ts search --model tiny8k-fact-deep --recipes adamw-ref
npx tsx scripts/tiny.ts search --model tiny8k --recipes adamw-ema
npx tsx scripts/tiny.ts search --model tiny2k --recipes adamw-ref,adamw-light
npx tsx scripts/tiny.ts search --model tiny8k --recipes adamw-b64,adamw-b32
# adamw-b64 cleared the rule on the split, but its five seeds were level with adamw-ref's on
# the test set, so weights/tiny8k.pt stays as copied above (these runs overwrite runs/tiny/tiny8k-s*.pt).
npx tsx scripts/tiny.ts final --model tiny8k --recipe adamw-b64 --seeds 1,2,3,4,5
npx tsx scripts/tiny.ts search --model tiny5k --recipes adamw-ref,adamw-b64
npx tsx scripts/tiny.ts search --model tiny2k --recipes adamw-b64
for model in tiny5k tiny2k; do
  npx tsx scripts/tiny.ts final --model "$model" --recipe adamw-ref --seeds 1,2,3,4,5
  cp "runs/tiny/$model-s1.pt" "weights/$model.pt"
done
