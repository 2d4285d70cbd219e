#!/usr/bin/env bash
# Issue 11: Bidirectional Decoding's backward coherence (inference.coherence_samples=K: K chunks per replanning
# in one batched call, act on the one nearest the last chunk's unexecuted actions) on the default pipeline's
# checkpoints, real Push-T data (docs/results/pusht_few_step.md, "Backward coherence"). FT-FM at its NFE (2), FM
# at NFE 2 and at NFE 10, each plain and with K samples, on the evaluation seeds (100000.., noise seed 0),
# compared seed by seed (`fmpolicy compare`); then FT-FM with K=2, and with 4 executed steps per chunk plain and
# with K samples. Two torch threads, alone on the machine.
# Usage: bash scripts/experiments/pusht_coherence.sh   (OUT=runs/pl EPISODES=200 K=8; `fmpolicy pipeline out=$OUT`
#        first, or this script runs it)
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
F=${F:-.venv/bin/fmpolicy}
OUT=${OUT:-runs/pl}
N=${EPISODES:-200}
K=${K:-8}
E="eval.episodes=$N eval.videos=0"
[ -f "$OUT/report.md" ] || $F pipeline out="$OUT"
ev() { # RUN NFE [K]: RUN at NFE on the evaluation seeds, with K coherence samples when given (once);
  # EXTRA: more eval keys, named in the folder by TAG
  local dir="$1/eval${N}_nfe$2${TAG:-}${3:+_bid$3}"
  [ -f "$dir/metrics.json" ] ||
    $F eval checkpoint="$1" eval.nfe="$2" $E ${EXTRA:-} ${3:+inference.coherence_samples=$3} out="$dir"
}
cmp() { # A B NAME: B - A seed by seed, into B/compare_NAME
  $F compare a="$1" b="$2" out="$2/compare_$3"
}
FT=$OUT/ft_mle/eval${N}_nfe2
FM2=$OUT/fm/eval${N}_nfe2
FM10=$OUT/fm/eval${N}_nfe10
ev "$OUT/ft_mle" 2 && ev "$OUT/ft_mle" 2 "$K" && cmp "$FT" "${FT}_bid$K" plain
ev "$OUT/fm" 10 && cmp "$FM10" "${FT}_bid$K" fm10 && cmp "$FM10" "$FT" fm10
ev "$OUT/fm" 2 && ev "$OUT/fm" 2 "$K" && cmp "$FM2" "${FM2}_bid$K" plain
ev "$OUT/fm" 10 "$K" && cmp "$FM10" "${FM10}_bid$K" plain && cmp "${FM10}_bid$K" "${FT}_bid$K" fm10_bid
ev "$OUT/ft_mle" 2 2 && cmp "$FT" "${FT}_bid2" plain # fewer samples to choose from
# plans half as old when matched: 4 executed steps per chunk, plain and with K samples
TAG=_nas4 EXTRA=policy.n_action_steps=4 ev "$OUT/ft_mle" 2
TAG=_nas4 EXTRA=policy.n_action_steps=4 ev "$OUT/ft_mle" 2 "$K"
cmp "${FT}_nas4" "${FT}_nas4_bid$K" plain
cmp "$FT" "${FT}_nas4" nas8
