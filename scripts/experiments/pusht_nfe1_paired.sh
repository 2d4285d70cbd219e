#!/usr/bin/env bash
# Issue 11, part 1 at NFE 1 and 2 with five times the evaluation seeds, compared seed by seed
# (docs/results/pusht_few_step.md, "1,000 evaluation seeds, paired"). From the 12,000-step FM: the NFE-2 FT-FM of
# weight 10 (sw10n2) and the NFE-1 student it teaches (sw10_t2, seed 0), each on the evaluation seeds
# 100000..100000+EPISODES-1 with noise seed 0, beside the FM at NFE 1, 2 and 10 and the FM of the same
# budget (15,100 steps, pusht_fm_same_budget.sh) at NFE 10; then `fmpolicy compare` on each pair.
# Two torch threads, alone on the machine.
# Usage: bash scripts/experiments/pusht_nfe1_paired.sh   (OUT=runs/p12 FM15=runs/p15/fm EPISODES=1000)
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
F=${F:-.venv/bin/fmpolicy}
OUT=${OUT:-runs/p12}
N=${EPISODES:-1000}
FM15=${FM15:-runs/p15/fm}
FT="method=ft_mle method.fm_weight=0 method.sample_weight=10 train.steps=650 train.warmup_steps=65"
FT="$FT train.threads=$OMP_NUM_THREADS"
[ -f "$OUT/fm/train_summary.json" ] ||
  $F train task=pusht_lowdim method=fm train.steps=12000 train.threads="$OMP_NUM_THREADS" out="$OUT/fm"
[ -f "$OUT/sw10n2/train_summary.json" ] || $F finetune checkpoint="$OUT/fm" $FT inference.nfe=2 out="$OUT/sw10n2"
if [ ! -f "$OUT/sw10_t2/train_summary.json" ]; then
  mkdir -p "$OUT/sw10_t2" && cp -n "$OUT/sw10n2/latents.pt" "$OUT/sw10_t2/" # the same windows' latents
  $F finetune checkpoint="$OUT/fm" $FT inference.nfe=1 method.pair_teacher="$OUT/sw10n2" out="$OUT/sw10_t2"
fi
E="eval.episodes=$N eval.videos=0"
[ -f "$FM15/train_summary.json" ] ||
  $F train task=pusht_lowdim method=fm train.steps=15100 train.threads="$OMP_NUM_THREADS" out="$FM15"
for fm in "$OUT/fm" "$FM15"; do
  [ -f "$fm/eval${N}_nfe10/metrics.json" ] || $F eval checkpoint="$fm" eval.nfe=10 $E out="$fm/eval${N}_nfe10"
done
for nfe in 1 2; do # the FM the fine-tuning started from, at the fine-tuned runs' NFEs
  [ -f "$OUT/fm/eval${N}_nfe$nfe/metrics.json" ] || $F eval checkpoint="$OUT/fm" eval.nfe=$nfe $E out="$OUT/fm/eval${N}_nfe$nfe"
done
for run in sw10_t2 sw10n2; do
  [ -f "$OUT/$run/eval$N/metrics.json" ] || $F eval checkpoint="$OUT/$run" $E out="$OUT/$run/eval$N"
done
for run in sw10_t2 sw10n2; do
  $F compare a="$OUT/fm/eval${N}_nfe10" b="$OUT/$run/eval$N" out="$OUT/$run/compare${N}_vs_fm10"
  $F compare a="$FM15/eval${N}_nfe10" b="$OUT/$run/eval$N" out="$OUT/$run/compare${N}_vs_fm15_10"
done
$F compare a="$OUT/fm/eval${N}_nfe10" b="$FM15/eval${N}_nfe10" out="$FM15/compare${N}_vs_fm12k_10"
$F compare a="$OUT/fm/eval${N}_nfe2" b="$OUT/sw10n2/eval$N" out="$OUT/sw10n2/compare${N}_vs_fm2"
$F compare a="$OUT/fm/eval${N}_nfe1" b="$OUT/sw10_t2/eval$N" out="$OUT/sw10_t2/compare${N}_vs_fm1"
