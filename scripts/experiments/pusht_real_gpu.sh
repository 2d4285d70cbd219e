#!/usr/bin/env bash
# Real-size Push-T on one GPU, inside a fixed time budget: Diffusion Policy's 63M-parameter U-Net
# (down_dims 256/512/1024) pretrained with FM on the real human demonstrations, fine-tuned with FT-FM
# at NFE 2 on all training windows, each evaluated over the same 100 test seeds.
#   DATA=path/to/pusht_cchi_v7_replay.zarr RESULTS=runs/gpu TRAIN_S=240 bash scripts/experiments/pusht_real_gpu.sh
# The pretraining step count is set from the measured GPU step time so that it takes about TRAIN_S s.
set -euo pipefail
cd "$(dirname "$0")/../.."
F=${FMPOLICY:-.venv/bin/fmpolicy}
DATA=${DATA:-../shared/data/pusht/pusht_cchi_v7_replay.zarr}
R=${RESULTS:-runs/gpu}
TRAIN_S=${TRAIN_S:-240}
FT_STEPS=${FT_STEPS:-600}
EPISODES=${EPISODES:-100}
BIG='policy.down_dims=[256,512,1024]'
COMMON="device=cuda eval.videos=0 eval.episodes=$EPISODES"
mkdir -p "$R"
stamp() { echo "[$(date +%T)] $*"; }

stamp "speed of the 63M config"
$F speed task=pusht_lowdim device=cuda "$BIG" 'speed.nfes=[1,2,4,10]' eval.videos=0 out="$R/speed"
STEP_S=$(python3 -c "import json; print(json.load(open('$R/speed/speed.json'))['train_step_s'])")
STEPS=$(python3 -c "print(max(500, int($TRAIN_S / ($STEP_S * 1.1)) // 100 * 100))")

stamp "FM pretraining, $STEPS steps"
$F train task=pusht_lowdim method=fm dataset.path="$DATA" "$BIG" device=cuda train.steps="$STEPS" \
  train.warmup_steps=500 train.ckpt_every="$STEPS" train.log_every=100 out="$R/fm"
for NFE in 10 2 1; do
  stamp "eval FM at NFE $NFE"
  $F eval checkpoint="$R/fm" $COMMON eval.nfe=$NFE out="$R/eval_fm_nfe$NFE"
done

stamp "FT-FM at NFE 2, $FT_STEPS steps on all training windows"
$F finetune checkpoint="$R/fm" method=ft_mle inference.nfe=2 method.max_windows=0 device=cuda \
  train.steps="$FT_STEPS" train.ckpt_every="$FT_STEPS" out="$R/ft2"
stamp "eval FT-FM at NFE 2"
$F eval checkpoint="$R/ft2" $COMMON out="$R/eval_ft2_nfe2"
stamp "done"
