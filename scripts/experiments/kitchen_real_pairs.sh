#!/usr/bin/env bash
# Franka Kitchen, real kitchen-complete data: do FT-FM's sample pairs (today's default, method.sample_weight=1)
# help or hurt on 18 human episodes in one order? Earlier, FT-FM at NFE 2 without them passed FM at NFE 10
# (3.52 / 0.745 against 3.31 / 0.630, 200 seeds, another FM) while with them it stayed below (3.22 against 3.31,
# 100 seeds, the FM of kitchen_temporal_ensemble.sh): two FMs, so nothing was paired. Here one FM (7,000 steps),
# FT-FM at NFE 2 with and without the pairs (1,200 steps on 2,048 windows each), every run on the 200 evaluation
# seeds at the task's temperature 0.7 and three draws of the sampling noise, compared seed by seed.
# Then (2026-12-07, evening) the same without the FM regularizer (method.fm_weight=0, as the Push-T pipeline
# fine-tunes; untried on this data; two network passes per step instead of three), for 1,200 and 2,400 steps,
# and 1,200 steps with a second fine-tuning seed.
# Two torch threads, alone on the machine. Usage: bash scripts/experiments/kitchen_real_pairs.sh  (OUT=runs/krp;
# RUNS="ft_plain_fmw0" NOISE_SEEDS="0 1" for some runs and draws only: the FM and its evaluations either way, the
# comparisons only for all runs)
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
F=${F:-.venv/bin/fmpolicy}
OUT=${OUT:-runs/krp}
T="train.threads=$OMP_NUM_THREADS"
NOISE_SEEDS=${NOISE_SEEDS:-0 1 2} # eval.noise_seed of every evaluation
[ -f "$OUT/fm/train_summary.json" ] || $F train task=kitchen_lowdim method=fm train.steps=7000 "$T" out="$OUT/fm"
finetune() { # NAME KEY=VALUE...
  local name=$1
  shift
  [ -f "$OUT/$name/train_summary.json" ] || $F finetune checkpoint="$OUT/fm" method=ft_mle inference.nfe=2 \
    train.steps=1200 method.max_windows=2048 "$T" out="$OUT/$name" "$@"
}
evals() { # RUN NFE: the 200 evaluation seeds, every noise seed
  for s in $NOISE_SEEDS; do
    [ -f "$1/eval200_nfe$2_ns$s/metrics.json" ] || $F eval checkpoint="$1" eval.nfe="$2" eval.episodes=200 \
      eval.videos=0 eval.noise_seed="$s" out="$1/eval200_nfe$2_ns$s"
  done
}
declare -A ARGS=(
  [ft_plain]="method.sample_weight=0"
  [ft_pairs]=""
  [ft_plain_fmw0]="method.sample_weight=0 method.fm_weight=0"
  [ft_plain_fmw0_2400]="method.sample_weight=0 method.fm_weight=0 train.steps=2400"
  [ft_plain_fmw0_seed1]="method.sample_weight=0 method.fm_weight=0 seed=1"
)
ALL="ft_plain ft_pairs ft_plain_fmw0 ft_plain_fmw0_2400 ft_plain_fmw0_seed1"
RUNS=${RUNS:-$ALL}
for run in $RUNS; do
  [ -n "${ARGS[$run]+set}" ] || { echo "unknown run '$run'; RUNS takes: $ALL" >&2; exit 2; }
done
evals "$OUT/fm" 10
for run in $RUNS; do
  # shellcheck disable=SC2086  # each run's arguments are split on purpose
  finetune "$run" ${ARGS[$run]}
  evals "$OUT/$run" 2
done
[ "$RUNS" = "$ALL" ] || exit 0 # the comparisons below need every run
draws() { # RUN NFE -> its evaluations, comma-separated, as compare takes them
  local s dirs=()
  for s in $NOISE_SEEDS; do dirs+=("$1/eval200_nfe$2_ns$s"); done
  (IFS=,; echo "${dirs[*]}")
}
for s in $NOISE_SEEDS; do # each draw alone, then all draws averaged per seed
  $F compare a="$OUT/fm/eval200_nfe10_ns$s" b="$OUT/ft_plain/eval200_nfe2_ns$s"
  $F compare a="$OUT/fm/eval200_nfe10_ns$s" b="$OUT/ft_pairs/eval200_nfe2_ns$s"
  $F compare a="$OUT/ft_plain/eval200_nfe2_ns$s" b="$OUT/ft_pairs/eval200_nfe2_ns$s"
done
$F compare a="$(draws "$OUT/fm" 10)" b="$(draws "$OUT/ft_plain" 2)" out="$OUT/compare_fm_plain"
$F compare a="$(draws "$OUT/fm" 10)" b="$(draws "$OUT/ft_pairs" 2)" out="$OUT/compare_fm_pairs"
$F compare a="$(draws "$OUT/ft_plain" 2)" b="$(draws "$OUT/ft_pairs" 2)" out="$OUT/compare_plain_pairs"
for run in ft_plain_fmw0 ft_plain_fmw0_2400 ft_plain_fmw0_seed1; do
  $F compare a="$(draws "$OUT/fm" 10)" b="$(draws "$OUT/$run" 2)" out="$OUT/compare_fm_$run"
  $F compare a="$(draws "$OUT/ft_plain" 2)" b="$(draws "$OUT/$run" 2)" out="$OUT/compare_plain_$run"
done
