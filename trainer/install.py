"""Installing a finished, validated run as a profile (atomic, via ProfileStore.install).

Public API (used by every stage):

    preflight(cfg)                      # before training: valid, free profile name (UserError if not)
    profile = install_adapter(cfg, tm, adapter_dir, datasets=[{name, sha256, rows}, ...],
                              metrics={"train_loss":..., "eval_loss":..., "steps":..., ...},
                              kind="chat" | "reward")
    validate_adapter(adapter_dir)       # finite, non-empty LoRA weights (UserError otherwise)

The manifest gets base (medchat.core.models.base_id), base_fingerprint, base_revision (the HF cache snapshot
commit when the base is a hub id, else empty), chain [parents..., name], stage,
method, datasets, metrics, description and created; a --from child inherits its parent's chat
template, system prompt and KB binding; a --template override is recorded as the chat template.
"""

from __future__ import annotations

import math
from pathlib import Path

from medchat.core.errors import UsageError, UserError
from medchat.core.models import hub_revision
from medchat.core.profiles import BASE_PROFILE, Profile, ProfileStore, validate_name


def preflight(cfg, store: ProfileStore | None = None) -> None:
    """Fail before any training when the result could not be installed."""
    if not cfg.name:
        raise UsageError("--name is required: the profile the trained adapter is installed as (e.g. covid-sft)")
    validate_name(cfg.name)
    if cfg.name == BASE_PROFILE:
        raise UserError("'base' is the built-in profile; choose another --name")
    store = store or ProfileStore()
    if store.exists(cfg.name):
        raise UserError(f"profile '{cfg.name}' already exists; choose another --name or remove it first "
                        f"(`medchat profiles remove {cfg.name}`)")


def validate_adapter(adapter_dir: Path) -> int:
    """Check the saved weights are all finite; return the number of tensors."""
    import torch
    from safetensors.torch import load_file

    from medchat.core.profiles import ADAPTER_WEIGHTS, check_adapter_dir

    check_adapter_dir(Path(adapter_dir))
    tensors = load_file(str(Path(adapter_dir) / ADAPTER_WEIGHTS))
    for key, value in tensors.items():
        if not torch.isfinite(value).all():
            raise UserError(f"training diverged: adapter tensor {key} holds NaN/inf; not installed "
                            "(lower --learning-rate and retry)")
    return len(tensors)


def _template_text(spec: str) -> str:
    if spec and Path(spec).expanduser().is_file():
        return Path(spec).expanduser().read_text(encoding="utf-8")
    return spec


def install_adapter(cfg, tm, adapter_dir: Path, datasets: list[dict], metrics: dict, kind: str = "chat",
                    store: ProfileStore | None = None) -> Profile:
    store = store or ProfileStore()
    validate_adapter(adapter_dir)
    for key, value in metrics.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise UserError(f"training diverged ({key} = {value}); not installed")
    parent = tm.parent
    profile = Profile(
        name=cfg.name, base=tm.base, base_fingerprint=tm.fingerprint,
        base_revision=hub_revision(tm.base, tm.base_dir), kind=kind, chain=list(tm.chain),
        stage=cfg.stage, method=cfg.model.method, datasets=datasets, metrics=metrics,
        description=cfg.description or f"{cfg.stage} {cfg.model.method} on {', '.join(cfg.data.datasets)}",
        chat_template=_template_text(cfg.data.template) or (parent.chat_template if parent else ""),
        system_prompt=parent.system_prompt if parent else "",
        kb=parent.kb if parent else "",
        generation=({"temperature": cfg.chat.temperature} if cfg.chat.temperature >= 0
                    else dict(parent.generation) if parent else {}),
    )
    return store.install(profile, Path(adapter_dir))
