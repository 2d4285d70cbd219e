# Sourced by the Push-T NFE-1 experiment scripts (pusht_nfe1_fresh.sh, _executed.sh, _onpolicy.sh): the 12,000-step FM,
# its NFE-2 FT-FM of weight 10 (the teacher, sw10n2, as in pusht_nfe1_paired.sh), NFE-1 students of that teacher
# and evaluations on the N evaluation seeds (100000.., noise seed 0). Each step runs once: a finished run is skipped.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
F=${F:-.venv/bin/fmpolicy}
OUT=${OUT:-runs/p12}
N=${EPISODES:-1000}
FT="method=ft_mle method.fm_weight=0 method.sample_weight=10 train.steps=650 train.warmup_steps=65"
FT="$FT train.threads=$OMP_NUM_THREADS"
E="eval.episodes=$N eval.videos=0"
FM10=$OUT/fm/eval${N}_nfe10
[ -f "$OUT/fm/train_summary.json" ] ||
  $F train task=pusht_lowdim method=fm train.steps=12000 train.threads="$OMP_NUM_THREADS" out="$OUT/fm"
[ -f "$OUT/sw10n2/train_summary.json" ] || $F finetune checkpoint="$OUT/fm" $FT inference.nfe=2 out="$OUT/sw10n2"
student() { # RUN KEY=VALUE...: an NFE-1 student of sw10n2 on the teacher's windows and latents
  local run=$1
  shift
  [ -f "$run/train_summary.json" ] && return
  mkdir -p "$run" && cp -n "$OUT/sw10n2/latents.pt" "$run/"
  $F finetune checkpoint="$OUT/fm" $FT inference.nfe=1 method.pair_teacher="$OUT/sw10n2" "$@" out="$run"
}
evaluate() { # RUN NAME KEY=VALUE...: RUN's checkpoint on the N evaluation seeds, into RUN/NAME (once)
  local run=$1 name=$2
  shift 2
  [ -f "$run/$name/metrics.json" ] || $F eval checkpoint="$run" $E "$@" out="$run/$name"
}
evaluate "$OUT/fm" "eval${N}_nfe10" eval.nfe=10
