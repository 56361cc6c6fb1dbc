"""Typed training configuration: the one source of truth for recipes, CLI flags and saved runs.

Public API (used by every stage, the recipes and the CLI):

    cfg = TrainConfig()                          # all defaults (CPU-friendly)
    cfg = load_config("recipe.yaml" | dict, overrides={"lora.r": 16, "learning_rate": 1e-4})
    apply_overrides(cfg, {"ppo.kl_coef": 0.1, "dataset": "a,b"})   # in place, returns cfg
    cfg.to_dict() / TrainConfig.from_dict(d) / cfg.to_yaml()        # round-trips
    cfg.validate()                               # UserError on nonsense values
    add_flags(parser) + overrides_from_args(args) -> {"section.field": value} (explicit flags only)

Keys: "section.field" (e.g. "training.learning_rate", "lora.r", "ppo.kl_coef") or the flag
spelling with underscores ("learning_rate", "lora_r", "ppo_kl_coef", "from", "dataset"); a few
LLaMA-Factory names are accepted too (model_name_or_path, lora_rank, num_train_epochs, ...).
A recipe YAML may be nested by section or flat. Flags: section prefix + field name
(`--learning-rate`, `--lora-r`, `--ppo-kl-coef`, `--dpo-beta`, `--reward`), plus `--set key=value`.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path

from medchat.core.errors import UsageError, UserError
from medchat.core.settings import SETTING_HELP

from trainer.stages import STAGE_NAMES as STAGES  # the one registry of stages
METHODS = ("lora", "qlora")


def _f(default, flag: str = "", help: str = "", **kw):
    """A dataclass field carrying its CLI flag spelling and help text."""
    meta = {"flag": flag, "help": help}
    if isinstance(default, list):
        return field(default_factory=lambda d=default: list(d), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class ModelArgs:
    base: str = _f("", help="base model: smollm2-135m (default), a local HF dir, or a hub id")
    from_profile: str = _f("", "--from", "stack a new adapter on this profile's chain")
    continue_parent: bool = _f(False, "--continue", "keep training the --from profile's own adapter")
    method: str = _f("lora", help="lora | qlora (4-bit NF4 base)")
    trust_remote_code: bool = _f(False, help="allow a model's own Python code to run")
    device: str = _f("", help="cuda | mps | cpu (default: best available)")


@dataclass
class DataArgs:
    datasets: list[str] = _f([], "--dataset", "dataset names (see dataset_info.json) or file paths, comma-separated")
    dataset_dir: str = _f("", help="folder with dataset_info.json (default: the shipped trainer/samples)")
    val_dataset: list[str] = _f([], help="explicit validation dataset(s); overrides --val-size")
    val_size: float = _f(0.1, help="fraction (<1) or count (>=1) of training rows held out for eval loss; "
                                    "no split below 10 rows")
    cutoff_len: int = _f(1024, help="max tokens per sample (longer ones keep their head)")
    packing: typing.Optional[bool] = _f(None, help="pack short samples into one row (default: on for pt, off for sft)")
    train_on_prompt: bool = _f(False, help="also compute loss on system/user tokens")
    last_turn_only: bool = _f(False, help="loss only on the last assistant reply of each conversation")
    skip_bad: bool = _f(False, help="skip malformed rows (counted in the summary) instead of stopping")
    template: str = _f("", help="chat template override (Jinja text or a file path); default: the tokenizer's")
    max_samples: int = _f(0, help="use at most this many rows per dataset (0 = all)")


@dataclass
class LoraArgs:
    r: int = _f(8, help="LoRA rank")
    alpha: float = _f(16.0, help="LoRA alpha (scale = alpha / r)")
    dropout: float = _f(0.05, help="LoRA dropout")
    target_modules: str = _f("all-linear", help="'all-linear' or comma-separated module names")


@dataclass
class TrainingArgs:
    learning_rate: float = _f(2e-4)
    num_epochs: float = _f(2.0, help="passes over the training data (2 keeps the sample SFT to minutes on CPU)")
    max_steps: int = _f(0, help="optimizer steps; 0 = from --num-epochs")
    batch_size: int = _f(4, help="samples (or packed rows) per device per micro-batch")
    grad_accum: int = _f(1, help="micro-batches per optimizer step")
    warmup_ratio: float = _f(0.05)
    scheduler: str = _f("cosine", help="cosine | linear | constant | constant_with_warmup")
    max_grad_norm: float = _f(1.0)
    eval_steps: int = _f(0, help="evaluate every N steps (0 = at the end of every epoch)")
    save_steps: int = _f(50, help="checkpoint every N steps (and at the end)")
    logging_steps: int = _f(5)
    seed: int = _f(42)
    gradient_checkpointing: bool = _f(False)
    bf16: bool = _f(False, help="bfloat16 autocast (CUDA)")
    fp16: bool = _f(False, help="float16 autocast (CUDA)")
    resume: str = _f("", help="continue an interrupted run: bare --resume = the latest run of --name, or a run dir")
    optim: str = _f("", help="adamw_torch | paged_adamw_8bit | paged_adamw_32bit (default: paged 8-bit for "
                             "qlora on CUDA, else adamw_torch)")


@dataclass
class RewardArgs:
    reward: str = ""  # name of a reward profile


@dataclass
class PPOArgs:
    ppo_epochs: int = 4
    rollout_batch_size: int = 8
    mini_batch_size: int = 4
    # rollout sampling: the meaning (and help) of medchat.core.settings' generation settings, but PPO's own
    # defaults (the policy's plain distribution, no repetition penalty, so rollout log-probs are the policy's)
    max_new_tokens: int = _f(48, help=SETTING_HELP["max_new_tokens"])
    temperature: float = _f(1.0, help="sampling temperature; must be > 0 (PPO needs sampled replies)")
    top_k: int = _f(0, help=SETTING_HELP["top_k"])
    top_p: float = _f(1.0, help=SETTING_HELP["top_p"])
    kl_coef: float = 0.05
    adaptive_kl: bool = True
    target_kl: float = 6.0
    horizon: int = 10000
    gamma: float = 1.0
    lam: float = 0.95
    cliprange: float = 0.2
    cliprange_value: float = 0.2
    vf_coef: float = 0.1
    whiten_rewards: bool = False
    steps: int = 20


@dataclass
class DPOArgs:
    beta: float = 0.1
    loss_type: str = "sigmoid"


@dataclass
class ChatArgs:
    """What the installed profile asks of chat (its [generation] table); -1 keeps chat's own default."""
    temperature: float = field(default=-1.0, metadata={"help": "sampling temperature chat uses with this "
                                                               "profile: 0 = greedy, -1 = chat's default"})


@dataclass
class TrainConfig:
    stage: str = "sft"
    name: str = ""  # the profile to install
    description: str = ""
    output_dir: str = ""  # run dir; "" = runs_dir()/<name>-<timestamp>
    model: ModelArgs = field(default_factory=ModelArgs)
    data: DataArgs = field(default_factory=DataArgs)
    lora: LoraArgs = field(default_factory=LoraArgs)
    training: TrainingArgs = field(default_factory=TrainingArgs)
    reward: RewardArgs = field(default_factory=RewardArgs)
    ppo: PPOArgs = field(default_factory=PPOArgs)
    dpo: DPOArgs = field(default_factory=DPOArgs)
    chat: ChatArgs = field(default_factory=ChatArgs)

    # --- (de)serialisation -----------------------------------------------------------------
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        return apply_overrides(cls(), data or {})

    def packing_enabled(self) -> bool:
        return self.stage == "pt" if self.data.packing is None else bool(self.data.packing)

    def validate(self) -> "TrainConfig":
        m, d, lo, t = self.model, self.data, self.lora, self.training
        checks = [
            (self.stage in STAGES, f"unknown --stage '{self.stage}'; use one of {', '.join(STAGES)}"),
            (m.method in METHODS, f"unknown --method '{m.method}'; use lora or qlora"),
            (not (m.continue_parent and not m.from_profile), "--continue needs --from PROFILE"),
            (d.cutoff_len >= 8, "--cutoff-len must be at least 8 tokens"),
            (d.val_size >= 0, "--val-size must be >= 0"),
            (lo.r >= 1, "--lora-r must be >= 1"),
            (0 <= lo.dropout < 1, "--lora-dropout must be in [0, 1)"),
            (t.learning_rate > 0, "--learning-rate must be > 0"),
            (t.batch_size >= 1 and t.grad_accum >= 1, "--batch-size and --grad-accum must be >= 1"),
            (t.max_steps > 0 or t.num_epochs > 0, "set --max-steps or --num-epochs above 0"),
            (0 <= t.warmup_ratio < 1, "--warmup-ratio must be in [0, 1)"),
            (t.scheduler in ("cosine", "linear", "constant", "constant_with_warmup"),
             f"unknown --scheduler '{t.scheduler}'; use cosine, linear, constant or constant_with_warmup"),
            (t.optim in ("", "adamw_torch", "paged_adamw_8bit", "paged_adamw_32bit", "adamw_8bit"),
             f"unknown --optim '{t.optim}'"),
            (not (t.bf16 and t.fp16), "choose one of --bf16 and --fp16"),
            (t.logging_steps >= 1, "--logging-steps must be >= 1"),
            (self.chat.temperature == -1 or 0 <= self.chat.temperature <= 5,
             "--chat-temperature must be -1 (chat's default) or in [0, 5]"),
        ]
        for ok, msg in checks:
            if not ok:
                raise UserError(msg)
        return self


SECTIONS = {"model": "", "data": "", "lora": "lora_", "training": "", "reward": "", "ppo": "ppo_", "dpo": "dpo_",
            "chat": "chat_"}
TOP_LEVEL = ("stage", "name", "description", "output_dir")
# LLaMA-Factory spellings, so their YAML files mostly work as recipes
_LF_ALIASES = {
    "model_name_or_path": "model.base", "finetuning_type": "model.method", "dataset": "data.datasets",
    "eval_dataset": "data.val_dataset", "lora_rank": "lora.r", "lora_target": "lora.target_modules",
    "per_device_train_batch_size": "training.batch_size", "gradient_accumulation_steps": "training.grad_accum",
    "num_train_epochs": "training.num_epochs", "lr_scheduler_type": "training.scheduler",
    "template": "data.template", "output": "output_dir", "pref_beta": "dpo.beta", "pref_loss": "dpo.loss_type",
    "reward_model": "reward.reward", "continue": "model.continue_parent", "from": "model.from_profile",
}


def _hints(cls) -> dict:
    return typing.get_type_hints(cls)


def key_table() -> dict[str, str]:
    """Every accepted key -> canonical 'section.field' (or a top-level field name)."""
    table = {k: k for k in TOP_LEVEL}
    for section, prefix in SECTIONS.items():
        cls = _hints(TrainConfig)[section]
        for f in dataclasses.fields(cls):
            canon = f"{section}.{f.name}"
            table[canon] = canon
            table[prefix + f.name] = canon
            table[_flag_for(section, f).lstrip("-").replace("-", "_")] = canon
    for section in SECTIONS:  # bare field names too ("kl_coef", "beta"), where unambiguous
        for f in dataclasses.fields(_hints(TrainConfig)[section]):
            table.setdefault(f.name, f"{section}.{f.name}")
    table.update(_LF_ALIASES)
    return table


def _field_type(canon: str):
    if "." not in canon:
        return str
    section, name = canon.split(".")
    return _hints(_hints(TrainConfig)[section])[name]


def coerce(canon: str, value):
    """Turn text (from a flag or --set) or YAML values into the field's type."""
    kind = _field_type(canon)
    origin = typing.get_origin(kind)
    args = typing.get_args(kind)
    if origin is typing.Union:  # Optional[bool]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "auto", "")):
            return None
        kind = next(a for a in args if a is not type(None))
        origin = None
    try:
        if origin is list:
            if isinstance(value, str):
                return [v.strip() for v in value.split(",") if v.strip()]
            return [str(v) for v in (value or [])]
        if kind is bool:
            if isinstance(value, str):
                low = value.strip().lower()
                if low not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                    raise ValueError(value)
                return low in ("1", "true", "yes", "on")
            return bool(value)
        if kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(float(value)) if isinstance(value, str) else int(value)
        if kind is float:
            return float(value)
        return "" if value is None else str(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: int("inf")
        raise UserError(f"{canon} expects {getattr(kind, '__name__', kind)}, got '{value}'") from None


def apply_overrides(cfg: TrainConfig, overrides: dict) -> TrainConfig:
    """Set values from a (possibly nested) dict of accepted keys; unknown keys are a UserError."""
    table = key_table()
    flat: dict = {}
    for key, value in (overrides or {}).items():
        if key in SECTIONS and isinstance(value, dict):
            for sub, v in value.items():
                flat[f"{key}.{sub}"] = v
        else:
            flat[key] = value
    for key, value in flat.items():
        canon = table.get(str(key).replace("-", "_"))
        if canon is None:
            close = [k for k in table if str(key).split(".")[-1] in k][:5]
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise UserError(f"unknown training option '{key}'{hint}")
        if "." in canon:
            section, name = canon.split(".")
            setattr(getattr(cfg, section), name, coerce(canon, value))
        else:
            setattr(cfg, canon, "" if value is None else str(value))
    return cfg


def load_config(source=None, overrides: dict | None = None) -> TrainConfig:
    """A TrainConfig from a recipe (YAML path or dict), then overrides on top."""
    data = source
    if isinstance(source, (str, Path)):
        import yaml

        path = Path(source).expanduser()
        if not path.exists():
            raise UserError(f"recipe file '{path}' does not exist")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise UserError(f"cannot parse recipe '{path}': {exc}") from None
        if not isinstance(data, dict):
            raise UserError(f"recipe '{path}' must be a mapping of options")
    cfg = TrainConfig.from_dict(data or {})
    return apply_overrides(cfg, overrides or {})


def gate_remote_code(cfgs, flag_given: bool) -> None:
    """A model's own Python code runs only when the command line itself says --trust-remote-code;
    a recipe YAML or `--set` turning it on is not enough (a shared recipe must not run code)."""
    if flag_given:
        return
    for cfg in cfgs:
        if cfg.model.trust_remote_code:
            raise UserError(f"'{cfg.name}' asks for trust_remote_code (from the recipe or --set), which runs the "
                            "model's own Python code; pass --trust-remote-code on the command line if you trust it")


# --- CLI flags generated from the dataclasses ------------------------------------------------
def _flag_for(section: str, f: dataclasses.Field) -> str:
    flag = f.metadata.get("flag") if f.metadata else ""
    prefix = "" if f.name.startswith(SECTIONS[section]) else SECTIONS[section]  # --ppo-epochs
    return flag or "--" + (prefix + f.name).replace("_", "-")


def add_flags(parser: argparse.ArgumentParser, sections=tuple(SECTIONS)) -> None:
    """Add one flag per config field; defaults are SUPPRESSed so only given flags override."""
    sup = argparse.SUPPRESS
    top = parser.add_argument_group("run")
    top.add_argument("--stage", dest="cfg__stage", default=sup, metavar="STAGE",
                     help="pt | sft (rm | ppo | dpo via recipes); default sft")
    top.add_argument("--name", dest="cfg__name", default=sup, metavar="PROFILE", help="name of the profile to install")
    top.add_argument("--description", dest="cfg__description", default=sup, metavar="TEXT")
    top.add_argument("--output-dir", dest="cfg__output_dir", default=sup, metavar="DIR",
                     help="run dir (default: runs/<name>-<timestamp> in the cache dir, or MEDCHAT_HOME)")
    for section in sections:
        group = parser.add_argument_group(section)
        cls = _hints(TrainConfig)[section]
        for f in dataclasses.fields(cls):
            canon = f"{section}.{f.name}"
            kind = _hints(cls)[f.name]
            dest = "cfg__" + canon.replace(".", "__")
            helptext = (f.metadata.get("help") if f.metadata else "") or None
            flag = _flag_for(section, f)
            if kind is bool or typing.get_origin(kind) is typing.Union:
                group.add_argument(flag, dest=dest, default=sup, action=argparse.BooleanOptionalAction,
                                   help=helptext)
            elif canon == "training.resume":
                group.add_argument(flag, dest=dest, default=sup, nargs="?", const="latest", metavar="RUN_DIR",
                                   help=helptext)
            else:
                group.add_argument(flag, dest=dest, default=sup, metavar=f.name.upper(), help=helptext)
    parser.add_argument("--set", dest="cfg_set", action="append", default=[], metavar="KEY=VALUE",
                        help="set any option, e.g. --set lora.r=16 --set ppo.kl_coef=0.1")


def overrides_from_args(args: argparse.Namespace, scoped_ok: bool = False) -> dict:
    """{'section.field' | top-level: value} for the flags given on the command line, then --set.

    scoped_ok: for multi-stage recipes, keys the table does not know (`rm.max_steps`, `force`) pass
    through as text; the recipe planner resolves and validates them per stage.
    """
    try:  # everything here comes from the command line: a bad key or value is a usage error (exit 2)
        return _overrides(args, scoped_ok)
    except UsageError:
        raise
    except UserError as exc:
        raise UsageError(str(exc)) from None


def _overrides(args: argparse.Namespace, scoped_ok: bool) -> dict:
    out: dict = {}
    for dest, value in vars(args).items():
        if dest.startswith("cfg__"):
            canon = dest[5:].replace("__", ".")
            out[canon] = coerce(canon, value) if "." in canon else value
    for item in getattr(args, "cfg_set", None) or []:
        if "=" not in item:
            raise UserError(f"--set expects KEY=VALUE, got '{item}'")
        key, value = (x.strip() for x in item.split("=", 1))
        canon = key_table().get(key.replace("-", "_"))
        if canon is None and scoped_ok:
            out[key] = value
            continue
        if canon is None:
            raise UserError(f"--set {key}: unknown training option")
        out[canon] = coerce(canon, value) if "." in canon else value
    return out
