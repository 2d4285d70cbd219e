#!/usr/bin/env bash
# FT-FM settings tried on the real Push-T data (docs/results/pusht_few_step.md, "What moves FT-FM"):
# every run fine-tunes the default pipeline's FM checkpoint for 300 steps (fmpolicy pipeline first) and is
# evaluated over 100 seeds; then pusht_ft_settings.py writes the table and the plot. One torch thread each.
# Usage: bash scripts/experiments/pusht_ft_settings.sh   (BASE=runs/pipeline_pusht_lowdim_default OUT=runs/ft)
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
F=${F:-.venv/bin/fmpolicy}
BASE=${BASE:-runs/pipeline_pusht_lowdim_default}
OUT=${OUT:-runs/ft}
FT="train.steps=300 train.warmup_steps=30 train.ckpt_every=100 method.max_windows=2048"
ev() { $F eval checkpoint="$1" eval.episodes=100 eval.videos=0 out="$2" "${@:3}" 2>/dev/null | tail -1; }
ft() {
  name=$1
  shift
  [ -f "$OUT/$name/train_summary.json" ] ||
    $F finetune checkpoint="$BASE/fm" method=ft_mle inference.nfe=2 $FT "$@" out="$OUT/$name" 2>/dev/null | tail -2
}
# the pipeline's own FT-FM run at three latent scales, and FM at NFE 10 at two
for s in 1.0 0.912 0.8; do ev "$BASE/ft_mle" "$OUT/base_s$s" inference.noise_scale=$s; done
for s in 1.0 0.912; do ev "$BASE/fm" "$OUT/fm10_s$s" eval.nfe=10 inference.noise_scale=$s; done
ev "$BASE/fm" "$OUT/fm_mid2" eval.solver=midpoint eval.nfe=2
ft indep method.pairing=independent
ft fmw300 method.fm_weight=300 method.match_latent_std=false
ft allwin method.max_windows=0 method.inverse_nfe=16
ft multi12 'method.extra_nfes=[1]'
ft mid2 inference.solver=midpoint
ev "$OUT/indep" "$OUT/indep/eval"
ev "$OUT/fmw300" "$OUT/fmw300/eval"
ev "$OUT/fmw300" "$OUT/fmw300/eval_s0912" inference.noise_scale=0.912
ev "$OUT/allwin" "$OUT/allwin/eval"
ev "$OUT/multi12" "$OUT/multi12/eval2"
ev "$OUT/multi12" "$OUT/multi12/eval1" eval.nfe=1
ev "$OUT/mid2" "$OUT/mid2/eval"
.venv/bin/python scripts/experiments/pusht_ft_settings.py "$OUT" docs/results
# contraction knobs: ResFT-FM with a larger eps, and with the residual gated by t^2, then robustness
for v in "e01p0 0.1 0" "e01p2 0.1 2" "e05p2 0.5 2"; do
  set -- $v
  [ -f "$OUT/res_$1/train_summary.json" ] || $F finetune checkpoint="$BASE/fm" method=ft_residual inference.nfe=2 $FT \
    method.residual.eps="$2" method.residual.time_power="$3" out="$OUT/res_$1" 2>/dev/null | tail -2
done
$F robustness "bench.runs={ResFT-e0.1: $OUT/res_e01p0, ResFT-e0.1-t2: $OUT/res_e01p2, ResFT-e0.5-t2: $OUT/res_e05p2}" \
  'robustness.obs_noise=[0.0,4.0]' 'robustness.perturbations={action_noise: [30.0], block_displaced: [80.0]}' \
  eval.episodes=100 diagnose.windows=128 out="$OUT/robust_knobs"
