#!/usr/bin/env bash
# Issue 11, part 1 at NFE 1 (docs/results/pusht_few_step.md, "NFE 1: closed-loop checkpoint selection and
# conditioning noise"), from the 12,000-step FM of pusht_ft_sample_pairs.sh and its sample weight 10 run's latents
# and pairs:
#  1. FT-FM at NFE 1, sample weight 10, 1,300 steps with every 130th step kept (train.keep_checkpoints=true); each
#     kept checkpoint runs the 100 selection seeds (200000..), the one with the highest score runs the 200
#     evaluation seeds (100000..).
#  2. The 650-step run with Gaussian noise on the conditioning vector while fine-tuning (method.cond_noise).
#  3. The 650-step run again with seeds 1 and 2 (other windows, latents and pairs): the spread between runs.
#  4. Progressive distillation: the same three seeds with the sample pairs made by FT-FM tuned for NFE 2
#     (sw10n2, Euler at NFE 2; method.pair_teacher) instead of the FM with RK4 at NFE 32, at weight 10 and 30,
#     and at weight 10 with the student started from the teacher's weights (finetune_from_weights.py).
#  5. The seed-0 student on all 23,066 training windows (method.max_windows=0) instead of 8,192.
# Every 200-seed evaluation runs twice, with the sampling noise of eval.noise_seed 0 and 1; the FM of the same
# budget and the weight-10 runs (FM pairs, the NFE-2 teacher's pairs, NFE 2) a third time (noise seed 2).
# Two torch threads, alone on the machine.
# Usage: bash scripts/experiments/pusht_nfe1_select.sh   (OUT=runs/p12; pusht_ft_sample_pairs.sh, the sw10 and
# sw10n2 runs of docs/results/pusht_few_step.md, and pusht_fm_same_budget.sh with OUT=runs/p15 first)
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
F=${F:-.venv/bin/fmpolicy}
OUT=${OUT:-runs/p12}
FM15=${FM15:-runs/p15/fm} # FM of the same budget (15,100 steps)
FT="method=ft_mle method.fm_weight=0 method.sample_weight=10 inference.nfe=1 train.steps=650 train.warmup_steps=65"
FT="$FT train.threads=$OMP_NUM_THREADS"
SEL="eval.episodes=100 eval.seed_start=200000 eval.videos=0"
finetune() { # RUN FROM KEY=VALUE...: fine-tune from the FM into RUN, starting from FROM's latent and pair caches
  local run=$1 from=$2 # (empty: none; finetune checks a copied cache's settings, recomputes it where they differ)
  shift 2
  [ -f "$run/train_summary.json" ] && return
  mkdir -p "$run"
  [ -z "$from" ] || cp -n "$from"/{latents,pairs}.pt "$run/"
  ${FINETUNE:-$F finetune} checkpoint="$OUT/fm" $FT "$@" out="$run"
}
finetune "$OUT/sw10k" "$OUT/sw10" train.steps=1300 train.warmup_steps=130 train.ckpt_every=130 train.keep_checkpoints=true
for ckpt in "$OUT"/sw10k/checkpoints/step_*.pt; do
  sel="$OUT/sw10k/sel100_$(basename "$ckpt" .pt)"
  [ -f "$sel/metrics.json" ] || $F eval checkpoint="$ckpt" $SEL out="$sel" </dev/null
done
best=$(.venv/bin/python - "$OUT/sw10k" <<'PY'
import json, pathlib, sys
runs = sorted(pathlib.Path(sys.argv[1]).glob("sel100_step_*/metrics.json"))
rows = [(json.loads(p.read_text()), p.parent.name.removeprefix("sel100_")) for p in runs]
for m, step in rows:
    print(f"{step}: score {m['score']:.3f}, success {m['success_rate']:.2f}", file=sys.stderr)
print(max(rows, key=lambda r: r[0]["score"])[1])
PY
)
echo "selected: $best"
[ -f "$OUT/sw10k/eval200_$best/metrics.json" ] ||
  $F eval checkpoint="$OUT/sw10k/checkpoints/$best.pt" eval.episodes=200 out="$OUT/sw10k/eval200_$best" </dev/null
for noise in 0.01 0.02; do
  finetune "$OUT/sw10_cn$noise" "$OUT/sw10" method.cond_noise="$noise"
  for seeds in sel100 eval200; do
    args=$SEL
    [ "$seeds" = eval200 ] && args="eval.episodes=200"
    [ -f "$OUT/sw10_cn$noise/$seeds/metrics.json" ] ||
      $F eval checkpoint="$OUT/sw10_cn$noise" $args out="$OUT/sw10_cn$noise/$seeds" </dev/null
  done
done
evals() { # RUN [NOISE_SEEDS]: the 200 evaluation seeds with each noise seed (default 0 and 1)
  local run=$1 ns
  for ns in ${2:-0 1}; do
    local dir=$run/eval200_ns$ns
    [ "$ns" = 0 ] && dir=$run/eval200
    [ -f "$dir/metrics.json" ] ||
      $F eval checkpoint="$run" eval.episodes=200 eval.noise_seed="$ns" eval.videos=0 out="$dir" </dev/null
  done
}
for seed in 0 1 2; do
  run=$OUT/sw10_seed$seed student=$OUT/sw10_t2_seed$seed
  [ "$seed" = 0 ] && run=$OUT/sw10 student=$OUT/sw10_t2
  finetune "$run" "" seed="$seed"
  finetune "$student" "$run" seed="$seed" method.pair_teacher="$OUT/sw10n2"
  finetune "$OUT/sw30_t2_seed$seed" "$student" seed="$seed" method.pair_teacher="$OUT/sw10n2" method.sample_weight=30
  FINETUNE=".venv/bin/python scripts/experiments/finetune_from_weights.py $OUT/sw10n2" \
    finetune "$OUT/init_t2_seed$seed" "$student" seed="$seed" method.pair_teacher="$OUT/sw10n2"
  for r in "$run" "$student" "$OUT/sw30_t2_seed$seed" "$OUT/init_t2_seed$seed"; do evals "$r"; done
done
[ -f "$OUT/sw10_t2/sel100/metrics.json" ] || $F eval checkpoint="$OUT/sw10_t2" $SEL out="$OUT/sw10_t2/sel100" </dev/null
finetune "$OUT/sw10_t2_all" "" seed=0 method.pair_teacher="$OUT/sw10n2" method.max_windows=0
evals "$OUT/sw10_t2_all"
for run in "$OUT/sw10n2" "$OUT/sp2"; do evals "$run" "0 1 2"; done
for run in sw10 sw10_seed1 sw10_seed2 sw10_t2 sw10_t2_seed1 sw10_t2_seed2; do evals "$OUT/$run" 2; done
for ns in 1 2; do
  [ -f "$FM15/eval200_nfe10_ns$ns/metrics.json" ] || $F eval checkpoint="$FM15" eval.nfe=10 eval.episodes=200 \
    eval.noise_seed=$ns eval.videos=0 out="$FM15/eval200_nfe10_ns$ns" </dev/null
done
# the plot of every draw (docs/results/pusht_nfe1_draws.png; it reads runs/p12 and runs/p15)
.venv/bin/python scripts/experiments/pusht_nfe1_plot.py
