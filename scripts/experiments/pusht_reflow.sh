#!/usr/bin/env bash
# Issue 11, part 2: reflow beside FM, FT-FM and ResFT-FM from one FM checkpoint on the real Push-T data.
# BASE: the default pipeline's run (FM 2,500 steps; FT-FM and ResFT-FM 300 steps at NFE 2). Reflow with the same
# 300 fine-tuning steps, and with 900 (about FT-FM's compute: 3 field evaluations per sample against reflow's 1).
# One bench over 200 evaluation seeds. One torch thread.
# Usage: BASE=runs/pipeline_pusht_lowdim_default OUT=runs/pusht_reflow bash scripts/experiments/pusht_reflow.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
F=${F:-.venv/bin/fmpolicy}
BASE=${BASE:-runs/pipeline_pusht_lowdim_default}
OUT=${OUT:-runs/pusht_reflow}
EPISODES=${EPISODES:-200}
mkdir -p "$OUT"
for steps in 300 900; do
  [ -f "$OUT/reflow_$steps/train_summary.json" ] ||
    $F finetune checkpoint="$BASE/fm" method=reflow train.steps=$steps train.warmup_steps=30 train.ckpt_every=100 \
      method.max_windows=2048 out="$OUT/reflow_$steps"
done
$F bench "bench.runs={FM: $BASE/fm, FT-FM: $BASE/ft_mle, ResFT-FM: $BASE/ft_residual, Reflow-300: $OUT/reflow_300, Reflow-900: $OUT/reflow_900}" \
  'bench.nfes=[1,2,10]' eval.episodes="$EPISODES" eval.videos=2 out="$OUT/bench"
cat "$OUT/bench/bench.md"
