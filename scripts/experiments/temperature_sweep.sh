#!/usr/bin/env bash
# Sampling-temperature sweeps on selection seeds 200000.. (disjoint from the 100000.. evaluation seeds
# that results are reported on), then the table and plot (temperature_sweep.py).
# Each line: NAME CHECKPOINT NFE LATENT_STD EPISODES; latents are drawn at std LATENT_STD * T.
# Usage: OUT=runs/temperature/kitchen bash scripts/experiments/temperature_sweep.sh <<'RUNS'
#   fm runs/kitchen_real/fm 10 1.0 50
#   ft_mle runs/kitchen_real/ft_mle 2 1.0 50
# RUNS
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
OUT=${OUT:-runs/temperature}
TEMPS=${TEMPS:-"0.6 0.7 0.8 0.9 1.0"}
METRIC=${METRIC:-success_rate}
stds=()
while read -r name ckpt nfe std episodes; do
  [ -z "$name" ] && continue
  stds+=("$name=$std")
  for t in $TEMPS; do
    scale=$(python3 -c "print(round($std * $t, 3))")
    o="$OUT/sel_${name}_nfe${nfe}_s${scale}"
    [ -f "$o/metrics.json" ] && continue
    .venv/bin/fmpolicy eval checkpoint="$ckpt" eval.nfe="$nfe" inference.noise_scale="$scale" \
      inference.temperature=1.0 eval.episodes="$episodes" eval.seed_start=200000 eval.videos=0 out="$o" \
      < /dev/null 2>&1 | grep -E "^score|mean_completed" || true
  done
done
.venv/bin/python scripts/experiments/temperature_sweep.py "$OUT" "$OUT/temperature" "$METRIC" "${stds[@]}"
