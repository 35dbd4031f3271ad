#!/usr/bin/env bash
# The GPU run of benchmarks/bench_vllm.py (issue 37, item 6): soft thinking and cot on vLLM against stock vLLM token
# decoding and vecgen's transformers backend, 32 GSM8K items at batch 8, with a 7B model in bfloat16, and the GPU's
# memory at the end. Run from the repository root on a CUDA machine (one GPU; 7B in bf16 needs about 16 GB of weights
# plus vLLM's KV cache, which takes --memory 0.9 of the GPU by default):
#
#   bash benchmarks/device_vllm.sh [MODEL] [OUT_JSON]      # MODEL default Qwen/Qwen2.5-7B-Instruct
#
# It builds a virtual environment with the CUDA `vllm` package (vLLM pins transformers<5.20, so not vecgen's main
# one), then runs the benchmark. A device without network needs the model as a local folder (MODEL=/path) and the
# wheels in pip's cache. Time estimate (not measured: no GPU was lent to the session that wrote this): install
# 3-5 min, vLLM load 1-2 min, the vLLM and stock runs about 1 min each, the transformers backend's eager decode of
# 8,700 row-steps at batch 8 a few minutes: about 10 minutes in all.
set -euo pipefail
MODEL=${1:-Qwen/Qwen2.5-7B-Instruct}
OUT=${2:-docs/results/bench-vllm/gpu.json}
ENV_DIR=${ENV_DIR:-.venv-vllm-gpu}
if [ ! -x "$ENV_DIR/bin/python" ]; then
  python3 -m venv "$ENV_DIR"
  "$ENV_DIR/bin/pip" install --quiet "vllm==0.32.0"
  "$ENV_DIR/bin/pip" install --quiet -e . --no-deps
  "$ENV_DIR/bin/python" - > "$ENV_DIR/vecgen-requirements.txt" <<'PY'
import re, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
print("\n".join(r for r in project["dependencies"] if re.match(r"(torch|transformers)\b", r) is None))
PY
  "$ENV_DIR/bin/pip" install --quiet -r "$ENV_DIR/vecgen-requirements.txt" \
    "transformers==$("$ENV_DIR/bin/python" -c 'import transformers; print(transformers.__version__)')"
fi
nvidia-smi --query-gpu=name,memory.total --format=csv
mkdir -p "$(dirname "$OUT")"
start=$(date +%s)
"$ENV_DIR/bin/python" benchmarks/bench_vllm.py --model "$MODEL" --dtype bfloat16 --device cuda --json "$OUT"
echo "bench_vllm: $(( $(date +%s) - start )) s"
nvidia-smi --query-gpu=memory.used,memory.total --format=csv
