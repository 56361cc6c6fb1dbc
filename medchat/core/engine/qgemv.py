"""Compiled kernels over the GGUF's own 4-bit (Q4_1) and 8-bit (Q8_0) groups, with float32 activations:
a GEMV per projection (`csrc/gemv.cpp`) and a whole decode token in one call (`csrc/decoder.cpp`).

Why: a float32 decode token reads ~540 MB of weights and is bound by memory bandwidth (68% of its CPU
time is `aten::mm`; benchmarks/README.md). The embedded model's weights *are* Q4_1 groups (the float
model is their dequantisation), so multiplying by the groups directly reads ~6x fewer bytes and
computes the same products: w = d*q + m, summed in float32 in another order (relative error ~1e-7).
torch's own int4 kernel is exact only with float32 activations, where it is 20x slower than float.

Built with torch's C++ extension loader the first time it is needed (about 35 s on a 2-core CPU, once
per machine, torch version and source; kept in torch's extension cache, TORCH_EXTENSIONS_DIR or
~/.cache/torch_extensions, so every MEDCHAT_HOME shares it). Where no compiler is found, `load()`
returns None and the engine decodes in float: slower, same answers.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

_CSRC = Path(__file__).parent / "csrc"
_FILES = ("gemv.cpp", "decoder.cpp")  # one translation unit: the GEMVs, then the decoder that uses them


def _source() -> list[str]:
    return [(_CSRC / name).read_text(encoding="utf-8") for name in _FILES]


_lock = threading.Lock()
_state: dict = {}


def _cpu_signature() -> str:
    """-march=native code runs only where it was built: the build is keyed by this CPU's flags."""
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        import platform

        flags = platform.processor() or platform.machine()
    return flags


def build_key() -> str:
    import torch

    return hashlib.sha256(f"{_source()}|{torch.__version__}|{_cpu_signature()}".encode()).hexdigest()[:12]


def load():
    """The compiled module (`q4_1_gemv`, `q8_0_gemv`, `Q4Decoder`), or None where it cannot be built (`unavailable()`
    says why). Compiled once per machine and torch version, then loaded from the cache (~0.1 s)."""
    with _lock:
        if "module" in _state:
            return _state["module"]
        name = f"medchat_qgemv_{build_key()}"
        module = _built(name)
        if module is not None:
            _state.update(module=module, reason="")
            return module
        try:
            from torch.utils.cpp_extension import load_inline

            from medchat.core.quiet import library_warnings

            with library_warnings():
                module = load_inline(name, _source(),
                                     extra_cflags=["-O3", "-march=native", "-fopenmp"], extra_ldflags=["-fopenmp"],
                                     verbose=False)
            _state.update(module=module, reason="")
        except Exception as exc:  # noqa: BLE001 - no compiler, no ninja, a failed build: decode in float
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            _state.update(module=None, reason=f"{type(exc).__name__}: {first[:200]}")
        return _state["module"]


def _built(name: str):
    """The module an earlier start built, imported directly: torch's loader would first import setuptools
    (0.3 s of every start). None when it is not where torch's loader puts it (then that loader runs)."""
    import importlib.util
    import os
    import sys

    import torch

    root = os.environ.get("TORCH_EXTENSIONS_DIR")  # torch's loader reads it the same way, at each load
    if not root:
        from torch import _appdirs

        accel = "cpu" if torch.version.cuda is None else f"cu{torch.version.cuda.replace('.', '')}"
        python = f"py{sys.version_info.major}{sys.version_info.minor}{getattr(sys, 'abiflags', '')}"
        root = os.path.join(os.path.realpath(_appdirs.user_cache_dir(appname="torch_extensions")), f"{python}_{accel}")
    so = Path(root) / name / f"{name}.so"
    if torch.version.hip is not None or not so.is_file():
        return None
    try:
        spec = importlib.util.spec_from_file_location(name, so)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    except ImportError:  # a build cut short: torch's loader rebuilds it
        return None


def unavailable() -> str:
    """Why `load()` returned None ("" if it did not, or was not called)."""
    return _state.get("reason", "")
