#!/usr/bin/env bash
# Push-T, NFE 1 (results page, "NFE 1: where the one-step student departs from its teacher", 2026-12-07): the
# teacher on the 1,000 evaluation seeds, the student at a higher learning rate, the same student recipe at NFE
# 2, the student's chunks smoothed, and the state-by-state comparison with the teacher on held-out states.
# Needs the chain of pusht_nfe1_fresh.sh, _executed.sh and _onpolicy.sh (their runs are skipped when done).
# Usage: bash scripts/experiments/pusht_nfe1_tail.sh   (OUT=runs/p12, EPISODES=1000)
source "$(dirname "$0")/pusht_nfe1_common.sh"
student "$OUT/sw10_t2" # the stored-pairs student (pusht_nfe1_fresh.sh)
evaluate "$OUT/sw10_t2" "eval$N"
evaluate "$OUT/sw10n2" "eval$N"
student "$OUT/sw10_t2_lr2e4" train.lr=2e-4
evaluate "$OUT/sw10_t2_lr2e4" "eval$N"
student "$OUT/sw10_t2_n2" inference.nfe=2
evaluate "$OUT/sw10_t2_n2" "eval$N"
[ -f "$OUT/sw10_t2/eval${N}_smooth121/metrics.json" ] || .venv/bin/python scripts/experiments/eval_smoothed.py \
  eval checkpoint="$OUT/sw10_t2" $E out="$OUT/sw10_t2/eval${N}_smooth121"
compare() { # A B NAME: B's evaluation against A's, seed by seed, into B's run folder
  $F compare a="$1/eval$N" b="$2/eval$N" out="$2/compare${N}_$3"
}
compare "$OUT/sw10n2" "$OUT/sw10_t2" vs_teacher
compare "$OUT/sw10_t2" "$OUT/sw10_t2_lr2e4" vs_stored
compare "$OUT/sw10n2" "$OUT/sw10_t2_n2" vs_teacher
$F compare a="$FM10" b="$OUT/sw10_t2_lr2e4/eval$N" out="$OUT/sw10_t2_lr2e4/compare${N}_vs_fm10"
$F compare a="$OUT/sw10_t2/eval$N" b="$OUT/sw10_t2/eval${N}_smooth121" out="$OUT/sw10_t2/compare${N}_smooth_vs_plain"
.venv/bin/python scripts/experiments/pusht_nfe1_tail.py --teacher "$OUT/sw10n2" --states-of "$OUT/sw10_t2_onpol" \
  --out "$OUT/heldout_onpol" "$OUT"/{sw10n2,sw10_t2,sw10_t2_fresh,sw10_t2_ue0,sw10_t2_onpol,sw10_t2_lr2e4,fm}
