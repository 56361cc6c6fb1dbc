#!/usr/bin/env bash
# The GPU path measured in one go (issue 14 item 8): QLoRA SFT on a random 7B-shaped Llama, the tiny
# covid recipe in bf16, chat decode with a LoRA profile, 2-process DDP when >= 2 GPUs. One JSON summary.
#
#   benchmarks/gpu_check.sh [--out FILE] [--only STEPS] [--work DIR]   # on a CUDA machine
#   benchmarks/gpu_check.sh --smoke [--out FILE]                       # same code, CPU, tiny shapes
#
# Set-up is the repo's own (scripts/install.sh: torch's CUDA build where nvidia-smi works, bitsandbytes
# from the base dependencies; there are no GPU extras); MEDCHAT_PY=/path/to/python skips it.
# Exit status: 0 when no step failed (skips are not failures), else 1. The logic is in gpu_check.py.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ -n "${MEDCHAT_PY:-}" ]; then
  py="$MEDCHAT_PY"
else
  bash scripts/install.sh || { echo "gpu_check: scripts/install.sh failed" >&2; exit 1; }
  py=".venv/bin/python"
fi
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" exec "$py" benchmarks/gpu_check.py "$@"
