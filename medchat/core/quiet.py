"""Keep the terminal for medchat's own messages: library progress bars, info logs and known-harmless
warnings are hidden unless `medchat --verbose` (or MEDCHAT_VERBOSE=1) asks for them.

Hidden by default:
- transformers / huggingface_hub progress bars ("Loading weights", "Converting and de-quantizing GGUF
  tensors", "Writing model shards") and their info/warning logs;
- bitsandbytes' "Failed to load CPU gemm_4bit_forward ..." warning, logged when peft imports it on a
  CPU with AVX512-BF16 (the optional kernel only matters for 4-bit on CPU, which we never use);
- torch's deprecation warning for quantized tensor creation, raised by the int8 decode path
  (`library_warnings()` around that call);
- transformers' FutureWarning that `is_gradient_checkpointing` is deprecated, raised when peft wraps
  a model for training (peft's call, not ours).
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from contextlib import contextmanager


def verbose() -> bool:
    return os.environ.get("MEDCHAT_VERBOSE", "").strip() not in ("", "0", "false", "no")


def configure(verbose_flag: bool = False) -> None:
    """Call once at start-up, before heavy libraries are imported (they read the environment then)."""
    if verbose_flag:
        os.environ["MEDCHAT_VERBOSE"] = "1"
    if verbose():
        return
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore", category=FutureWarning, message=r"`is_gradient_checkpointing` is deprecated")
    for name in ("bitsandbytes", "sentence_transformers", "huggingface_hub", "accelerate", "peft"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if "transformers" in sys.modules:  # imported already: the environment is read too late
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()


@contextmanager
def library_warnings():
    """Silence torch's "quantized tensor creation functions ... are deprecated" UserWarning (the
    int8 path still uses them on purpose) unless verbose."""
    if verbose():
        yield
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning,
                                message=r"torch\.quantize_per_tensor, torch\.quantize_per_channel")
        yield


@contextmanager
def no_tqdm(module_name: str):
    """Disable the plain `tqdm` bar a library module imported for itself (transformers' GGUF
    conversion does; the HF switches do not reach it) unless verbose. No-op if the module changed."""
    import importlib
    from functools import partial

    module = importlib.import_module(module_name)
    bar = getattr(module, "tqdm", None)
    if verbose() or bar is None:
        yield
        return
    module.tqdm = partial(bar, disable=True)
    try:
        yield
    finally:
        module.tqdm = bar
