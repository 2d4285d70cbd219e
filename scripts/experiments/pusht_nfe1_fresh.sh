#!/usr/bin/env bash
# Issue 11, part 1 at NFE 1: the one-step student distilled from fresh teacher samples in every batch
# (method.fresh_pairs) instead of one stored pair per training window (docs/results/pusht_few_step.md,
# "NFE 1: fresh teacher samples in every batch"). From the 12,000-step FM: the NFE-2 FT-FM of weight 10 (the
# teacher, sw10n2, as in pusht_nfe1_paired.sh) and its NFE-1 students, each on the 1,000 evaluation seeds
# (100000..100999, noise seed 0), compared seed by seed with the FM at NFE 10 and with the stored-pairs student;
# then the fresh-pairs student trained twice as long (1,300 steps), against the FM at NFE 10 and the 650-step one.
# Two torch threads, alone on the machine.
# Usage: bash scripts/experiments/pusht_nfe1_fresh.sh   (OUT=runs/p12 EPISODES=1000)
source "$(dirname "$0")/pusht_nfe1_common.sh"
FRESH=$OUT/sw10_t2_fresh
LONG=$OUT/sw10_t2_fresh1300
student "$FRESH" method.fresh_pairs=true
evaluate "$FRESH" "eval$N"
$F compare a="$FM10" b="$FRESH/eval$N" out="$FRESH/compare${N}_vs_fm10"
student "$OUT/sw10_t2"
evaluate "$OUT/sw10_t2" "eval$N"
$F compare a="$OUT/sw10_t2/eval$N" b="$FRESH/eval$N" out="$FRESH/compare${N}_vs_stored"
student "$LONG" method.fresh_pairs=true train.steps=1300 train.warmup_steps=130
evaluate "$LONG" "eval$N"
$F compare a="$FM10" b="$LONG/eval$N" out="$LONG/compare${N}_vs_fm10"
$F compare a="$FRESH/eval$N" b="$LONG/eval$N" out="$LONG/compare${N}_vs_fresh650"
