#!/usr/bin/env bash
# Issue 11, part 1 at the longer CPU budget (docs/results/pusht_few_step.md, "The longer CPU budget at T 0.8"):
# FM 12,000 steps on the real Push-T data, FT-FM at NFE 2 and NFE 1 (1,200 steps, no FM regularizer,
# 8,192 windows; the NFE-1 run reuses the NFE-2 run's latents), FT-FM at NFE 2 for 2,400 steps, then the
# 200 evaluation seeds at the task's temperature (0.8). Two torch threads, alone on the machine.
# Usage: bash scripts/experiments/pusht_real_ft_long.sh   (OUT=runs/p12)
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
F=${F:-.venv/bin/fmpolicy}
OUT=${OUT:-runs/p12}
FT="method=ft_mle method.fm_weight=0 train.threads=$OMP_NUM_THREADS"
$F train task=pusht_lowdim method=fm train.steps=12000 train.threads="$OMP_NUM_THREADS" out="$OUT/fm"
$F finetune checkpoint="$OUT/fm" $FT inference.nfe=2 train.steps=1200 out="$OUT/ft2"
for run in ft1 ft2_2400; do mkdir -p "$OUT/$run" && cp -n "$OUT/ft2/latents.pt" "$OUT/$run/latents.pt"; done
$F finetune checkpoint="$OUT/fm" $FT inference.nfe=1 train.steps=1200 out="$OUT/ft1"
$F finetune checkpoint="$OUT/fm" $FT inference.nfe=2 train.steps=2400 out="$OUT/ft2_2400"
$F bench "bench.runs={FM: $OUT/fm, FT-FM1: $OUT/ft1, FT-FM2: $OUT/ft2}" 'bench.nfes=[1,2,10]' eval.episodes=200 out="$OUT/bench"
$F eval checkpoint="$OUT/ft2_2400" eval.episodes=200 out="$OUT/ft2_2400/eval200"
