#!/usr/bin/env bash
# Franka Kitchen, expert data: FT-FM at NFE 2 against FM at NFE 10 at temperature 0.5 (docs/results/kitchen.md,
# "Another fine-tuning seed and a second noise draw"). From the 14,000-step FM of
#   OUT=runs/kd14 STEPS=14000 EVAL_EPISODES=200 bash scripts/experiments/kitchen_expert_dart.sh
# FT-FM (1,200 steps at NFE 2, sample pairs at the sampling temperature: the default) with seeds 0, 1 and 2, and
# seed 0 without the FM regularizer, with it at weight 1, with a weight of 10 on the sample pairs, and with noise on
# the conditioning vector (seed 0's variants reuse its latents and pairs), with the sample pairs at the observations
# the FM itself visits acting at NFE 2 (method.onpolicy_from, 2026-12-06), and with the sample pairs made by the FM's
# own Euler-10 policy instead of RK4-32, at weight 1 and 10 (2026-12-07: the FM with RK4-32 scores below Euler-10
# in closed loop). Each run, the FM at NFE 10 and the FM with RK4 at 32 evaluations on the 200 evaluation seeds
# (100000..) with the sampling noise of eval.noise_seed 0 and 1. 2026-12-07, night: without the sample pairs and
# without the FM regularizer (the real data's recipe), fine-tuning seeds 0 and 1. Two torch threads, alone.
# Usage: bash scripts/experiments/kitchen_expert_ft.sh   (OUT=runs/kd14; RUNS="np_fm0 np_fm0_seed1" for some runs
#        only: the FM at NFE 10 is evaluated either way)
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
F=.venv/bin/fmpolicy
OUT=${OUT:-runs/kd14}
FT="method=ft_mle inference.nfe=2 train.steps=1200 train.threads=$OMP_NUM_THREADS"
E="eval.episodes=200 inference.temperature=0.5 eval.videos=0"
evals() { # RUN [eval args]: noise seeds 0 and 1
  local run=$1
  shift
  [ -f "$run/eval200_T0.5/metrics.json" ] || $F eval checkpoint="$run" $E "$@" out="$run/eval200_T0.5" </dev/null
  [ -f "$run/eval200_T0.5_ns1/metrics.json" ] ||
    $F eval checkpoint="$run" $E eval.noise_seed=1 "$@" out="$run/eval200_T0.5_ns1" </dev/null
}
finetune() { # RUN KEY=VALUE...: fine-tune the FM into RUN, starting from seed 0's latent and pair caches
  local run=$1
  shift
  [ -f "$run/train_summary.json" ] && return
  mkdir -p "$run"
  case $run in # the seeds make their own caches
    "$OUT/ftsp" | "$OUT"/*_seed*) ;;
    *) [ ! -f "$OUT/ftsp/pairs.pt" ] || cp -n "$OUT"/ftsp/{latents,pairs}.pt "$run/" ;;
  esac
  $F finetune checkpoint="$OUT/fm" $FT "$@" out="$run"
}
declare -A ARGS=(
  [ftsp]=""
  [ftsp_seed1]="seed=1"
  [ftsp_seed2]="seed=2"
  [ftsp_fm0]="method.fm_weight=0"
  [ftsp_fm1]="method.fm_weight=1.0"
  [sw10]="method.sample_weight=10"
  [ftsp_cn0.01]="method.cond_noise=0.01"
  [ftsp_onpol]="method.onpolicy_from=$OUT/fm method.onpolicy_nfe=2"
  [ftsp_e10]="method.pair_solver=euler method.pair_nfe=10"
  [sw10_e10]="method.pair_solver=euler method.pair_nfe=10 method.sample_weight=10"
  [np_fm0]="method.sample_weight=0 method.fm_weight=0"
  [np_fm0_seed1]="seed=1 method.sample_weight=0 method.fm_weight=0"
)
ALL="ftsp ftsp_seed1 ftsp_seed2 ftsp_fm0 ftsp_fm1 sw10 ftsp_cn0.01 ftsp_onpol ftsp_e10 sw10_e10 np_fm0 np_fm0_seed1"
RUNS=${RUNS:-$ALL}
for run in $RUNS; do
  [ -n "${ARGS[$run]+set}" ] || { echo "unknown run '$run'; RUNS takes: $ALL" >&2; exit 2; }
done
# shellcheck disable=SC2086  # each run's arguments are split on purpose
for run in $RUNS; do finetune "$OUT/$run" ${ARGS[$run]}; done
evals "$OUT/fm" eval.nfe=10
for run in $RUNS; do
  evals "$OUT/$run"
  [ -f "$OUT/$run/compare_vs_fm10/compare.json" ] || # paired, the two noise draws averaged per seed
    $F compare a="$OUT/fm/eval200_T0.5,$OUT/fm/eval200_T0.5_ns1" \
      b="$OUT/$run/eval200_T0.5,$OUT/$run/eval200_T0.5_ns1" out="$OUT/$run/compare_vs_fm10"
done
if [ "$RUNS" = "$ALL" ]; then
  RK4="inference.solver=rk4 inference.nfe=32 eval.nfe=32" # the accurate flow the sample pairs copy
  [ -f "$OUT/fm/eval200_T0.5_rk4_32/metrics.json" ] ||
    $F eval checkpoint="$OUT/fm" $E $RK4 out="$OUT/fm/eval200_T0.5_rk4_32" </dev/null
  [ -f "$OUT/fm/eval200_T0.5_rk4_32_ns1/metrics.json" ] ||
    $F eval checkpoint="$OUT/fm" $E $RK4 eval.noise_seed=1 out="$OUT/fm/eval200_T0.5_rk4_32_ns1" </dev/null
  $F compare a="$OUT/fm/eval200_T0.5" b="$OUT/fm/eval200_T0.5_rk4_32" out="$OUT/fm/compare_rk4_vs_euler10"
  for run in ftsp_e10 sw10_e10; do
    $F compare a="$OUT/fm/eval200_T0.5" b="$OUT/$run/eval200_T0.5" out="$OUT/$run/compare200_vs_fm10"
  done
fi
