#!/usr/bin/env bash
# Real-data Push-T experiment, lane C (one torch thread): fine-tuned rows of the benchmark, robustness.
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
F=.venv/bin/fmpolicy
while [ ! -f runs/pusht_res2/train_summary.json ]; do sleep 20; done
echo "[$(date +%T)] bench of the fine-tuned runs over 200 seeds"
$F bench 'bench.runs={FT-FM: runs/pusht_ft1, FT-FM2: runs/pusht_ft2, ResFT-FM2: runs/pusht_res2}' eval.episodes=200 eval.videos=2 out=runs/bench_ft
echo "[$(date +%T)] robustness at NFE 2 over 100 seeds"
$F robustness 'bench.runs={FM: runs/pusht_fm_real, FT-FM: runs/pusht_ft2, ResFT-FM: runs/pusht_res2}' robustness.nfe=2 eval.episodes=100 out=runs/robustness
echo "[$(date +%T)] lane C done"
