#!/usr/bin/env bash
# Franka Kitchen on the real kitchen-complete demonstrations (19 episodes, shipped with the package):
# FM (CPU config), then FT-FM and ResFT-FM at NFE 2, then p1..p4 over 100 seeds for each.
# Usage: STEPS=10000 FT_STEPS=800 bash scripts/experiments/kitchen_real.sh   (OUT=runs/kitchen_real)
set -euo pipefail
cd "$(dirname "$0")/../.."
F=.venv/bin/fmpolicy
OUT=${OUT:-runs/kitchen_real}
STEPS=${STEPS:-10000}
FT_STEPS=${FT_STEPS:-800}
THREADS=${THREADS:-0}
echo "[$(date +%T)] FM pretraining, $STEPS steps"
$F train task=kitchen_lowdim method=fm train.steps="$STEPS" train.threads="$THREADS" out="$OUT/fm"
for m in ft_mle ft_residual; do
  echo "[$(date +%T)] $m at NFE 2, $FT_STEPS steps"
  $F finetune checkpoint="$OUT/fm" method=$m inference.nfe=2 train.steps="$FT_STEPS" train.threads="$THREADS" \
    method.max_windows=0 out="$OUT/$m"
done
echo "[$(date +%T)] bench over 100 seeds"
$F bench "bench.runs={FM: $OUT/fm, FT-FM: $OUT/ft_mle, ResFT-FM: $OUT/ft_residual}" 'bench.nfes=[2,10]' \
  eval.episodes=100 eval.videos=2 out="$OUT/bench"
echo "[$(date +%T)] done"
