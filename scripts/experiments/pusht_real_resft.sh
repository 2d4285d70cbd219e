#!/usr/bin/env bash
# ResFT-FM (drift-parametrized residuals) on the real Push-T data: the CPU FM config of lane A
# (timed), then the affine residual at NFE 2, benchmarked over the 200 seeds and diagnosed.
set -euo pipefail
cd "$(dirname "$0")/../.."
F=.venv/bin/fmpolicy
DATA=${DATA:-../shared/data/pusht/pusht_cchi_v7_replay.zarr}
echo "[$(date +%T)] FM pretraining"
time $F train task=pusht_lowdim method=fm dataset.path="$DATA" train.steps=12000 out=runs/pusht_fm_real
echo "[$(date +%T)] ResFT-FM NFE 2"
$F finetune checkpoint=runs/pusht_fm_real method=ft_residual inference.nfe=2 train.steps=1000 out=runs/pusht_res2_drift
echo "[$(date +%T)] bench over 200 seeds"
$F bench 'bench.runs={FM: runs/pusht_fm_real, ResFT-FM: runs/pusht_res2_drift}' 'bench.nfes=[2,10]' eval.episodes=200 eval.videos=2 out=runs/bench_resft_drift
$F diagnose checkpoint=runs/pusht_res2_drift out=runs/pusht_res2_drift/diagnose
echo "[$(date +%T)] done"
