#!/usr/bin/env bash
# The default pipeline's FM config trained on the real human demonstrations, evaluated on the pipeline's seeds.
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
F=.venv/bin/fmpolicy
$F train task=pusht_lowdim method=fm dataset.path=../shared/data/pusht/pusht_cchi_v7_replay.zarr train.steps=2500 train.ckpt_every=250 out=runs/human_2500
$F bench 'bench.runs={FM-human: runs/human_2500, FM-expert: runs/pipeline_default/fm}' 'bench.nfes=[2,10]' eval.episodes=50 out=runs/bench_expert_vs_human
