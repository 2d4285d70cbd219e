#!/usr/bin/env bash
# Real-data Push-T experiment, lane B (one torch thread): FT-FM at NFE 1 and 2, ResFT-FM at NFE 2.
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
F=.venv/bin/fmpolicy
while [ ! -f runs/pusht_fm_real/train_summary.json ]; do sleep 20; done
echo "[$(date +%T)] FT-FM NFE 1"
$F finetune checkpoint=runs/pusht_fm_real method=ft_mle inference.nfe=1 train.steps=1000 out=runs/pusht_ft1
mkdir -p runs/pusht_ft2 runs/pusht_res2
cp -n runs/pusht_ft1/latents.pt runs/pusht_ft2/latents.pt
cp -n runs/pusht_ft1/latents.pt runs/pusht_res2/latents.pt
echo "[$(date +%T)] FT-FM NFE 2"
$F finetune checkpoint=runs/pusht_fm_real method=ft_mle inference.nfe=2 train.steps=1000 out=runs/pusht_ft2
echo "[$(date +%T)] ResFT-FM NFE 2"
$F finetune checkpoint=runs/pusht_fm_real method=ft_residual inference.nfe=2 train.steps=1000 out=runs/pusht_res2
echo "[$(date +%T)] lane B done"
