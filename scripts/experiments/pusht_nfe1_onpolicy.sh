#!/usr/bin/env bash
# Issue 11, part 1 at NFE 1: the one-step student's sample pairs at the observations it visits in closed loop
# (method.onpolicy_from, DAgger-style distillation; docs/results/pusht_few_step.md, "NFE 1: sample pairs on the
# student's own states"). The stored-pairs student of the NFE-2 teacher (sw10n2) is rolled out at NFE 1 on 200
# collection seeds (300000..); a new student is trained with its pairs (the teacher's samples) at those
# observations instead of at the training windows', then run on the 1,000 evaluation seeds and compared seed
# by seed with the stored-pairs student and with the FM at NFE 10.
# Usage: bash scripts/experiments/pusht_nfe1_onpolicy.sh   (OUT=runs/p12 EPISODES=1000)
source "$(dirname "$0")/pusht_nfe1_common.sh"
student "$OUT/sw10_t2"
evaluate "$OUT/sw10_t2" "eval$N"
run=$OUT/sw10_t2_onpol
student "$run" method.onpolicy_from="$OUT/sw10_t2"
evaluate "$run" "eval$N"
$F compare a="$OUT/sw10_t2/eval$N" b="$run/eval$N" out="$run/compare${N}_vs_stored"
$F compare a="$FM10" b="$run/eval$N" out="$run/compare${N}_vs_fm10"
