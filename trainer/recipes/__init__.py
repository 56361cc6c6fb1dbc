"""Multi-stage training recipes: a YAML list of stages run in order, each installing a profile.

    profiles = run("covid" | "path/to/recipe.yaml", overrides={"ppo.steps": 4, "training.learning_rate": 1e-4})

Recipe YAML: `defaults:` (options for every stage) and `stages:` (a list; each entry is a stage's
options, `stage` and `name` required), in the keys `trainer.config` accepts (flat or nested).

Overrides (from flags and `--set KEY=VALUE`): a key whose first part names one of the recipe's
stages, by stage type or profile name, applies to that stage only (`rm.training.max_steps=5`,
`covid-ppo.kl_coef=0.1`, `ppo.steps=4`); any other key applies to every stage (`learning_rate=1e-4`,
`lora.r=16`). Renaming a stage (`sft.name=my-sft`) renames it where later stages refer to it.

Existing profiles: a stage whose profile is already installed is skipped and reused, so re-running
a recipe after an interruption continues where it stopped (an interrupted stage resumes from its
last checkpoint). `--set force=true` removes the recipe's installed profiles first and retrains all.
"""

from __future__ import annotations

import sys
from pathlib import Path

from medchat.core.errors import UserError

RECIPES_DIR = Path(__file__).resolve().parent
_CONTROL = ("force",)


def available() -> list[str]:
    return sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))


def find(name_or_path: str) -> Path:
    path = Path(name_or_path).expanduser()
    if path.suffix in (".yaml", ".yml") and path.exists():
        return path
    shipped = RECIPES_DIR / f"{name_or_path}.yaml"
    if shipped.exists():
        return shipped
    raise UserError(f"unknown recipe '{name_or_path}': not a YAML file and not one of the shipped recipes "
                    f"({', '.join(available()) or 'none'})")


def load_recipe(path: Path) -> dict:
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot parse recipe '{path}': {exc}") from None
    stages = data.get("stages") if isinstance(data, dict) else None
    if not isinstance(stages, list) or not stages or not all(isinstance(s, dict) for s in stages):
        raise UserError(f"recipe '{path}' needs a `stages:` list of stage option mappings "
                        "(for a single stage use `medchat train RECIPE.yaml`)")
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise UserError(f"recipe '{path}': `defaults:` must be a mapping of options")
    return {"defaults": defaults, "stages": stages, "description": data.get("description", "")}


def _truthy(value) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def split_overrides(overrides: dict, ids: dict[str, int]) -> tuple[dict, dict[int, dict], dict]:
    """(global overrides, {stage index: overrides}, control options) by the rule in the module doc."""
    glob, scoped, control = {}, {}, {}
    for key, value in (overrides or {}).items():
        key = str(key)
        if key in _CONTROL:
            control[key] = value
            continue
        head, _, rest = key.partition(".")
        if rest and head in ids:
            scoped.setdefault(ids[head], {})[rest] = value
        elif key in ("name", "stage"):
            raise UserError(f"'{key}' differs per stage; scope it, e.g. --set sft.{key}=...")
        else:
            glob[key] = value
    return glob, scoped, control


def plan(recipe: dict, overrides: dict | None = None) -> tuple[list, dict]:
    """The TrainConfig of every stage (validated) and the control options."""
    from trainer.config import apply_overrides, load_config

    raw = recipe["stages"]
    ids: dict[str, int] = {}
    for i, stage in enumerate(raw):
        kind, name = stage.get("stage"), stage.get("name")
        if not kind or not name:
            raise UserError(f"recipe stage {i + 1} needs both `stage:` and `name:`")
        if isinstance(kind, (list, dict)) or isinstance(name, (list, dict)):
            raise UserError(f"recipe stage {i + 1}: `stage:` and `name:` must be plain words, not lists or mappings")
        ids.setdefault(str(kind), i)
        ids[str(name)] = i
    glob, scoped, control = split_overrides(overrides or {}, ids)
    cfgs, renamed = [], {}
    for i, stage in enumerate(raw):
        cfg = apply_overrides(load_config(recipe["defaults"]), stage)  # nested sections merge key by key
        apply_overrides(cfg, glob)
        apply_overrides(cfg, scoped.get(i, {}))
        if cfg.name != stage["name"]:
            renamed[stage["name"]] = cfg.name
        for attr in ("from_profile",):
            value = getattr(cfg.model, attr)
            setattr(cfg.model, attr, renamed.get(value, value))
        cfg.reward.reward = renamed.get(cfg.reward.reward, cfg.reward.reward)
        cfg.validate()
        cfgs.append(cfg)
    names = [c.name for c in cfgs]
    if len(set(names)) != len(names):
        raise UserError(f"recipe stages must install distinct profiles, got {', '.join(names)}")
    return cfgs, control


def _resumable(cfg):
    """An interrupted earlier run of this stage's profile, to continue instead of starting over."""
    from trainer.runs import Run

    prior = Run.latest_for(cfg.name)
    if prior is None or prior.status().get("state") not in ("interrupted", "running"):
        return None
    has_ckpt = prior.latest_checkpoint() is not None or any((prior.dir / "hf_checkpoints").glob("checkpoint-*"))
    return prior if has_ckpt else None


def run(name_or_path: str, overrides: dict | None = None, quiet: bool = False,
        remote_code_flag: bool | None = None) -> list:
    """`remote_code_flag`: whether --trust-remote-code was on the command line (None: not from a CLI)."""
    import time

    from medchat.core.profiles import ProfileStore
    from trainer.stages import run_stage

    path = find(name_or_path)
    cfgs, control = plan(load_recipe(path), overrides)
    if remote_code_flag is not None:
        from trainer.config import gate_remote_code

        gate_remote_code(cfgs, remote_code_flag)
    from trainer.dist import Dist

    # under `accelerate launch`/torchrun every rank runs the recipe: the main rank alone removes, reports and
    # decides (skip / resume), the others follow its decision; each stage returns None on the other ranks
    dist = Dist.from_env(cfgs[0].model.device or None)
    say = (lambda text: print(text, file=sys.stderr, flush=True)) if dist.is_main else (lambda text: None)
    store = ProfileStore()
    if _truthy(control.get("force", False)) and dist.is_main:
        for cfg in reversed(cfgs):
            if store.exists(cfg.name):
                kids = [k for k in store.children(cfg.name) if k not in {c.name for c in cfgs}]
                if kids:
                    raise UserError(f"--set force=true would remove '{cfg.name}', which {', '.join(kids)} "
                                    "stack on; remove those first")
                store.remove(cfg.name, force=True)
    dist.barrier()
    profiles = []
    t_all = time.perf_counter()
    for i, cfg in enumerate(cfgs, 1):
        head = f"[{i}/{len(cfgs)}] {cfg.stage} -> {cfg.name}"
        if dist.broadcast(store.exists(cfg.name) if dist.is_main else None):
            say(f"{head}: profile exists, skipped (retrain with --set force=true)")
            profiles.append(store.get(cfg.name) if dist.is_main else None)
            continue
        prior = _resumable(cfg) if dist.is_main else None
        prior_dir = dist.broadcast(str(prior.dir) if prior is not None else None)
        if prior_dir is not None:
            cfg.training.resume = prior_dir
            say(f"{head}: resuming interrupted run {prior_dir}")
        else:
            say(head)
        t0 = time.perf_counter()
        prof = run_stage(cfg, quiet=quiet)
        if prof is not None and getattr(prof, "name", None):  # the manifest names its recipe (issue 11)
            prof.recipe = path.stem
            store.update(prof)
        profiles.append(prof)
        say(f"{head}: done in {time.perf_counter() - t0:.0f}s")
    say(f"recipe {path.stem}: {len(cfgs)} stages in {time.perf_counter() - t_all:.0f}s")
    return profiles
