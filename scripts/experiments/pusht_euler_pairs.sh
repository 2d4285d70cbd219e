#!/usr/bin/env bash
# Push-T: which flow should the sample pairs copy? (results page, "The teacher's solver", 2026-12-07). The 12,000-step
# FM with the accurate solver the pairs are made with (RK4, 32 evaluations) against the Euler-10 policy it is
# compared with, on the 1,000 evaluation seeds; then FT-FM at NFE 2 (the weight-10 recipe of sw10n2) with its
# sample pairs made by Euler at NFE 10 instead. (sw10n2's latents, made before caches recorded their weights, are
# remade once.)
# Usage: bash scripts/experiments/pusht_euler_pairs.sh   (OUT=runs/p12, EPISODES=1000)
source "$(dirname "$0")/pusht_nfe1_common.sh"
evaluate "$OUT/fm" "eval${N}_rk4_32" inference.solver=rk4 inference.nfe=32 eval.nfe=32
evaluate "$OUT/sw10n2" "eval$N"
if [ ! -f "$OUT/sw10n2_e10/train_summary.json" ]; then
  mkdir -p "$OUT/sw10n2_e10" && cp -n "$OUT/sw10n2/latents.pt" "$OUT/sw10n2_e10/"
  $F finetune checkpoint="$OUT/fm" $FT inference.nfe=2 method.pair_solver=euler method.pair_nfe=10 \
    out="$OUT/sw10n2_e10"
fi
evaluate "$OUT/sw10n2_e10" "eval$N"
$F compare a="$FM10" b="$OUT/fm/eval${N}_rk4_32" out="$OUT/fm/compare${N}_rk4_32_vs_euler10"
$F compare a="$OUT/sw10n2/eval$N" b="$OUT/sw10n2_e10/eval$N" out="$OUT/sw10n2_e10/compare${N}_vs_rk4_pairs"
$F compare a="$FM10" b="$OUT/sw10n2_e10/eval$N" out="$OUT/sw10n2_e10/compare${N}_vs_fm10"
$F compare a="$OUT/fm/eval${N}_rk4_32" b="$OUT/sw10n2/eval$N" out="$OUT/sw10n2/compare${N}_vs_rk4_32"
