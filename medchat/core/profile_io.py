"""Moving profiles in and out of the store: import a foreign PEFT adapter, export an adapter or a
merged model. The store itself (medchat.core.profiles) only knows manifests and directories."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from medchat.core import paths
from medchat.core.engine.lora_weights import load_lora
from medchat.core.errors import UserError
from medchat.core.models import base_id, fingerprint, resolve_base
from medchat.core.profiles import ADAPTER_WEIGHTS, Profile, ProfileStore, check_adapter_dir

_PARENT = {"q_proj": "self_attn", "k_proj": "self_attn", "v_proj": "self_attn", "o_proj": "self_attn",
           "gate_proj": "mlp", "up_proj": "mlp", "down_proj": "mlp"}


def _meta_model(model_dir: Path):
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.from_pretrained(model_dir)
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(cfg)


def check_fits_base(adapter_dir: Path, model_dir: Path, allow_pickle: bool = False) -> None:
    """Every LoRA tensor must match the shape of the base module it targets (no weights loaded)."""
    from safetensors import safe_open

    model = _meta_model(model_dir)
    modules = dict(model.named_modules())
    st = Path(adapter_dir) / ADAPTER_WEIGHTS
    if not st.exists():
        return  # pickled adapters are checked when loaded (only with --allow-pickle)
    with safe_open(st, "pt") as fh:
        for key in fh.keys():
            if ".lora_" not in key:
                continue
            mod_path, _, rest = key.partition(".lora_")
            mod_path = mod_path.removeprefix("base_model.model.")
            mod = modules.get(mod_path)
            if mod is None or not hasattr(mod, "weight"):
                raise UserError(f"adapter '{adapter_dir}' targets '{mod_path}', which this base does not have; "
                                "it was made for another base model")
            shape = tuple(fh.get_slice(key).get_shape())
            out_f, in_f = mod.weight.shape[0], mod.weight.shape[1]
            ok = shape[1] == in_f if rest.startswith("A") else shape[0] == out_f
            if not ok:
                raise UserError(f"adapter '{adapter_dir}' does not fit this base ({mod_path}: {shape} vs "
                                f"weight {tuple(mod.weight.shape)}); it was made for another base model")


def import_adapter(store: ProfileStore, src: Path, name: str, base: str | None,
                   allow_pickle: bool = False, description: str = "") -> Profile:
    src = Path(src).expanduser()
    if not src.is_dir():
        raise UserError(f"'{src}' is not a directory; pass a PEFT adapter dir (adapter_config.json + weights)")
    cfg = check_adapter_dir(src, allow_pickle=allow_pickle)
    base = base or cfg.get("base_model_name_or_path") or None
    model_dir = resolve_base(base)
    check_fits_base(src, model_dir, allow_pickle)
    prof = Profile(name=name, base=base_id(base), base_fingerprint=fingerprint(model_dir), stage="import",
                   method="lora", allow_pickle=allow_pickle,
                   description=description or f"imported from {src}")
    return store.install(prof, src)


def _check_out(out, force: bool) -> Path:
    """An export replaces OUT only with --force; an empty directory is simply filled."""
    out = Path(out).expanduser()
    if out.exists() and not force and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"'{out}' exists{' and is not empty' if out.is_dir() else ''}; "
                        "choose a new output directory or pass --force to replace it")
    return out


EXPORT_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


def export_adapter(store: ProfileStore, name: str, out: Path, force: bool = False, dtype: str | None = None) -> Path:
    """One standard PEFT dir. A stacked chain is combined exactly: LoRA deltas add, so stacking
    adapters equals one adapter whose A rows and B columns are concatenated (scales folded into B).
    `dtype` stores the weights in that precision (training saves float32; a shipped adapter is 16-bit)."""
    from safetensors.torch import load_file, save_file

    if dtype is not None and dtype not in EXPORT_DTYPES:
        raise UserError(f"unknown --dtype '{dtype}'; use one of: {', '.join(EXPORT_DTYPES)}")
    prof = store.get(name)
    if prof.is_base:
        raise UserError("'base' has no adapter to export; use --merged to export the base model")
    chain = store.chain_dirs(prof)
    out = _check_out(out, force)
    with paths.staging_dir(out) as tmp:
        if len(chain) == 1:
            shutil.copytree(chain[0][1], tmp, dirs_exist_ok=True)
        else:
            parts = [load_lora(d, prof.allow_pickle) for _, d in chain]
            keys = sorted(set().union(*parts))
            total = sum(max(m.A.shape[0] for m in p.values()) for p in parts)
            tensors = {}
            for layer, proj in keys:
                a_rows, b_cols = [], []
                for p in parts:
                    r = max(m.A.shape[0] for m in p.values())
                    m = p.get((layer, proj))
                    if m is None:  # this adapter leaves the module alone: zero block
                        ref = next(q[(layer, proj)] for q in parts if (layer, proj) in q)
                        a_rows.append(torch.zeros(r, ref.A.shape[1]))
                        b_cols.append(torch.zeros(ref.B.shape[0], r))
                    else:
                        pad = r - m.A.shape[0]
                        a_rows.append(torch.cat([m.A, torch.zeros(pad, m.A.shape[1])]))
                        b_cols.append(torch.cat([m.B * m.scale, torch.zeros(m.B.shape[0], pad)], 1))
                prefix = f"base_model.model.model.layers.{layer}.{_PARENT.get(proj, 'self_attn')}.{proj}"
                tensors[f"{prefix}.lora_A.weight"] = torch.cat(a_rows).contiguous()
                tensors[f"{prefix}.lora_B.weight"] = torch.cat(b_cols, 1).contiguous()
            cfg = json.loads((chain[-1][1] / "adapter_config.json").read_text())
            cfg.update(r=total, lora_alpha=total, use_rslora=False, rank_pattern={}, alpha_pattern={},
                       target_modules=sorted({p for _, p in keys}))
            (tmp / "adapter_config.json").write_text(json.dumps(cfg, indent=2))
            save_file(tensors, str(tmp / ADAPTER_WEIGHTS))
        if dtype is not None:
            if not (tmp / ADAPTER_WEIGHTS).exists():
                raise UserError(f"'{name}' has no {ADAPTER_WEIGHTS} to convert; export it without --dtype")
            weights = load_file(str(tmp / ADAPTER_WEIGHTS))
            save_file({k: v.to(EXPORT_DTYPES[dtype]).contiguous() if v.is_floating_point() else v
                       for k, v in weights.items()}, str(tmp / ADAPTER_WEIGHTS), metadata={"format": "pt"})
        (tmp / "medchat_profile.toml").write_text(prof.to_toml())
    return out


def export_merged(store: ProfileStore, name: str, out: Path, force: bool = False) -> Path:
    """A full Hugging Face model (base + chain merged) loadable by AutoModelForCausalLM."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    prof = store.get(name)
    out = _check_out(out, force)
    model_dir = resolve_base(prof.base or None)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    for link, adapter in ([] if prof.is_base else store.chain_dirs(prof)):
        # merging one adapter at a time equals merging them together: the deltas simply add
        model = PeftModel.from_pretrained(model, str(adapter), adapter_name=link).merge_and_unload()
    tok = AutoTokenizer.from_pretrained(model_dir)
    if prof.chat_template:
        tok.chat_template = prof.chat_template
    with paths.staging_dir(out) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
    return out
