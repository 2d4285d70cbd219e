#!/usr/bin/env bash
# Franka Kitchen, real kitchen-complete data: does replanning at every step with ACT's temporal ensembling
# (policy.n_action_steps=1 inference.temporal_ensemble=C) help, where Push-T's two-sided demonstrations made
# it hurt (docs/results/pusht_few_step.md, "Replanning at every step")? FM 7,000 steps (the Kitchen recipe,
# docs/results/kitchen.md), FT-FM at NFE 2 (1,200 steps on 2,048 windows, today's defaults), each on the
# evaluation seeds executing 8-step chunks, ensembled, and replanning at every step without ensembling;
# `fmpolicy compare` against the 8-step chunks. Two torch threads, alone on the machine.
# Usage: bash scripts/experiments/kitchen_temporal_ensemble.sh   (OUT=runs/kr EPISODES=100 COEFFS="0.01")
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
F=${F:-.venv/bin/fmpolicy}
OUT=${OUT:-runs/kr}
N=${EPISODES:-100}
E="eval.episodes=$N eval.videos=0"
[ -f "$OUT/fm/train_summary.json" ] ||
  $F train task=kitchen_lowdim method=fm train.steps=7000 train.threads="$OMP_NUM_THREADS" out="$OUT/fm"
evals() { # RUN NFE: 8-step chunks, every step, every step ensembled at each of COEFFS; compared seed by seed
  local run=$1 nfe=$2 base="$1/eval${N}_nfe$2"
  [ -f "$base/metrics.json" ] || $F eval checkpoint="$run" eval.nfe="$nfe" $E out="$base"
  for c in ${COEFFS:-0.01}; do
    [ -f "${base}_te$c/metrics.json" ] || $F eval checkpoint="$run" eval.nfe="$nfe" $E policy.n_action_steps=1 \
      inference.temporal_ensemble="$c" out="${base}_te$c"
    $F compare a="$base" b="${base}_te$c"
  done
  [ -f "${base}_nas1/metrics.json" ] ||
    $F eval checkpoint="$run" eval.nfe="$nfe" $E policy.n_action_steps=1 out="${base}_nas1"
  $F compare a="$base" b="${base}_nas1"
}
evals "$OUT/fm" 10
[ -f "$OUT/ft_mle/train_summary.json" ] || $F finetune checkpoint="$OUT/fm" method=ft_mle inference.nfe=2 \
  train.steps=1200 method.max_windows=2048 train.threads="$OMP_NUM_THREADS" out="$OUT/ft_mle"
evals "$OUT/ft_mle" 2
