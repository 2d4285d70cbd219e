#!/usr/bin/env bash
# Issue 11, part 1 with sample pairs at the sampling temperature (docs/results/pusht_few_step.md, "Sample pairs at
# the sampling temperature"): FM 12,000 steps on the real Push-T data (as pusht_real_ft_long.sh; training is
# deterministic), then FT-FM at NFE 2 and NFE 1 with the NLL also on the pretrained flow's own samples from latents
# drawn at the policy's sampling std (method.sample_latent_std=inference), 650 steps each so that FM steps plus
# latents, pairs and fine-tuning cost what FM's 15,100-step run (pusht_fm_same_budget.sh) does; then the 200
# evaluation seeds at the task's temperature (0.8). Two torch threads, alone on the machine.
# Usage: bash scripts/experiments/pusht_ft_sample_pairs.sh   (OUT=runs/p12)
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
F=${F:-.venv/bin/fmpolicy}
OUT=${OUT:-runs/p12}
FT="method=ft_mle method.fm_weight=0 method.sample_weight=1 method.sample_latent_std=inference"
FT_STEPS=${FT_STEPS:-650}
FT="$FT train.steps=$FT_STEPS train.warmup_steps=$((FT_STEPS / 10)) train.threads=$OMP_NUM_THREADS"
$F train task=pusht_lowdim method=fm train.steps=12000 train.threads="$OMP_NUM_THREADS" out="$OUT/fm"
$F finetune checkpoint="$OUT/fm" $FT inference.nfe=2 out="$OUT/sp2"
mkdir -p "$OUT/sp1" && cp -n "$OUT"/sp2/{latents,pairs}.pt "$OUT/sp1/"
$F finetune checkpoint="$OUT/fm" $FT inference.nfe=1 out="$OUT/sp1"
$F bench "bench.runs={FM: $OUT/fm, FT-FM1: $OUT/sp1, FT-FM2: $OUT/sp2}" 'bench.nfes=[1,2,10]' eval.episodes=200 \
  out="$OUT/bench_sp"
