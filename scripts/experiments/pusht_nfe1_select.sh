#!/usr/bin/env bash
# Issue 11, part 1 at NFE 1 (docs/results/pusht_few_step.md, "NFE 1: closed-loop checkpoint selection and
# conditioning noise"), from the 12,000-step FM of pusht_ft_sample_pairs.sh and its sample weight 10 run's latents
# and pairs:
#  1. FT-FM at NFE 1, sample weight 10, 1,300 steps with every 130th step kept (train.keep_checkpoints=true); each
#     kept checkpoint runs the 100 selection seeds (200000..), the one with the highest score runs the 200
#     evaluation seeds (100000..).
#  2. The 650-step run with Gaussian noise on the conditioning vector while fine-tuning (method.cond_noise).
#  3. The 650-step run again with seeds 1 and 2 (other windows, latents and pairs): the spread between runs.
# Two torch threads, alone on the machine.
# Usage: bash scripts/experiments/pusht_nfe1_select.sh   (OUT=runs/p12; pusht_ft_sample_pairs.sh and sw10 first)
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
F=${F:-.venv/bin/fmpolicy}
OUT=${OUT:-runs/p12}
FT="method=ft_mle method.fm_weight=0 method.sample_weight=10 inference.nfe=1 train.threads=$OMP_NUM_THREADS"
SEL="eval.episodes=100 eval.seed_start=200000 eval.videos=0"
finetune() { # NAME KEY=VALUE...: fine-tune from the FM, reusing sw10's latents and pairs
  local name=$1
  shift
  [ -f "$OUT/$name/train_summary.json" ] && return
  mkdir -p "$OUT/$name" && cp -n "$OUT"/sw10/{latents,pairs}.pt "$OUT/$name/"
  $F finetune checkpoint="$OUT/fm" $FT "$@" out="$OUT/$name"
}
finetune sw10k train.steps=1300 train.warmup_steps=130 train.ckpt_every=130 train.keep_checkpoints=true
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
  finetune "sw10_cn$noise" train.steps=650 train.warmup_steps=65 method.cond_noise="$noise"
  for seeds in sel100 eval200; do
    args=$SEL
    [ "$seeds" = eval200 ] && args="eval.episodes=200"
    [ -f "$OUT/sw10_cn$noise/$seeds/metrics.json" ] ||
      $F eval checkpoint="$OUT/sw10_cn$noise" $args out="$OUT/sw10_cn$noise/$seeds" </dev/null
  done
done
for seed in 1 2; do
  [ -f "$OUT/sw10_seed$seed/train_summary.json" ] ||
    $F finetune checkpoint="$OUT/fm" $FT train.steps=650 train.warmup_steps=65 seed="$seed" out="$OUT/sw10_seed$seed"
  [ -f "$OUT/sw10_seed$seed/eval200/metrics.json" ] ||
    $F eval checkpoint="$OUT/sw10_seed$seed" eval.episodes=200 out="$OUT/sw10_seed$seed/eval200" </dev/null
done
