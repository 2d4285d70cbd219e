#!/usr/bin/env bash
# Franka Kitchen on the real kitchen-complete demonstrations (19 episodes, shipped with the package):
# FM (CPU config, one torch thread), then two lanes side by side (one thread each): FT-FM at NFE 2 and its
# evaluation; FM's evaluation at NFE 2 and 10, ResFT-FM at NFE 2 and its evaluation. 100 seeds each.
# Usage: STEPS=7000 FT_STEPS=300 bash scripts/experiments/kitchen_real.sh   (OUT=runs/kitchen_real)
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
F=.venv/bin/fmpolicy
OUT=${OUT:-runs/kitchen_real}
STEPS=${STEPS:-7000}
FT_STEPS=${FT_STEPS:-300}
FT="inference.nfe=2 train.steps=$FT_STEPS method.max_windows=2048"
EV="eval.episodes=100 eval.videos=2"
while [ "${WAIT:-0}" = 1 ] && [ ! -f "$OUT/fm/train_summary.json" ]; do sleep 20; done  # FM trained elsewhere
if [ ! -f "$OUT/fm/train_summary.json" ]; then
  echo "[$(date +%T)] FM pretraining, $STEPS steps"
  $F train task=kitchen_lowdim method=fm train.steps="$STEPS" out="$OUT/fm"
fi
(
  $F finetune checkpoint="$OUT/fm" method=ft_mle $FT out="$OUT/ft_mle"
  $F bench "bench.runs={FT-FM: $OUT/ft_mle}" $EV out="$OUT/bench_ft_mle"
) > "$OUT/lane_ft_mle.log" 2>&1 &
(
  $F bench "bench.runs={FM: $OUT/fm}" 'bench.nfes=[2,10]' $EV out="$OUT/bench_fm"
  $F finetune checkpoint="$OUT/fm" method=ft_residual $FT out="$OUT/ft_residual"
  $F bench "bench.runs={ResFT-FM: $OUT/ft_residual}" $EV out="$OUT/bench_ft_residual"
) > "$OUT/lane_fm_resft.log" 2>&1 &
wait
echo "[$(date +%T)] done"; cat "$OUT"/bench_*/bench.md
