#!/usr/bin/env bash
# Diffusion Policy's recipe on the real Push-T data with the CPU config (same U-Net and steps as the
# FM run of lane A), then DDPM-100 and DDIM-10 over the 200 evaluation seeds the other methods use.
set -euo pipefail
cd "$(dirname "$0")/../.."
F=.venv/bin/fmpolicy
DATA=${DATA:-../shared/data/pusht/pusht_cchi_v7_replay.zarr}
echo "[$(date +%T)] DDPM pretraining"
$F train task=pusht_lowdim method=ddpm dataset.path="$DATA" train.steps=12000 out=runs/pusht_ddpm_real
echo "[$(date +%T)] DDPM-100 and DDIM-10 over 200 seeds"
$F bench 'bench.runs={DDPM: runs/pusht_ddpm_real}' 'bench.diffusion=[ddpm,ddim]' eval.episodes=200 eval.videos=2 out=runs/bench_ddpm200
echo "[$(date +%T)] done"
