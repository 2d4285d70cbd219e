#!/usr/bin/env bash
# Issue 11, part 1 at NFE 1: the one-step student's likelihood on the executed steps only
# (method.unexecuted_weight; docs/results/pusht_few_step.md, "NFE 1: the likelihood of the executed steps").
# The policy executes 8 of the chunk's 16 steps (from step n_obs_steps - 1); the other 8 are never acted on,
# yet the plain NLL spends the one-step decoder on them as much. The student of the NFE-2 teacher (sw10n2) with
# those steps weighted 0, on the 1,000 evaluation seeds and compared seed by seed with the stored-pairs student
# (weight 1, the same otherwise) and with the FM at NFE 10. (It ties the weight-1 student, so no weight between
# was run; give WEIGHTS="0 0.1" for more.)
# Two torch threads, alone on the machine.
# Usage: bash scripts/experiments/pusht_nfe1_executed.sh   (OUT=runs/p12 EPISODES=1000 WEIGHTS=0)
source "$(dirname "$0")/pusht_nfe1_common.sh"
student "$OUT/sw10_t2"
evaluate "$OUT/sw10_t2" "eval$N"
for w in ${WEIGHTS:-0}; do
  run=$OUT/sw10_t2_ue$w
  student "$run" method.unexecuted_weight=$w
  evaluate "$run" "eval$N"
  $F compare a="$OUT/sw10_t2/eval$N" b="$run/eval$N" out="$run/compare${N}_vs_stored"
  $F compare a="$FM10" b="$run/eval$N" out="$run/compare${N}_vs_fm10"
done
