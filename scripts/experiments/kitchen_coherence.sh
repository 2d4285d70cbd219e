#!/usr/bin/env bash
# Franka Kitchen: backward coherence (inference.coherence_samples=8) with the fine-tuning recipe each data set calls
# for (docs/results/kitchen.md, "Backward coherence"; it lifted the weaker no-pairs FT-FM on expert data). Expert data:
# the default FT-FM (sample pairs, FM regularizer 0.1; $KD/ftsp of kitchen_expert_ft.sh), T 0.5. Real kitchen-complete
# data: the FM and the FT-FM without pairs and regularizer of kitchen_real_pairs.sh ($KR), the task's T 0.7. Every
# evaluation on the 200 evaluation seeds, noise seeds 0 and 1; FT-FM at NFE 2 with K=8 compared seed by seed (draws
# averaged) with itself plain and with FM at NFE 10 plain; last, FM at NFE 10 with K=8. Two torch threads, alone.
# Usage: bash scripts/experiments/kitchen_coherence.sh   (KD=runs/kd14 KR=runs/krp)
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
F=.venv/bin/fmpolicy
KD=${KD:-runs/kd14}
KR=${KR:-runs/krp}
K=inference.coherence_samples=8
ev() { # RUN DIR KEY=VALUE...: one 200-episode evaluation into RUN/DIR, skipped when done
  local run=$1 dir=$2
  shift 2
  [ -f "$run/$dir/metrics.json" ] ||
    $F eval checkpoint="$run" eval.episodes=200 eval.videos=0 "$@" out="$run/$dir" </dev/null
}
paired() { # OUT A B: fmpolicy compare of A and B (each comma-separated draws, averaged per seed) into OUT
  [ -f "$1/compare.json" ] || $F compare a="$2" b="$3" out="$1"
}
# Expert data: fine-tune the default FT-FM, evaluate it and FM at NFE 10 plain (kitchen_expert_ft.sh), then K=8.
OUT=$KD RUNS=ftsp bash scripts/experiments/kitchen_expert_ft.sh
for s in 0 1; do ev "$KD/ftsp" "eval200_T0.5_coh8_ns$s" inference.temperature=0.5 eval.noise_seed=$s $K; done
ftsp_k8="$KD/ftsp/eval200_T0.5_coh8_ns0,$KD/ftsp/eval200_T0.5_coh8_ns1"
paired "$KD/ftsp/compare_coh8_2draws" "$KD/ftsp/eval200_T0.5,$KD/ftsp/eval200_T0.5_ns1" "$ftsp_k8"
paired "$KD/ftsp/compare_coh8_vs_fm10" "$KD/fm/eval200_T0.5,$KD/fm/eval200_T0.5_ns1" "$ftsp_k8"
# Real data: the FM and FT-FM at NFE 2 without pairs and regularizer, evaluated plain (kitchen_real_pairs.sh), then K=8.
OUT=$KR RUNS=ft_plain_fmw0 NOISE_SEEDS="0 1" bash scripts/experiments/kitchen_real_pairs.sh
ft=$KR/ft_plain_fmw0
for s in 0 1; do ev "$ft" "eval200_nfe2_coh8_ns$s" eval.nfe=2 eval.noise_seed=$s $K; done
paired "$ft/compare_coh8_2draws" "$ft/eval200_nfe2_ns0,$ft/eval200_nfe2_ns1" "$ft/eval200_nfe2_coh8_ns0,$ft/eval200_nfe2_coh8_ns1"
paired "$ft/compare_coh8_vs_fm10" "$KR/fm/eval200_nfe10_ns0,$KR/fm/eval200_nfe10_ns1" \
  "$ft/eval200_nfe2_coh8_ns0,$ft/eval200_nfe2_coh8_ns1"
# FM at NFE 10 with K=8 (on expert data it stayed 4.000 / 1.000 on noise seed 0).
for s in 0 1; do
  ev "$KR/fm" "eval200_nfe10_coh8_ns$s" eval.nfe=10 eval.noise_seed=$s $K
  ev "$KD/fm" "eval200_T0.5_coh8_ns$s" eval.nfe=10 inference.temperature=0.5 eval.noise_seed=$s $K
done
paired "$KR/fm/compare_coh8_2draws" "$KR/fm/eval200_nfe10_ns0,$KR/fm/eval200_nfe10_ns1" \
  "$KR/fm/eval200_nfe10_coh8_ns0,$KR/fm/eval200_nfe10_coh8_ns1"
paired "$KD/fm/compare_coh8_2draws" "$KD/fm/eval200_T0.5,$KD/fm/eval200_T0.5_ns1" \
  "$KD/fm/eval200_T0.5_coh8_ns0,$KD/fm/eval200_T0.5_coh8_ns1"
