#!/usr/bin/env bash
# FT-FM settings tried after the temperature (docs/results/pusht_few_step.md, "Sample pairs and longer
# fine-tuning"): each fine-tunes the default pipeline's FM checkpoint at NFE 2 and is evaluated on the 100
# selection seeds 200000.. at the task's temperature (0.8). One torch thread each.
# Usage: bash scripts/experiments/pusht_ft_selection.sh   (BASE=runs/pipeline_t08 OUT=runs/s11; fmpolicy pipeline first)
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
F=${F:-.venv/bin/fmpolicy}
BASE=${BASE:-runs/pipeline_t08}
OUT=${OUT:-runs/s11}
FT="train.warmup_steps=30 method.max_windows=2048 train.threads=1"
run() {
  name=$1
  shift
  [ -f "$OUT/$name/train_summary.json" ] ||
    $F finetune checkpoint="$BASE/fm" method=ft_mle inference.nfe=2 $FT "$@" out="$OUT/$name" 2>/dev/null | tail -2
  [ -f "$OUT/sel_$name/metrics.json" ] ||
    $F eval checkpoint="$OUT/$name" eval.episodes=100 eval.seed_start=200000 eval.videos=0 \
      out="$OUT/sel_$name" < /dev/null 2>/dev/null | tail -1
}
run sw1 train.steps=300 method.sample_weight=1.0   # NLL on the pretrained flow's own samples beside the data's
run sw3 train.steps=300 method.sample_weight=3.0
run st600 train.steps=600                           # the default objective, longer
run st1200 train.steps=1200
run st1200_nfe1 train.steps=1200 inference.nfe=1   # tuned for NFE 1 (evaluated at it)
