#!/usr/bin/env bash
# The GPU path of vecgen train (issue 36, item 6): COCONUT and its controls on GSM8k-Aug with GPT-2 and
# Qwen2.5-0.5B, the paper's GSM8k settings (c = 2, 3 stages of 3 epochs, 25 epochs in the paper; fewer here so that
# one call fits a lent device's minutes). Run from the repository root on a CUDA machine with vecgen installed:
#
#   bash benchmarks/device_train.sh [OUT_DIR]
#
# Time estimates (not measured: no GPU was lent to the session that wrote this; from the CPU runs' tokens per step
# scaled by an H100's throughput for a 124M model): GPT-2 on 20,000 GSM8k-Aug items, one epoch of cot about 1 min,
# a coconut epoch at stage k about (k * c + 1) times a cot epoch's forward passes, so the 6 epochs below about
# 15 min per method; Qwen2.5-0.5B about 4x that. The hub data needs network (datasets): on a device without it,
# copy a coconut-format JSON beside the repo and pass it with TRAIN=path.
set -euo pipefail
OUT=${1:-runs/device-train}
TRAIN=${TRAIN:-hf:whynlp/gsm8k-aug}
DEV=${DEV:-gsm8k}
COMMON=(--train-data "$TRAIN" --dev-data "$DEV" --dev-limit 200 --c 2 --stages 3 --epochs-per-stage 1 --epochs 4
        --batch-size 32 --lr 1e-4 --device cuda --out-dir "$OUT")
nvidia-smi --query-gpu=name,memory.total --format=csv
for MODEL in gpt2 Qwen/Qwen2.5-0.5B; do
  TAG=$(echo "$MODEL" | tr '/' '-')
  for METHOD in cot coconut pause nocot; do
    start=$(date +%s)
    vecgen train --model "$MODEL" --method "$METHOD" --run-name "$TAG-$METHOD" "${COMMON[@]}" || exit $?
    echo "$TAG $METHOD: $(( $(date +%s) - start )) s"
  done
done
