#!/usr/bin/env bash
# Franka Kitchen on scripted-expert data with DART-style noise (issue 8's expert-data rows): 240 expert episodes
# in the real data's one order with noise of std 0.05 on the executed arm actions (the clean actions are
# recorded; about 205 are kept), FM for 7,000 CPU-config steps (the real-data recipe), FT-FM for 1,200 steps
# at NFE 2, each benched over 100 evaluation seeds at the task's temperature (0.7). Two torch threads, alone.
# Usage: bash scripts/experiments/kitchen_expert_dart.sh   (OUT=runs/kitchen_dart NOISE=0.05 STEPS=7000 FT_STEPS=1200
#        EVAL_EPISODES=100)
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
F=.venv/bin/fmpolicy
OUT=${OUT:-runs/kitchen_dart}
NOISE=${NOISE:-0.05}
STEPS=${STEPS:-7000}
FT_STEPS=${FT_STEPS:-1200}
TH="train.threads=$OMP_NUM_THREADS"
EV="eval.episodes=${EVAL_EPISODES:-100} eval.videos=2"
[ -f "$OUT/demos.zarr.summary.json" ] ||  # written last: a half-written zarr is made again
  $F demos task=kitchen_lowdim episodes=240 action_noise="$NOISE" demos.vary_order=false \
  out="$OUT/demos.zarr"
$F train task=kitchen_lowdim method=fm train.steps="$STEPS" $TH dataset.path="$OUT/demos.zarr" out="$OUT/fm"
$F bench "bench.runs={FM: $OUT/fm}" 'bench.nfes=[2,10]' $EV out="$OUT/bench_fm"
$F finetune checkpoint="$OUT/fm" method=ft_mle inference.nfe=2 train.steps="$FT_STEPS" $TH out="$OUT/ft_mle"
$F bench "bench.runs={FT-FM: $OUT/ft_mle}" 'bench.nfes=[2]' $EV out="$OUT/bench_ft_mle"
cat "$OUT"/bench_*/bench.md
