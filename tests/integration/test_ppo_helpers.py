"""Shared helpers (no tests) for the preference-stage tests (rm, ppo, dpo, recipe): tiny data and profiles."""

from __future__ import annotations

import json
from pathlib import Path

QUESTIONS = ["I have a fever", "My throat hurts", "I feel dizzy", "My chest is tight", "I have a cough",
             "My head aches", "I cannot sleep", "My back hurts", "I feel sick", "My ear hurts",
             "I have a rash", "My knee is swollen", "I am tired", "My nose is blocked", "I sneeze a lot",
             "My eyes are red"]
GOOD = "Rest and drink fluids. Please see a doctor if it gets worse."
BAD = "No idea."


def write_pairs(folder: Path, n_train: int = 12, n_val: int = 4) -> tuple[Path, Path]:
    """A separable pairwise set: the chosen reply is always the careful one."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"prompt": q, "chosen": f"{GOOD} ({i})", "rejected": f"{BAD} ({i})"} for i, q in enumerate(QUESTIONS)]
    train, val = folder / "pairs_train.jsonl", folder / "pairs_val.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in rows[:n_train]))
    val.write_text("".join(json.dumps(r) + "\n" for r in rows[n_train:n_train + n_val]))
    return train, val


def install_profile(name: str, base_dir: Path, adapter: Path | None, chain=None, kind: str = "chat", stage: str = "sft"):
    from medchat.core.models import fingerprint
    from medchat.core.profiles import Profile, ProfileStore

    prof = Profile(name=name, base=str(base_dir), base_fingerprint=fingerprint(base_dir), kind=kind,
                   chain=list(chain or []), stage=stage, method="lora")
    return ProfileStore().install(prof, adapter)


def small_cfg(stage: str, name: str, **over):
    from trainer.config import TrainConfig, apply_overrides

    cfg = TrainConfig()
    cfg.stage, cfg.name = stage, name
    base = {"training.logging_steps": 1, "training.save_steps": 1000, "training.warmup_ratio": 0.0,
            "training.scheduler": "constant", "lora.dropout": 0.0, "lora.r": 8, "data.cutoff_len": 128}
    return apply_overrides(cfg, {**base, **over})
