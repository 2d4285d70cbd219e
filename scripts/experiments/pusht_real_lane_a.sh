#!/usr/bin/env bash
# Real-data Push-T experiment, lane A (one torch thread): default pipeline, diffusion baseline rows, expert stats.
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
F=.venv/bin/fmpolicy
while [ ! -f runs/pusht_ddpm_real/train_summary.json ]; do sleep 20; done
echo "[$(date +%T)] default pipeline"
time $F pipeline source=expert out=runs/pipeline_default  # the default before 2026-11-28
echo "[$(date +%T)] DDIM-10 over 200 seeds"
$F bench 'bench.runs={DDPM: runs/pusht_ddpm_real}' 'bench.diffusion=[ddim]' eval.episodes=200 out=runs/bench_ddim
echo "[$(date +%T)] DDPM-100 over 50 seeds"
$F bench 'bench.runs={DDPM: runs/pusht_ddpm_real}' 'bench.diffusion=[ddpm]' eval.episodes=50 out=runs/bench_ddpm100
echo "[$(date +%T)] expert over 100 seeds"
$F demos task=pusht_lowdim episodes=100 out=runs/expert100.zarr
echo "[$(date +%T)] lane A done"
