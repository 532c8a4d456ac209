#!/usr/bin/env bash
# Reproduces the released weights and the README's results table: the reference recipe
# (npm run train defaults) for all three models, with and without augmentation, plus a
# second seed of SuperLight for the spread. Logs go to training-logs/.
set -euo pipefail
cd "$(dirname "$0")/.."
for model in super_light lightest light; do
  npm run --silent train -- --model "$model" --aug --out "weights/$model.pt"
  npm run --silent train -- --model "$model" --out "runs/$model-noaug.pt"
done
npm run --silent train -- --model super_light --aug --seed 43 --out runs/super_light-aug-seed43.pt
npm run --silent train -- --model super_light --seed 43 --out runs/super_light-noaug-seed43.pt
