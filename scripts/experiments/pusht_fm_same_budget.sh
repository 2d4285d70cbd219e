#!/usr/bin/env bash
# Issue 11, part 1's same-budget baseline (docs/results/pusht_few_step.md, "FM given the fine-tuning's
# compute"): FT-FM at NFE 2 (pusht_real_ft_long.sh) costs 12,000 FM steps plus 2.7 min of latents and 9.9 min
# of fine-tuning on a 245-ms-per-step machine, about 3,100 FM steps more. This trains FM for 15,100 steps
# from scratch (its cosine schedule spans them all) and benches it over the 200 evaluation seeds at the
# task's temperature (0.8). Two torch threads, alone on the machine.
# Usage: bash scripts/experiments/pusht_fm_same_budget.sh   (OUT=runs/p15)
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
F=${F:-.venv/bin/fmpolicy}
OUT=${OUT:-runs/p15}
STEPS=${STEPS:-15100}
$F train task=pusht_lowdim method=fm train.steps="$STEPS" train.threads="$OMP_NUM_THREADS" out="$OUT/fm"
$F bench "bench.runs={FM: $OUT/fm}" 'bench.nfes=[1,2,10]' eval.episodes=200 out="$OUT/bench"
